//! The dead letters' JSON: filtered lists, one letter decoded, replay of
//! one or of a paced selection, delete; and the audit log of every action.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::{ConsoleError, Operator};
use super::Console;
use crate::dlq::{AuditEntry, DeadLetterFilter, DeadLetterStore, StoredDeadLetter};
use crate::producer::KafkaTemplate;
use crate::record::headers as h;
use crate::util::lock;

/// Audit entries kept in memory when there is no store.
const AUDIT_IN_MEMORY: usize = 1000;

/// Replay jobs kept for `GET /api/replays`.
const JOBS_KEPT: usize = 50;

/// A replay of several dead letters at a fixed pace (`GET /api/replays`).
#[derive(Debug, Clone, Serialize)]
pub(super) struct ReplayJob {
    pub(super) id: usize,
    /// ms since the Unix epoch.
    pub(super) started_at: i64,
    pub(super) actor: String,
    /// Records per second.
    pub(super) rate: f64,
    pub(super) total: usize,
    pub(super) replayed: usize,
    /// `[id, reason]` of each letter that could not be replayed.
    pub(super) failed: Vec<(String, String)>,
    /// `running` or `done`.
    pub(super) state: &'static str,
}

fn store(console: &Console) -> Result<(&DeadLetterStore, &KafkaTemplate), ConsoleError> {
    match (
        &console.inner.settings.store,
        &console.inner.settings.template,
    ) {
        (Some(s), Some(t)) => Ok((s, t)),
        _ => Err(ConsoleError::not_found(
            "this console has no dead-letter store (ConsoleBuilder::dead_letters)",
        )),
    }
}

/// Records an action in the audit log (the store's `kafka_console_audit`,
/// else memory) and the tracing log.
pub(super) async fn audit<T, E: std::fmt::Display>(
    console: &Console,
    action: &str,
    target: &str,
    actor: &str,
    result: &Result<T, E>,
) {
    let outcome = match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    tracing::info!(action, target, actor, result = %outcome, "console action");
    let entry = AuditEntry::now(action, target, actor, &outcome);
    if let Some(store) = &console.inner.settings.store {
        if let Err(e) = store.record_audit(&entry).await {
            tracing::error!(error = %e, "console: the audit entry could not be stored");
        }
        return;
    }
    let mut log = lock(&console.inner.audit);
    log.push_back(entry);
    while log.len() > AUDIT_IN_MEMORY {
        log.pop_front();
    }
}

/// The last `limit` audit entries, newest first.
pub(super) async fn audit_entries(
    console: &Console,
    limit: usize,
) -> Result<Vec<AuditEntry>, ConsoleError> {
    if let Some(store) = &console.inner.settings.store {
        return Ok(store.audit_log(limit as i64).await?);
    }
    Ok(lock(&console.inner.audit)
        .iter()
        .rev()
        .take(limit)
        .cloned()
        .collect())
}

/// `GET /api/audit`: `{"audit": [{"at", "action", "target", "actor", "result"}]}`, newest first (200).
pub(super) async fn audit_api(
    State(console): State<Console>,
) -> Result<Json<serde_json::Value>, ConsoleError> {
    Ok(Json(
        serde_json::json!({ "audit": audit_entries(&console, 200).await? }),
    ))
}

/// Dead letters not replayed, per consumer group (empty without a store
/// or when the store fails).
pub(super) async fn counts_by_group(console: &Console) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    let Some(store) = &console.inner.settings.store else {
        return out;
    };
    match store.count_by_group().await {
        Ok(counts) => {
            for (group, n) in counts {
                *out.entry(group.unwrap_or_default()).or_default() += n;
            }
        }
        Err(e) => tracing::warn!(error = %e, "console: cannot count dead letters"),
    }
    out
}

/// A dead letter in a list.
#[derive(Debug, Serialize)]
pub(super) struct LetterRow {
    pub(super) id: String,
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) key: Option<String>,
    pub(super) error_kind: Option<String>,
    pub(super) message: Option<String>,
    pub(super) consumer_group: Option<String>,
    pub(super) attempts: i64,
    pub(super) stored_at: i64,
    pub(super) replayed_at: Option<i64>,
}

impl From<StoredDeadLetter> for LetterRow {
    fn from(l: StoredDeadLetter) -> Self {
        Self {
            key: l.key_str(),
            id: l.id,
            topic: l.original_topic,
            partition: l.original_partition,
            offset: l.original_offset,
            error_kind: l.error_kind,
            message: l.exception_message,
            consumer_group: l.consumer_group,
            attempts: l.attempts,
            stored_at: l.stored_at,
            replayed_at: l.replayed_at,
        }
    }
}

