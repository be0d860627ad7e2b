//! `transactional = true` with `isolation`, checked on the registered spec.
use kafka_listener::__private::registered_listeners;
use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"], transactional = true, isolation = "read_committed", ack_mode = "record")]
async fn transform(order: String, template: KafkaTemplate) -> Result<(), ListenerError> {
    template
        .send(ProducerRecord::keyed("orders.out", "k").value(order))
        .await?;
    Ok(())
}

fn main() {
    let spec = registered_listeners()
        .next()
        .expect("one listener is registered");
    let debug = format!("{spec:?}");
    assert!(debug.contains("transactional: true"), "{debug}");
    assert!(
        debug.contains("isolation_level: Some(ReadCommitted)"),
        "{debug}"
    );
}
