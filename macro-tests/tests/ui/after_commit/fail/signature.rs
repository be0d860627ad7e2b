use kafka_listener::after_commit;

#[derive(Clone)]
struct Event;

#[after_commit]
fn not_async(_event: Event) {}

#[after_commit]
async fn generic<T>(_event: Event, _t: T) {}

#[after_commit]
async unsafe fn not_safe(_event: Event) {}

#[after_commit]
async fn no_event() {}

fn main() {}
