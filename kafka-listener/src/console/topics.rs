//! The cluster's topics ([`super::ConsoleBuilder::topics`]): each topic's
//! partitions with their log start and end offsets, read with a short-lived
//! consumer on a blocking thread.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use serde::Serialize;

use super::auth::ConsoleError;
use super::Console;

/// How long the metadata and each watermark request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One topic (`GET /api/topics`).
#[derive(Debug, Serialize)]
pub(super) struct TopicView {
    pub(super) topic: String,
    pub(super) partitions: Vec<PartitionView>,
}

/// One partition of a topic.
#[derive(Debug, Serialize)]
pub(super) struct PartitionView {
    pub(super) partition: i32,
    /// The first offset still retained.
    pub(super) log_start: i64,
    /// One past the last offset.
    pub(super) log_end: i64,
}

fn read(config: &ClientConfig) -> Result<Vec<TopicView>, String> {
    let consumer: BaseConsumer = config.create().map_err(|e| e.to_string())?;
    let md = consumer
        .fetch_metadata(None, TIMEOUT)
        .map_err(|e| format!("no metadata from the cluster: {e}"))?;
    let mut out = Vec::new();
    for t in md
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
    {
        let mut partitions = Vec::new();
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(t.name(), p.id(), TIMEOUT)
                .map_err(|e| format!("{}-{}: {e}", t.name(), p.id()))?;
            partitions.push(PartitionView {
                partition: p.id(),
                log_start: low,
                log_end: high,
            });
        }
        partitions.sort_by_key(|p| p.partition);
        out.push(TopicView {
            topic: t.name().to_owned(),
            partitions,
        });
    }
    out.sort_by(|a, b| a.topic.cmp(&b.topic));
    Ok(out)
}

/// Every topic but the internal ones (`__*`), by name.
pub(super) async fn topics(console: &Console) -> Result<Vec<TopicView>, ConsoleError> {
    let Some(config) = console.inner.settings.topics.clone() else {
        return Err(ConsoleError::not_found(
            "this console shows no topics (ConsoleBuilder::topics)",
        ));
    };
    tokio::task::spawn_blocking(move || read(&config))
        .await
        .map_err(|e| {
            ConsoleError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        })?
        .map_err(|e| ConsoleError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e))
}

/// `GET /api/topics`: `{"topics": [{"topic", "partitions": [{"partition", "log_start", "log_end"}]}]}`.
pub(super) async fn api(
    State(console): State<Console>,
) -> Result<Json<serde_json::Value>, ConsoleError> {
    Ok(Json(
        serde_json::json!({ "topics": topics(&console).await? }),
    ))
}