/// Empty form fields mean "any".
pub(super) fn normalized(mut f: DeadLetterFilter) -> DeadLetterFilter {
    for field in [&mut f.topic, &mut f.error_kind, &mut f.consumer_group] {
        if field.as_deref().is_some_and(|v| v.trim().is_empty()) {
            *field = None;
        }
    }
    f
}

pub(super) async fn rows(
    console: &Console,
    filter: DeadLetterFilter,
) -> Result<Vec<LetterRow>, ConsoleError> {
    let (store, _) = store(console)?;
    let letters = store.find(&normalized(filter)).await?;
    Ok(letters.into_iter().map(LetterRow::from).collect())
}

/// `GET /api/dead-letters?topic=&error_kind=&consumer_group=&since=&until=&include_replayed=&limit=`
/// (`since`/`until` in ms since the Unix epoch): `{"dead_letters": [LetterRow]}`, oldest first.
pub(super) async fn list(
    State(console): State<Console>,
    Query(filter): Query<DeadLetterFilter>,
) -> Result<Json<serde_json::Value>, ConsoleError> {
    Ok(Json(
        serde_json::json!({ "dead_letters": rows(&console, filter).await? }),
    ))
}

/// A payload or key for display: `{"format": "json" | "avro" | "text" | "hex", "value": ...}`.
async fn decoded(console: &Console, bytes: &[u8]) -> serde_json::Value {
    #[cfg(feature = "avro")]
    {
        if let Some(value) = avro_json(console, bytes).await {
            return serde_json::json!({ "format": "avro", "value": value });
        }
    }
    #[cfg(not(feature = "avro"))]
    let _ = console;
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        return serde_json::json!({ "format": "json", "value": v });
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::json!({ "format": "text", "value": text }),
        Err(_) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            serde_json::json!({ "format": "hex", "value": hex })
        }
    }
}

/// Confluent-framed Avro decoded with the writer schema from the registry.
#[cfg(feature = "avro")]
async fn avro_json(console: &Console, bytes: &[u8]) -> Option<serde_json::Value> {
    let codec = console.inner.settings.avro.as_ref()?;
    let (id, mut body) = crate::avro::wire::decode(bytes).ok()?;
    let schema = codec.schema(id).await.ok()?;
    let value = apache_avro::from_avro_datum(&schema, &mut body, None).ok()?;
    serde_json::Value::try_from(value).ok()
}

/// `GET /api/dead-letters/{id}`: the letter with every header (its own and
/// the `kafka_dlt-*` ones rebuilt from the stored columns), key and
/// payload decoded (see `decoded`), and the exception.
pub(super) async fn letter_json(
    console: &Console,
    id: &str,
) -> Result<serde_json::Value, ConsoleError> {
    let (store, _) = store(console)?;
    let l = store
        .get(id)
        .await?
        .ok_or_else(|| ConsoleError::not_found(format!("no dead letter `{id}`")))?;
    let mut headers: Vec<(String, String)> = l
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    let dlt = [
        (h::ORIGINAL_TOPIC, Some(l.original_topic.clone())),
        (
            h::ORIGINAL_PARTITION,
            Some(l.original_partition.to_string()),
        ),
        (h::ORIGINAL_OFFSET, Some(l.original_offset.to_string())),
        (
            h::ORIGINAL_TIMESTAMP,
            l.original_timestamp.map(|t| t.to_string()),
        ),
        (h::ORIGINAL_CONSUMER_GROUP, l.consumer_group.clone()),
        (h::EXCEPTION_FQCN, l.exception_fqcn.clone()),
        (h::EXCEPTION_MESSAGE, l.exception_message.clone()),
        (h::EXCEPTION_STACKTRACE, l.exception_stacktrace.clone()),
        (h::ERROR_KIND, l.error_kind.clone()),
        (h::ATTEMPTS, Some(l.attempts.to_string())),
    ];
    headers.extend(
        dlt.into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?))),
    );
    let key = match &l.key {
        Some(k) => decoded(console, k).await,
        None => serde_json::Value::Null,
    };
    let payload = match &l.payload {
        Some(p) => decoded(console, p).await,
        None => serde_json::Value::Null,
    };
    Ok(serde_json::json!({
        "id": l.id, "dlt_topic": l.dlt_topic, "dlt_partition": l.dlt_partition, "dlt_offset": l.dlt_offset,
        "topic": l.original_topic, "partition": l.original_partition, "offset": l.original_offset,
        "timestamp": l.original_timestamp, "consumer_group": l.consumer_group,
        "headers": headers, "key": key, "payload": payload,
        "exception": {"fqcn": l.exception_fqcn, "message": l.exception_message, "stacktrace": l.exception_stacktrace},
        "error_kind": l.error_kind, "attempts": l.attempts, "stored_at": l.stored_at, "replayed_at": l.replayed_at,
    }))
}

