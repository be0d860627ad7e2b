//! Every extractor the runtime ships, patterns as arguments, and a manual
//! ack mode for `Acknowledgment`.
use bytes::Bytes;
use kafka_listener::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Order {
    id: u64,
}

#[derive(Clone)]
struct Db;

#[kafka_listener(topics = ["orders"], ack_mode = "manual_immediate")]
#[allow(clippy::too_many_arguments)] // every extractor at once, on purpose
async fn every_argument(
    Json(order): Json<Order>,
    key: Key<String>,
    optional_key: Key<Option<i64>>,
    headers: Headers,
    meta: RecordMeta,
    State(db): State<Db>,
    ack: Acknowledgment,
    record: ConsumerRecord,
    text: String,
    raw: Vec<u8>,
    bytes: Bytes,
) -> Result<(), ListenerError> {
    let _ = (
        order.id,
        key,
        optional_key,
        headers,
        meta,
        db,
        record,
        text,
        raw,
        bytes,
    );
    ack.acknowledge();
    Ok(())
}

#[kafka_listener(topics = ["orders"], id = "unit-return", ack_mode = "manual")]
async fn unit_return(_: String, _ack: kafka_listener::Acknowledgment) {}

#[kafka_listener(topics = ["orders"], id = "io-error")]
async fn io_error(_value: Vec<u8>) -> Result<(), std::io::Error> {
    Ok(())
}

#[kafka_listener(topics = ["orders"], id = "no-arguments")]
async fn no_arguments() {}

fn main() {
    let mut ids: Vec<_> = kafka_listener::__private::registered_listeners()
        .map(|s| s.id().to_owned())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["every_argument", "io-error", "no-arguments", "unit-return"]
    );
}
