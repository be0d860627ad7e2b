use std::rc::Rc;

use kafka_listener::after_commit;

#[derive(Clone)]
struct Event;

#[after_commit]
async fn on_event(_event: Event) {
    let rc = Rc::new(1);
    tokio::task::yield_now().await;
    drop(rc);
}

fn main() {}
