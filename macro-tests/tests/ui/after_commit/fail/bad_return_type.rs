use kafka_listener::after_commit;

#[derive(Clone)]
struct Event;

#[after_commit]
async fn on_event(_event: Event) -> u32 {
    1
}

fn main() {}
