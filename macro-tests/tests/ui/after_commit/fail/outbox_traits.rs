use kafka_listener::OutboxEvent;

struct Opaque;

#[derive(OutboxEvent)]
#[outbox(topic = "t", key = "id")]
struct NotSerialize {
    id: String,
}

#[derive(serde::Serialize, OutboxEvent)]
#[outbox(topic = "t", key = "id")]
struct KeyNotDisplay {
    #[serde(skip)]
    id: Opaque,
}

/// `format = "avro"` without `Deserialize` and `AvroSchema`.
#[derive(serde::Serialize, OutboxEvent)]
#[outbox(topic = "t", key = "id", format = "avro")]
struct AvroWithoutSchema {
    id: String,
}

fn main() {}
