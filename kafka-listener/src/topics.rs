//! Topic administration: the topics an app declares ([`NewTopic`], Spring's
//! `TopicBuilder` and `KafkaAdmin`), the dead-letter and retry topics its
//! listeners need, and their creation at start.
//!
//! Top layer: reads listener settings, talks to the broker's admin API.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic as RdNewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
#[cfg(feature = "embedded")]
use crate::embedded::EmbeddedBroker;
#[cfg(not(feature = "embedded"))]
type EmbeddedBroker = std::convert::Infallible;
use crate::error::Result;
use crate::listener::ListenerSpec;
use crate::retry::DeadLetter;

/// A topic the app declares: created at start if missing (Spring's
/// `NewTopic` bean, built as with `TopicBuilder`, created by `KafkaAdmin`).
///
/// The replication factor defaults to the broker's `default.replication.factor`
/// (the admin API's `-1`, KIP-464), so a topic on a cluster with
/// `min.insync.replicas=2` is not created with one replica.
///
/// # Examples
/// ```
/// use kafka_listener::NewTopic;
///
/// let topic = NewTopic::new("orders", 6)
///     .replication(3)
///     .config("retention.ms", "604800000")
///     .config("min.insync.replicas", "2");
/// assert_eq!(topic.name(), "orders");
/// assert_eq!(topic.partitions(), 6);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewTopic {
    pub(crate) name: String,
    pub(crate) partitions: i32,
    pub(crate) replication: Option<i32>,
    pub(crate) configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with `partitions` partitions and the broker's default
    /// replication factor.
    ///
    /// # Panics
    /// When `partitions` is less than 1.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        assert!(
            partitions >= 1,
            "a topic needs at least one partition, not {partitions}"
        );
        Self {
            name: name.into(),
            partitions,
            replication: None,
            configs: BTreeMap::new(),
        }
    }

    /// Sets the replication factor (the embedded broker always uses 1).
    ///
    /// # Panics
    /// When `replication` is less than 1.
    pub fn replication(mut self, replication: i32) -> Self {
        assert!(
            replication >= 1,
            "the replication factor must be at least 1, not {replication}"
        );
        self.replication = Some(replication);
        self
    }

    /// Sets a topic config (`retention.ms`, `cleanup.policy`,
    /// `min.insync.replicas`, ...), as `TopicBuilder.config`.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }

    /// The topic name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of partitions.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// The replication factor; `None` for the broker's default.
    pub fn replication_factor(&self) -> Option<i32> {
        self.replication
    }

    /// The topic configs.
    pub fn configs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.configs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The topics the broker has, with their partition counts; `None` when it
/// does not answer within 10 s.
async fn probe(config: rdkafka::ClientConfig) -> Option<Vec<(String, i32)>> {
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer;
        let consumer: rdkafka::consumer::BaseConsumer = config.create().ok()?;
        crate::util::partition_counts(consumer.client(), None, Duration::from_secs(10))
    })
    .await
    .ok()
    .flatten()
}

/// The dead-letter and retry topics the listeners need and that do not
/// exist yet. Each gets the partition count of its source topic: as
/// declared with [`crate::KafkaAppBuilder::topic`], else as the broker
/// knows it, else one partition; a declared source also hands down its
/// replication factor and `min.insync.replicas` (else the broker's
/// defaults apply, as for any [`NewTopic`]). On a broker that is not embedded the
/// broker's metadata is read once (up to 10 s) so that existing topics are
/// left alone. Listeners subscribed by pattern have no known source
/// topics: their dead-letter topics must exist.
pub(crate) async fn failure_topics(
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
        Some(config) => probe(config).await.unwrap_or_default(),
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
                    out.push(inherit(NewTopic::new(name, n), source, declared));
                }
            }
        }
    }
    out
}

/// Topic configs a dead-letter or retry topic takes over from its declared
/// source topic: durability, not retention or compaction (a dead-letter
/// topic keeps its records as long as the broker's default says).
const INHERITED_CONFIGS: &[&str] = &["min.insync.replicas"];

/// `topic` with the replication factor and [`INHERITED_CONFIGS`] of
/// `source` when `source` is declared: records that failed are as durable
/// as the records they came from.
fn inherit(mut topic: NewTopic, source: &str, declared: &[NewTopic]) -> NewTopic {
    if let Some(src) = declared.iter().find(|d| d.name == source) {
        topic.replication = src.replication;
        for (k, v) in src.configs() {
            if INHERITED_CONFIGS.contains(&k) {
                topic = topic.config(k, v);
            }
        }
    }
    topic
}

pub(crate) async fn create_topics(
    config: &KafkaConfig,
    bootstrap: &str,
    embedded: Option<&EmbeddedBroker>,
    topics: &[NewTopic],
) -> Result<()> {
    if topics.is_empty() {
        return Ok(());
    }
    if let Some(broker) = embedded {
        #[cfg(feature = "embedded")]
        for t in topics {
            broker.create_topic(&t.name, t.partitions)?;
        }
        #[cfg(not(feature = "embedded"))]
        match *broker {}
        #[cfg(feature = "embedded")]
        return Ok(());
    }
    // Create only the topics the cluster lacks (listing all topics does not
    // trigger auto-creation the way asking for one topic may).
    let client_config = config.consumer_config(bootstrap);
    let existing: Option<std::collections::HashSet<String>> = probe(client_config.clone())
        .await
        .map(|topics| topics.into_iter().map(|(name, _)| name).collect());
    let missing: Vec<&NewTopic> = topics
        .iter()
        .filter(|t| existing.as_ref().is_none_or(|e| !e.contains(&t.name)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client_config.create()?;
    let new: Vec<RdNewTopic<'_>> = missing
        .iter()
        .map(|t| {
            t.configs.iter().fold(
                RdNewTopic::new(
                    &t.name,
                    t.partitions,
                    TopicReplication::Fixed(t.replication.unwrap_or(-1)),
                ),
                |new, (k, v)| new.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    // As Spring's KafkaAdmin (fatalIfBrokerNotAvailable = false): a topic
    // that cannot be created is reported and the app starts anyway; its
    // listeners wait for the topic to appear.
    match admin.create_topics(new.iter(), &opts).await {
        Ok(results) => {
            for result in results {
                match result {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((topic, code)) => {
                        tracing::error!(%topic, error = %code, "cannot create topic; listeners of it wait until it exists");
                    }
                }
            }
        }
        Err(e) => {
            let names: Vec<&str> = missing.iter().map(|t| t.name.as_str()).collect();
            tracing::error!(topics = ?names, error = %e, "cannot create topics; listeners of them wait until they exist");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::retry::{DeadLetter, RetryTopics};

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
        let got: Vec<(String, i32)> = failure_topics(&listeners, &declared, None)
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
