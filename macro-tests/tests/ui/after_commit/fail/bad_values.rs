use kafka_listener::after_commit;

#[derive(Clone)]
struct Event;

#[after_commit(fallback_execution = "yes")]
async fn quoted(_event: Event) {}

#[after_commit(fallback_execution = true, fallback_execution = false)]
async fn twice(_event: Event) {}

#[after_commit(fallback_execution)]
async fn no_value(_event: Event) {}

#[after_commit(crate = "not a path")]
async fn bad_crate(_event: Event) {}

fn main() {}
