//! Topics on a real cluster for [`super::TestKafka::create_topic`].

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::error::{Error, Result};

/// Creates `name` with the broker's default replication factor (an
/// existing topic is fine; one still being deleted is tried again for
/// 60 s), then waits until each partition has a leader.
pub(super) fn create_topic(bootstrap: &str, name: &str, partitions: i32) -> Result<()> {
    let (admin, options) = admin(bootstrap)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // -1: the broker's default.replication.factor (KIP-464).
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(-1));
        let result = futures::executor::block_on(admin.create_topics([&topic], &options))?;
        match result.into_iter().next() {
            Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => break,
            Some(Err((_, code))) if Instant::now() < deadline => {
                tracing::info!(topic = name, ?code, "create topic: trying again");
                std::thread::sleep(Duration::from_millis(500));
            }
            Some(Err((_, code))) => {
                return Err(Error::Config(format!("create topic {name}: {code}")))
            }
            None => return Err(Error::Config(format!("create topic {name}: no answer"))),
        }
    }
    wait_for_leaders(bootstrap, name, partitions)
}

/// Deletes `name` (a missing topic is fine) and waits until the metadata
/// no longer lists it (30 s at most). Kafka drops the groups' committed
/// offsets of a deleted topic with it.
pub(super) fn delete_topic(bootstrap: &str, name: &str) -> Result<()> {
    let (admin, options) = admin(bootstrap)?;
    let result = futures::executor::block_on(admin.delete_topics(&[name], &options))?;
    match result.into_iter().next() {
        Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::UnknownTopicOrPartition))) | None => {}
        Some(Err((_, code))) => return Err(Error::Config(format!("delete topic {name}: {code}"))),
    }
    let consumer = super::consumer(bootstrap, None)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let md = consumer.fetch_metadata(Some(name), Duration::from_secs(5))?;
        if md
            .topics()
            .iter()
            .all(|t| t.name() != name || t.error().is_some() || t.partitions().is_empty())
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(Error::Config(format!(
        "topic {name} still listed 30 s after its deletion"
    )))
}

/// An admin client of `bootstrap` and options with a 30 s operation
/// timeout.
fn admin(bootstrap: &str) -> Result<(AdminClient<DefaultClientContext>, AdminOptions)> {
    let admin = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    Ok((admin, options))
}

/// Waits until the metadata of `topic` shows `partitions` partitions, each
/// with a leader (30 s at most).
fn wait_for_leaders(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let consumer = super::consumer(bootstrap, None)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                    if t.error().is_none()
                        && t.partitions().len() == partitions as usize
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                    {
                        return Ok(());
                    }
                    last = format!("{:?} / {} partitions", t.error(), t.partitions().len());
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(Error::Config(format!(
        "topic {topic} has no leader on every partition after 30 s: {last}"
    )))
}
