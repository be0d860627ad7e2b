//! The smallest listener: one topic, one argument, no return type.
use kafka_listener::kafka_listener;

#[kafka_listener(topics = ["orders"])]
async fn on_order(value: String) {
    let _ = value;
}

fn main() {
    let specs: Vec<_> = kafka_listener::__private::registered_listeners().collect();
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].id(), "on_order");
    assert_eq!(specs[0].topic_names(), ["orders".to_owned()]);
}
