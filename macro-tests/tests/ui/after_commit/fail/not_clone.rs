use kafka_listener::after_commit;

struct NotClone;

#[after_commit]
async fn on_event(_event: NotClone) {}

fn main() {}
