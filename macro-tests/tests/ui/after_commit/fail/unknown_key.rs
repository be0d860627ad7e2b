use kafka_listener::after_commit;

#[derive(Clone)]
struct Event;

#[after_commit(fallback = true, phase = "after_commit")]
async fn on_event(_event: Event) {}

fn main() {}
