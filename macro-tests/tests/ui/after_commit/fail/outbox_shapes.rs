use kafka_listener::OutboxEvent;

#[derive(serde::Serialize, OutboxEvent)]
#[outbox(topic = "t", key = "id")]
enum AnEnum {
    A,
}

#[derive(serde::Serialize, OutboxEvent)]
#[outbox(topic = "t", key = "0")]
struct Tuple(String);

#[derive(serde::Serialize, OutboxEvent)]
#[outbox(topic = "t", key = "id")]
struct Generic<T> {
    id: T,
}

fn main() {}
