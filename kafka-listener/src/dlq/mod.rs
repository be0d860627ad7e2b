//! Dead-letter topics: records that failed for good are published, with
//! their original key, value and headers plus Spring Kafka's `kafka_dlt-*`
//! headers ([`headers`]), to `<topic>-dlt` (Spring Kafka 3.3+ naming) or a
//! named topic, and the offset is committed only once the broker
//! acknowledged the dead letter ([`DeadLetterRecoverer`]).
//!
//! With the `dead-letter-store` feature (on by default),
//! `DeadLetterStore` consumes dead-letter topics into a database table
//! (sqlx; SQLite and PostgreSQL) and replays a stored dead letter to its
//! original topic.

pub mod headers;
mod recoverer;
#[cfg(feature = "dead-letter-store")]
mod replay;
#[cfg(feature = "dead-letter-store")]
mod store;

pub use self::recoverer::DeadLetterRecoverer;
#[cfg(feature = "dead-letter-store")]
pub use self::store::{DeadLetterStore, StoreError, StoredDeadLetter};
pub use crate::retry::{DeadLetter, DLT_SUFFIX};

use crate::app::NewTopic;
use crate::listener::ListenerSpec;

/// The dead-letter and retry topics the listeners need and that do not
/// exist yet. Each gets the partition count of its source topic: as
/// declared with [`crate::KafkaAppBuilder::topic`], else as the broker
/// knows it, else one partition. On a broker that is not embedded the
/// broker's metadata is read once (up to 10 s) so that existing topics are
/// left alone. Listeners subscribed by pattern have no known source
/// topics: their dead-letter topics must exist.
pub(crate) async fn topics_for(
    listeners: &[ListenerSpec],
    declared: &[NewTopic],
    client: Option<rdkafka::ClientConfig>,
) -> Vec<NewTopic> {
    let wanted = listeners
        .iter()
        .any(|l| l.dead_letter.is_some() || l.retry_topics.is_some());
    if !wanted {
        return Vec::new();
    }
    // (name, partitions) of the topics the broker has.
    let existing: Vec<(String, i32)> = match client {
        None => Vec::new(),
        Some(config) => tokio::task::spawn_blocking(move || {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            let consumer: BaseConsumer = config.create().ok()?;
            let md = consumer
                .fetch_metadata(None, std::time::Duration::from_secs(10))
                .ok()?;
            Some(
                md.topics()
                    .iter()
                    .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
                    .collect(),
            )
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_default(),
    };
    let partitions = |t: &str| {
        declared
            .iter()
            .find(|n| n.name == t)
            .map(|n| n.partitions)
            .or_else(|| existing.iter().find(|e| e.0 == t).map(|e| e.1))
            .unwrap_or(1)
    };
    let mut out: Vec<NewTopic> = Vec::new();
    for l in listeners {
        for source in l.topic_names() {
            let n = partitions(source);
            let mut names = Vec::new();
            if let Some(rt) = &l.retry_topics {
                names.extend(rt.topic_names(source));
            }
            match (&l.dead_letter, &l.retry_topics) {
                (Some(dl), _) => names.push(dl.topic_for(source)),
                (None, Some(_)) => names.push(DeadLetter::suffixed().topic_for(source)),
                (None, None) => {}
            }
            for name in names {
                let known = declared.iter().any(|d| d.name == name)
                    || out.iter().any(|d| d.name == name)
                    || existing.iter().any(|e| e.0 == name);
                if !known {
                    out.push(NewTopic::new(name, n));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::retry::RetryTopics;

    async fn noop(_: String) {}

    #[test]
    fn the_no_dead_letter_warning_is_only_for_listeners_without_one() {
        let plain = ListenerSpec::new("a").topics(["t"]).handler(noop);
        assert!(plain.dead_letter_hint());
        let dlt = ListenerSpec::new("b")
            .topics(["t"])
            .dead_letter(DeadLetter::suffixed())
            .handler(noop);
        assert!(!dlt.dead_letter_hint());
        let rt = ListenerSpec::new("c")
            .topics(["t"])
            .retry_topics(RetryTopics::new(2, [Duration::from_secs(1)]))
            .handler(noop);
        assert!(!rt.dead_letter_hint());
    }

    #[tokio::test]
    async fn dead_letter_and_retry_topics_get_the_source_partition_count() {
        let listeners = [
            ListenerSpec::new("a")
                .topics(["orders", "other"])
                .dead_letter(DeadLetter::suffixed())
                .handler(noop),
            ListenerSpec::new("b")
                .topics(["mails"])
                .retry_topics(RetryTopics::new(
                    4,
                    [Duration::from_millis(500), Duration::from_secs(10)],
                ))
                .dead_letter(DeadLetter::topic("dead"))
                .handler(noop),
            ListenerSpec::new("c").topics(["plain"]).handler(noop),
        ];
        let declared = [NewTopic::new("orders", 3), NewTopic::new("mails", 2)];
        let got: Vec<(String, i32)> = topics_for(&listeners, &declared, None)
            .await
            .into_iter()
            .map(|t| (t.name, t.partitions))
            .collect();
        let want = [
            ("orders-dlt", 3),
            ("other-dlt", 1),
            ("mails-retry-500", 2),
            ("mails-retry-10000", 2),
            ("dead", 2),
        ]
        .map(|(n, p)| (n.to_owned(), p));
        assert_eq!(got, want);
    }
}
