//! The listeners' JSON: the overview, one listener's partitions, and the
//! actions start, stop, pause, resume and seek.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::{ConsoleError, Operator};
use super::{letters, Console};
use crate::config::SeekPosition;
use crate::container::{ListenerContainer, PartitionStatus, RateLimitBudget};

/// One listener in the overview (`GET /api/listeners`).
#[derive(Debug, Clone, Serialize)]
pub(super) struct ListenerView {
    pub(super) id: String,
    pub(super) group: String,
    pub(super) topics: Vec<String>,
    /// `running`, `paused` or `stopped`.
    pub(super) state: &'static str,
    /// Consumers running (0 when stopped).
    pub(super) consumers: usize,
    pub(super) records_per_second: f64,
    /// Records behind the log end, every partition together.
    pub(super) lag: i64,
    pub(super) processed: u64,
    /// Failed handler calls (each attempt).
    pub(super) failures: u64,
    /// Dead letters of its group in the store, not replayed; `null`
    /// without a store.
    pub(super) dead_letters: Option<i64>,
}

fn state(c: &ListenerContainer) -> &'static str {
    match (c.is_running(), c.is_paused()) {
        (false, _) => "stopped",
        (true, true) => "paused",
        (true, false) => "running",
    }
}

fn view(console: &Console, c: &ListenerContainer, dead: &HashMap<String, i64>) -> ListenerView {
    let counts = c.counts();
    let running = c.is_running();
    ListenerView {
        id: c.id().to_owned(),
        group: c.group_id().to_owned(),
        topics: c.topics(),
        state: state(c),
        consumers: if running { c.concurrency() } else { 0 },
        records_per_second: console.inner.live.rate(c.id()),
        lag: c.lag().iter().map(|l| l.lag).sum(),
        processed: counts.processed,
        failures: counts.failed,
        dead_letters: console
            .inner
            .settings
            .store
            .as_ref()
            .map(|_| dead.get(c.group_id()).copied().unwrap_or(0)),
    }
}

/// Every listener, in declaration order.
pub(super) async fn overview(console: &Console) -> Vec<ListenerView> {
    let dead = letters::counts_by_group(console).await;
    console
        .inner
        .settings
        .registry
        .containers()
        .iter()
        .map(|c| view(console, c, &dead))
        .collect()
}

/// `GET /api/listeners`: `{"read_only": bool, "listeners": [ListenerView]}`.
pub(super) async fn listeners(State(console): State<Console>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "read_only": console.is_read_only(),
        "listeners": overview(&console).await,
    }))
}

/// One listener with its partitions (`GET /api/listeners/{id}`).
#[derive(Debug, Serialize)]
pub(super) struct ListenerDetail {
    #[serde(flatten)]
    pub(super) listener: ListenerView,
    pub(super) partitions: Vec<PartitionStatus>,
    /// Whether the partitions are paused (the listener is).
    pub(super) paused: bool,
    pub(super) rate_limit: Option<RateLimitBudget>,
}

pub(super) fn container(
    console: &Console,
    id: &str,
) -> Result<Arc<ListenerContainer>, ConsoleError> {
    console
        .inner
        .settings
        .registry
        .container(id)
        .ok_or_else(|| ConsoleError::not_found(format!("no listener `{id}`")))
}

pub(super) async fn detail(console: &Console, id: &str) -> Result<ListenerDetail, ConsoleError> {
    let c = container(console, id)?;
    let dead = letters::counts_by_group(console).await;
    Ok(ListenerDetail {
        listener: view(console, &c, &dead),
        partitions: c.partition_status(),
        paused: c.is_paused(),
        rate_limit: c.rate_limit_budget(),
    })
}

/// `GET /api/listeners/{id}`: [`ListenerDetail`].
pub(super) async fn listener(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> Result<Json<ListenerDetail>, ConsoleError> {
    Ok(Json(detail(&console, &id).await?))
}

/// `POST /api/listeners/{id}/{start|stop|pause|resume}` (body `{}`):
/// `{"listener": id, "state": "running" | "paused" | "stopped"}` once done
/// (a stop returns when the consumers have left the group).
pub(super) async fn act(
    State(console): State<Console>,
    Path((id, action)): Path<(String, String)>,
    Operator(actor): Operator,
) -> Result<Json<serde_json::Value>, ConsoleError> {
    let c = container(&console, &id)?;
    let done = match action.as_str() {
        "start" => c.start(),
        "stop" => {
            c.stop().await;
            Ok(())
        }
        "pause" => {
            c.pause();
            Ok(())
        }
        "resume" => {
            c.resume();
            Ok(())
        }
        _ => {
            return Err(ConsoleError::not_found(format!(
                "no action `{action}`; expected start, stop, pause, resume or seek"
            )))
        }
    };
    letters::audit(&console, &action, &id, &actor, &done).await;
    done?;
    Ok(Json(
        serde_json::json!({ "listener": id, "state": state(&c) }),
    ))
}

/// `POST /api/listeners/{id}/seek` body.
#[derive(Debug, Deserialize)]
pub(super) struct SeekBody {
    topic: String,
    partition: i32,
    /// `beginning`, `end`, `offset` or `timestamp`.
    position: String,
    /// The offset, or the timestamp in ms since the Unix epoch.
    value: Option<i64>,
}

/// `POST /api/listeners/{id}/seek`: moves one assigned partition (202
/// `{"listener", "topic", "partition", "position"}`); the consumer does it
/// before its next poll. 404 for a partition the listener does not hold,
/// 400 for an unknown position or a missing value.
pub(super) async fn seek(
    State(console): State<Console>,
    Path(id): Path<String>,
    Operator(actor): Operator,
    Json(body): Json<SeekBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ConsoleError> {
    let c = container(&console, &id)?;
    let value = || {
        body.value.ok_or_else(|| {
            ConsoleError::bad_request(format!("`{}` needs a `value`", body.position))
        })
    };
    let position = match body.position.as_str() {
        "beginning" => SeekPosition::Beginning,
        "end" => SeekPosition::End,
        "offset" => SeekPosition::Offset(value()?),
        "timestamp" => SeekPosition::Timestamp(value()?),
        other => {
            return Err(ConsoleError::bad_request(format!(
                "position `{other}`: expected beginning, end, offset or timestamp"
            )))
        }
    };
    let held = c
        .assigned_partitions()
        .iter()
        .flatten()
        .any(|(t, p)| *t == body.topic && *p == body.partition);
    if !held {
        return Err(ConsoleError::not_found(format!(
            "listener `{id}` holds no partition {}-{}",
            body.topic, body.partition
        )));
    }
    c.seek(&body.topic, body.partition, position);
    let target = format!("{id} {}-{}", body.topic, body.partition);
    let done: Result<(), String> = Ok(());
    letters::audit(
        &console,
        &format!("seek {position}"),
        &target,
        &actor,
        &done,
    )
    .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "listener": id, "topic": body.topic, "partition": body.partition,
            "position": position.to_string(),
        })),
    ))
}
