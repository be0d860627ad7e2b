//! The records of one poll burst for one partition lane, copied out of
//! librdkafka's buffers by the consumer thread.
//!
//! Keys and values of records up to [`LARGE`] bytes are copied into shared segments of up to [`SEGMENT`]
//! bytes, one allocation per segment rather than one per record: with
//! glibc's allocator, blocks allocated on the consumer thread and freed on a
//! tokio worker cost more than the copy itself (measured: a third of the
//! consumer thread's time went to `malloc`/`free`). The lane turns a
//! [`Burst`] into [`ConsumerRecord`]s whose key and value are slices of a
//! segment.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Message};

use crate::record::{ConsumerRecord, Headers};

/// The largest shared segment: a record that holds on to its key or value
/// beyond the handler call keeps at most this much alive.
const SEGMENT: usize = 32 * 1024;

/// Records with more key and value bytes than this get an allocation of
/// their own rather than a place in a shared segment.
const LARGE: usize = SEGMENT / 4;

/// Full-size segment buffers given back by the lanes once every record
/// sliced from them is dropped, for the consumer thread to fill again: the
/// busy lanes' buffers then never go through the allocator.
#[derive(Debug, Default)]
pub(crate) struct SegmentPool {
    free: Mutex<Vec<Vec<u8>>>,
}

/// The most buffers a pool keeps (`POOLED * SEGMENT` bytes).
const POOLED: usize = 64;

impl SegmentPool {
    fn take(&self) -> Vec<u8> {
        crate::util::lock(&self.free)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(SEGMENT))
    }

    fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut free = crate::util::lock(&self.free);
        if free.len() < POOLED {
            free.push(buf);
        }
    }
}

/// A full-size segment: goes back to its pool when the last slice of it is
/// dropped.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<SegmentPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

/// Where a key or value lies: segment, start, length.
#[derive(Debug, Clone, Copy)]
struct Span {
    segment: u32,
    start: u32,
    len: u32,
}

#[derive(Debug)]
enum Slot {
    Shared(Copied),
    /// A large record, copied on its own.
    Own(ConsumerRecord),
}

#[derive(Debug)]
struct Copied {
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Span>,
    value: Option<Span>,
    headers: Headers,
}

/// Collects one lane's records during a poll burst.
#[derive(Debug)]
pub(crate) struct BurstBuilder {
    segments: Vec<Bytes>,
    buf: Vec<u8>,
    /// `buf` came from the pool (a lane whose bursts fill segments).
    pooled: bool,
    pool: Arc<SegmentPool>,
    slots: Vec<Slot>,
    /// Bytes copied in the previous burst: the first segment's capacity.
    hint: usize,
    bytes: usize,
}