/// `GET /api/dead-letters/{id}`.
pub(super) async fn get_one(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ConsoleError> {
    Ok(Json(letter_json(&console, &id).await?))
}

/// Replays one letter and audits it; `Ok(None)` when there is none.
async fn replay_audited(
    console: &Console,
    id: &str,
    actor: &str,
) -> Result<crate::SendResult, ConsoleError> {
    let (store, template) = store(console)?;
    let result = match store.replay(id, template).await {
        Ok(Some(sent)) => Ok(sent),
        Ok(None) => Err(ConsoleError::not_found(format!("no dead letter `{id}`"))),
        Err(e) => Err(ConsoleError::from(e)),
    };
    audit(
        console,
        "replay",
        id,
        actor,
        &result.as_ref().map_err(|e| e.message().to_owned()),
    )
    .await;
    result
}

/// `POST /api/dead-letters/{id}/replay` (body `{}`): sends the record to its
/// topic again; 200 `{"replayed": id, "topic", "partition", "offset"}` once
/// the broker acknowledged it.
pub(super) async fn replay_one(
    State(console): State<Console>,
    Path(id): Path<String>,
    Operator(actor): Operator,
) -> Result<Json<serde_json::Value>, ConsoleError> {
    let sent = replay_audited(&console, &id, &actor).await?;
    Ok(Json(serde_json::json!({
        "replayed": id, "topic": sent.topic, "partition": sent.partition, "offset": sent.offset,
    })))
}

/// `POST /api/dead-letters/{id}/delete` (body `{}`): 200 `{"deleted": id}`, 404 when there is none.
pub(super) async fn delete(
    State(console): State<Console>,
    Path(id): Path<String>,
    Operator(actor): Operator,
) -> Result<Json<serde_json::Value>, ConsoleError> {
    let (store, _) = store(&console)?;
    let result = match store.delete(&id).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ConsoleError::not_found(format!("no dead letter `{id}`"))),
        Err(e) => Err(e.into()),
    };
    audit(
        &console,
        "delete",
        &id,
        &actor,
        &result.as_ref().map_err(|e| e.message().to_owned()),
    )
    .await;
    result?;
    Ok(Json(serde_json::json!({ "deleted": id })))
}

/// `POST /api/dead-letters/replay` body: the letters, and records per
/// second (default: the console's, [`super::DEFAULT_REPLAY_RATE`]).
#[derive(Debug, Deserialize)]
pub(super) struct Selection {
    ids: Vec<String>,
    rate: Option<f64>,
}

/// `POST /api/dead-letters/replay`: starts replaying `ids` in order at
/// `rate` records/s in the background; 202 with the [`ReplayJob`] (follow
/// it at `GET /api/replays`). Each replay is audited.
pub(super) async fn replay_selection(
    State(console): State<Console>,
    Operator(actor): Operator,
    Json(selection): Json<Selection>,
) -> Result<(StatusCode, Json<ReplayJob>), ConsoleError> {
    store(&console)?;
    if selection.ids.is_empty() {
        return Err(ConsoleError::bad_request("`ids` is empty"));
    }
    let rate = selection.rate.unwrap_or(console.inner.settings.replay_rate);
    if !(rate.is_finite() && rate > 0.0) {
        return Err(ConsoleError::bad_request(
            "`rate` must be a positive number of records per second",
        ));
    }
    let job = {
        let mut jobs = lock(&console.inner.jobs);
        let job = ReplayJob {
            id: jobs.last().map_or(1, |j| j.id + 1),
            started_at: crate::util::now_ms(),
            actor: actor.clone(),
            rate,
            total: selection.ids.len(),
            replayed: 0,
            failed: Vec::new(),
            state: "running",
        };
        jobs.push(job.clone());
        let excess = jobs.len().saturating_sub(JOBS_KEPT);
        jobs.drain(..excess);
        job
    };
    let task = console.clone();
    let job_id = job.id;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        for id in selection.ids {
            tick.tick().await;
            let result = replay_audited(&task, &id, &actor).await;
            update(&task, job_id, |j| match result {
                Ok(_) => j.replayed += 1,
                Err(e) => j.failed.push((id, e.message().to_owned())),
            });
        }
        update(&task, job_id, |j| j.state = "done");
    });
    Ok((StatusCode::ACCEPTED, Json(job)))
}

fn update(console: &Console, job: usize, f: impl FnOnce(&mut ReplayJob)) {
    if let Some(j) = lock(&console.inner.jobs).iter_mut().find(|j| j.id == job) {
        f(j);
    }
}

/// `GET /api/replays`: `{"replays": [ReplayJob]}`, newest first.
pub(super) async fn jobs(State(console): State<Console>) -> Json<serde_json::Value> {
    let jobs: Vec<ReplayJob> = lock(&console.inner.jobs).iter().rev().cloned().collect();
    Json(serde_json::json!({ "replays": jobs }))
}
