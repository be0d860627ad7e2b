use kafka_listener::OutboxEvent;

#[derive(serde::Serialize, OutboxEvent)]
struct NoAttribute {
    id: String,
}

#[derive(serde::Serialize, OutboxEvent)]
#[outbox(topic = "orders")]
struct NoKey {
    id: String,
}

#[derive(serde::Serialize, OutboxEvent)]
#[outbox(topic = "coupon issued", key = "coupon", partition = 1)]
struct BadValues {
    coupon_id: String,
    user_id: String,
}

#[derive(serde::Serialize, OutboxEvent)]
#[outbox(topic = "t", topic = "u", key = "id")]
struct Twice {
    id: String,
}

#[derive(serde::Serialize, OutboxEvent)]
#[outbox(topic = "t", key = "id", format = "protobuf")]
struct UnknownFormat {
    id: String,
}

#[derive(serde::Serialize, OutboxEvent)]
#[outbox(topic = "t", key = "id", name = "coupon issued")]
struct NameWithSpace {
    id: String,
}

#[derive(serde::Serialize, OutboxEvent)]
#[outbox(topic = "t", key = "id", name = 7)]
struct NameNotAString {
    id: String,
}

fn main() {}