impl BurstBuilder {
    pub(crate) fn new(pool: Arc<SegmentPool>) -> Self {
        Self {
            segments: Vec::new(),
            buf: Vec::new(),
            pooled: false,
            pool,
            slots: Vec::new(),
            hint: 0,
            bytes: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.segments.clear();
        self.buf.clear();
        self.slots.clear();
        self.bytes = 0;
    }

    /// Copies one message of `topic`.
    pub(crate) fn push(&mut self, msg: &BorrowedMessage<'_>, topic: &Arc<str>) {
        let key = msg.key();
        let value = msg.payload();
        let need = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
        if need > LARGE {
            self.slots
                .push(Slot::Own(ConsumerRecord::from_message(msg, topic)));
            return;
        }
        if need > 0 {
            if !self.buf.is_empty() && self.buf.len() + need > SEGMENT {
                self.seal();
            }
            if self.buf.capacity() == 0 && self.hint >= SEGMENT / 2 {
                self.buf = self.pool.take();
                self.pooled = true;
            } else if self.buf.capacity() - self.buf.len() < need {
                let want = if self.buf.is_empty() {
                    self.hint.clamp(need, SEGMENT)
                } else {
                    (self.buf.len() * 2).clamp(self.buf.len() + need, SEGMENT)
                };
                self.buf.reserve_exact(want - self.buf.len());
            }
        }
        let segment = self.segments.len() as u32;
        let mut span = |bytes: &[u8]| {
            let start = self.buf.len() as u32;
            self.buf.extend_from_slice(bytes);
            Span {
                segment,
                start,
                len: bytes.len() as u32,
            }
        };
        let key = key.map(&mut span);
        let value = value.map(&mut span);
        self.bytes += need;
        let headers = Headers::copied(msg);
        self.slots.push(Slot::Shared(Copied {
            offset: msg.offset(),
            timestamp: msg.timestamp().to_millis(),
            key,
            value,
            headers,
        }));
    }

    fn seal(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        let segment = if std::mem::take(&mut self.pooled) {
            Bytes::from_owner(Pooled {
                buf,
                pool: Arc::clone(&self.pool),
            })
        } else {
            if buf.capacity() > buf.len() + buf.len() / 4 {
                buf.shrink_to_fit();
            }
            Bytes::from(buf)
        };
        self.segments.push(segment);
    }

    /// The records collected since the last call, in offset order.
    pub(crate) fn take(&mut self) -> Burst {
        if !self.buf.is_empty() {
            self.seal();
        }
        self.hint = self.bytes;
        self.bytes = 0;
        let capacity = self.slots.len();
        Burst {
            segments: std::mem::take(&mut self.segments),
            slots: std::mem::replace(&mut self.slots, Vec::with_capacity(capacity)),
        }
    }
}

/// The records of one burst, handed from the consumer thread to a lane.
#[derive(Debug)]
pub(crate) struct Burst {
    segments: Vec<Bytes>,
    slots: Vec<Slot>,
}

impl Burst {
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Appends the records to `out`.
    pub(crate) fn into_records(
        self,
        topic: &Arc<str>,
        partition: i32,
        out: &mut Vec<ConsumerRecord>,
    ) {
        let segments = self.segments;
        let bytes = |s: Span| {
            if s.len == 0 {
                // Possibly in a segment never sealed (nothing was copied).
                return Bytes::new();
            }
            let start = s.start as usize;
            segments[s.segment as usize].slice(start..start + s.len as usize)
        };
        out.reserve(self.slots.len());
        out.extend(self.slots.into_iter().map(|slot| match slot {
            Slot::Shared(c) => ConsumerRecord {
                topic: Arc::clone(topic),
                partition,
                offset: c.offset,
                timestamp: c.timestamp,
                key: c.key.map(bytes),
                value: c.value.map(bytes),
                headers: c.headers,
            },
            Slot::Own(record) => record,
        }));
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::ClientConfig;

    use super::*;
    use crate::embedded::EmbeddedBroker;

    fn fields(r: &ConsumerRecord) -> impl PartialEq + std::fmt::Debug {
        (
            r.topic.to_string(),
            r.partition,
            r.offset,
            r.timestamp,
            r.key.clone(),
            r.value.clone(),
            r.headers.clone(),
        )
    }

    /// Records copied through bursts (shared segments, pooled segments,
    /// large records on their own, missing and empty keys and values,
    /// headers) equal records copied one by one.
    #[test]
    fn burst_records_equal_records_copied_one_by_one() {
        let broker = EmbeddedBroker::start().expect("broker");
        broker.create_topic("burst", 1).expect("topic");
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .create()
            .expect("producer");
        let sizes = [
            0usize,
            1,
            200,
            5_000,
            LARGE + 1,
            40_000,
            3,
            5_000,
            7_000,
            200,
        ];
        let mut sent = 0;
        for round in 0..40 {
            for (i, &size) in sizes.iter().enumerate() {
                let value = vec![(round * 10 + i) as u8; size];
                let key = format!("k{round}-{i}");
                let mut record = BaseRecord::<str, [u8]>::to("burst").payload(&value[..]);
                if i % 3 != 0 {
                    record = record.key(key.as_str());
                }
                if i == 2 {
                    record = record.headers(OwnedHeaders::new().insert(KafkaHeader {
                        key: "h",
                        value: Some("v"),
                    }));
                }
                if i == 6 {
                    record = BaseRecord::<str, [u8]>::to("burst").key(key.as_str());
                    // no value
                }
                producer.send(record).map_err(|(e, _)| e).expect("send");
                sent += 1;
            }
        }
        producer.flush(Duration::from_secs(10)).expect("flush");
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("group.id", "burst-test")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        consumer.subscribe(&["burst"]).expect("subscribe");
        let topic: Arc<str> = Arc::from("burst");
        let pool = Arc::new(SegmentPool::default());
        let mut builder = BurstBuilder::new(Arc::clone(&pool));
        let (mut expected, mut got) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(30);
        while expected.len() < sent && Instant::now() < deadline {
            // Bursts of varied lengths, so that some lanes' hints ask for
            // pooled segments and some do not.
            for _ in 0..(expected.len() % 37 + 1) {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(msg)) => {
                        expected.push(ConsumerRecord::from_message(&msg, &topic));
                        builder.push(&msg, &topic);
                    }
                    Some(Err(e)) => panic!("{e}"),
                    None => break,
                }
            }
            if !builder.is_empty() {
                builder.take().into_records(&topic, 0, &mut got);
            }
        }
        assert_eq!(expected.len(), sent);
        assert_eq!(got.len(), sent);
        for (e, g) in expected.iter().zip(&got) {
            assert_eq!(fields(e), fields(g));
        }
        let empty = got.iter().filter(|r| r.value.as_deref() == Some(&[][..]));
        assert_eq!(empty.count(), 40);
        drop(got);
        assert!(
            !pool.free.lock().unwrap().is_empty(),
            "dropped pooled segments go back to the pool"
        );
    }
}
