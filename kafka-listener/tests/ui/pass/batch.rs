//! A batch listener: `Vec` of a record extractor, with state and a manual
//! acknowledgment of the whole batch.
use kafka_listener::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct AuditEvent {
    action: String,
}

#[derive(Clone)]
struct Db;

#[kafka_listener(topics = ["audit"], batch = true, ack_mode = "manual")]
async fn write_audit(
    events: Vec<Json<AuditEvent>>,
    metas: Vec<RecordMeta>,
    db: State<Db>,
    ack: Acknowledgment,
) -> Result<(), ListenerError> {
    let _ = (
        events.iter().map(|e| e.action.len()).sum::<usize>(),
        metas,
        db,
    );
    ack.acknowledge();
    Ok(())
}

#[kafka_listener(topics = ["audit"], id = "raw-batch", batch = true)]
async fn raw_batch(values: Vec<Vec<u8>>, keys: Vec<Key<String>>) {
    let _ = (values, keys);
}

fn main() {
    assert_eq!(kafka_listener::__private::registered_listeners().count(), 2);
}
