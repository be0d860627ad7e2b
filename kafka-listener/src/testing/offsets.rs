//! Offsets, as `KafkaTestUtils.getCurrentOffset` and `getEndOffsets` give
//! them: a group's committed offsets and a topic's log end, and waits on
//! them.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::POLL_INTERVAL;

/// The committed offsets of `group` on `topic`'s partitions
/// `0..partitions`, in partition order (-1 where nothing is committed).
/// Blocking: in async code call it through `spawn_blocking`, or use
/// [`wait_committed`].
///
/// # Panics
/// When the group coordinator does not answer within 10 s.
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    try_committed(bootstrap, group, topic, partitions, Duration::from_secs(10)).unwrap_or_else(
        || panic!("the committed offsets of group {group} on {topic} (at {bootstrap}) are not known after 10 s"),
    )
}

/// As [`committed`], or `None` when the broker does not answer within
/// `timeout` (a broker that is down).
pub fn try_committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Option<Vec<i64>> {
    let consumer = super::consumer(bootstrap, Some(group)).ok()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer.committed_offsets(tpl, timeout).ok()?;
    Some(
        (0..partitions)
            .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            })
            .collect(),
    )
}

/// The log end offset (high watermark) of each partition `0..partitions`
/// of `topic`: the offset the next record will get. Blocking.
///
/// # Panics
/// When the watermarks are not known within 10 s.
pub fn log_end(bootstrap: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer = super::consumer(bootstrap, None)
        .unwrap_or_else(|e| panic!("a consumer of {bootstrap}: {e}"));
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("watermarks of {topic}-{p} at {bootstrap}: {e}"))
                .1
        })
        .collect()
}

/// Waits until the committed offsets of `group` on `topic` are `want`
/// (one per partition, `want.len()` partitions).
///
/// # Panics
/// After `timeout`, with the offsets last seen.
pub async fn wait_committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    want: &[i64],
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    let partitions = want.len() as i32;
    loop {
        let now = blocking_committed(bootstrap, group, topic, partitions).await;
        if now.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} on {topic}: committed {now:?} after {timeout:?}, wanted {want:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until `group` has committed the log end of every partition
/// `0..partitions` of `topic` (everything written so far is finished), and
/// returns those offsets. A partition that is empty (log end 0) counts as
/// consumed without a committed offset.
///
/// # Panics
/// After `timeout`, with the offsets last seen.
pub async fn wait_committed_to_log_end(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Vec<i64> {
    let (b, t) = (bootstrap.to_owned(), topic.to_owned());
    let end = tokio::task::spawn_blocking(move || log_end(&b, &t, partitions))
        .await
        .expect("the log end reader panicked");
    // A partition that never got a record has no committed offset: it is
    // consumed as it is.
    let consumed = |now: &[i64]| {
        now.len() == end.len()
            && now
                .iter()
                .zip(&end)
                .all(|(&c, &e)| c == e || (e == 0 && c < 0))
    };
    let deadline = Instant::now() + timeout;
    loop {
        let now = blocking_committed(bootstrap, group, topic, partitions).await;
        if now.as_deref().is_some_and(consumed) {
            return end;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} on {topic}: committed {now:?} after {timeout:?}, wanted the log end {end:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn blocking_committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Option<Vec<i64>> {
    let (b, g, t) = (bootstrap.to_owned(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        try_committed(&b, &g, &t, partitions, Duration::from_secs(5))
    })
    .await
    .ok()
    .flatten()
}
