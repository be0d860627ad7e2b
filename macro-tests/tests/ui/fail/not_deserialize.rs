use kafka_listener::prelude::*;

struct NotSerde {
    id: u64,
}

#[kafka_listener(topics = ["orders"])]
async fn on_order(order: Json<NotSerde>, meta: RecordMeta) -> Result<(), ListenerError> {
    let _ = (order.id, meta);
    Ok(())
}

fn main() {}
