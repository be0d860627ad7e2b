//! The server-rendered pages (every value escaped), the script and the
//! style sheet. The pages read the same data as the JSON API; the script
//! (`console.js`) keeps the token in `sessionStorage`, sends the actions,
//! and draws the live charts from `/api/history` and `/api/events`.

use std::fmt::Write;

use axum::extract::{FromRequestParts, OriginalUri, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use super::auth::ConsoleError;
use super::{api, letters, Console};
use crate::container::BackingOff;
use crate::dlq::DeadLetterFilter;

/// Where the console is mounted (`/console`), from the request's original
/// path and the path the nested router saw.
#[derive(Debug)]
pub(super) struct Base(String);

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let inner = parts.uri.path().to_owned();
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| inner.clone(), |o| o.0.path().to_owned());
        let base = if inner == "/" {
            original.trim_end_matches('/')
        } else {
            original.strip_suffix(&inner).unwrap_or("")
        };
        Ok(Self(base.to_owned()))
    }
}

/// `s` with HTML's special characters escaped (text and attribute values).
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment with everything but unreserved characters percent-encoded.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn opt(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| esc(&v.to_string()))
}

/// An offset, or `–` for -1 (none yet).
fn offset(o: i64) -> String {
    if o < 0 {
        "–".to_owned()
    } else {
        o.to_string()
    }
}

/// A time in ms since the Unix epoch; the script shows it in local time.
fn time(ms: i64) -> String {
    format!(r#"<time data-ms="{ms}">{ms}</time>"#)
}

/// An action button: POSTs `body` to `<base>/api/<path>` with the token.
fn button(path: &str, label: &str, confirm: Option<&str>) -> String {
    let confirm = confirm.map_or_else(String::new, |c| format!(r#" data-confirm="{}""#, esc(c)));
    format!(
        r#"<button type="button" data-post="api/{}"{confirm} disabled>{}</button>"#,
        esc(path),
        esc(label)
    )
}

fn page(console: &Console, base: &Base, title: &str, body: &str) -> Html<String> {
    let ro = console.is_read_only();
    let banner = if ro {
        r#"<p class="banner" id="read-only">Read-only: no console token is configured (set <code>CONSOLE_TOKEN</code>); actions are disabled.</p>"#.to_owned()
    } else {
        r#"<form id="token-form" class="banner"><label>Console token <input type="password" name="token" autocomplete="off"></label> <button type="submit">Use</button> <span id="token-state"></span></form>"#.to_owned()
    };
    let b = esc(&base.0);
    let link = |shown: bool, path: &str, label: &str| {
        if shown {
            format!(r#" <a href="{b}/{path}">{label}</a>"#)
        } else {
            String::new()
        }
    };
    let settings = &console.inner.settings;
    let asyncapi = link(settings.topics.is_some(), "topics", "Topics")
        + &link(settings.asyncapi.is_some(), "asyncapi", "AsyncAPI");
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{t} · kafka-listener console</title>
<link rel="stylesheet" href="{b}/assets/console.css"></head>
<body data-base="{b}" data-read-only="{ro}">
<nav><strong>kafka-listener</strong> <a href="{home}">Listeners</a> <a href="{b}/dead-letters">Dead letters</a> <a href="{b}/replays">Replays</a> <a href="{b}/audit">Audit</a>{asyncapi}</nav>
{banner}
<p id="status" role="status"></p>
<main><h1>{t}</h1>
{body}</main>
<script src="{b}/assets/console.js"></script>
</body></html>"#,
        t = esc(title),
        home = if b.is_empty() {
            "/".to_owned()
        } else {
            b.clone()
        },
    ))
}

/// A listener's fields as the pages show them: (JSON name, label).
const FIELDS: [(&str, &str); 8] = [
    ("group", "group"),
    ("topics", "topics"),
    ("state", "state"),
    ("consumers", "consumers"),
    ("records_per_second", "records/s"),
    ("lag", "lag"),
    ("failures", "failures"),
    ("dead_letters", "dead letters"),
];

/// The values of [`FIELDS`] for `l`, escaped (the dead letters link to
/// the group's): (JSON name, value).
fn fields(l: &api::ListenerView, base: &Base) -> [(&'static str, String); 8] {
    let dead = match l.dead_letters {
        Some(n) => format!(
            r#"<a href="{}/dead-letters?consumer_group={}">{n}</a>"#,
            esc(&base.0),
            seg(&l.group)
        ),
        None => "–".to_owned(),
    };
    let values = [
        esc(&l.group),
        esc(&l.topics.join(", ")),
        l.state.to_owned(),
        l.consumers.to_string(),
        l.records_per_second.to_string(),
        l.lag.to_string(),
        l.failures.to_string(),
        dead,
    ];
    std::array::from_fn(|i| (FIELDS[i].0, values[i].clone()))
}

/// The two live charts, throughput and lag, drawn by the script from
/// `api/history` and the page's event stream.
const CHARTS: &str = r#"<section class="charts"><figure><figcaption>Records/s (15 min)</figcaption><svg id="chart-rate" viewBox="0 0 300 80"></svg></figure>
<figure><figcaption>Lag (15 min)</figcaption><svg id="chart-lag" viewBox="0 0 300 80"></svg></figure></section>"#;

/// `GET /`: the listeners, live charts of throughput and lag.
pub(super) async fn listeners(State(console): State<Console>, base: Base) -> Html<String> {
    let mut rows = String::new();
    for l in api::overview(&console).await {
        let id = seg(&l.id);
        let actions: String = ["start", "stop", "pause", "resume"]
            .iter()
            .map(|a| button(&format!("listeners/{id}/{a}"), a, None))
            .collect();
        let cells: String = fields(&l, &base)
            .iter()
            .map(|(name, value)| format!(r#"<td data-field="{name}">{value}</td>"#))
            .collect();
        let _ = write!(
            rows,
            r#"<tr data-listener="{}"><td><a href="{b}/listeners/{id}">{}</a></td>{cells}<td>{actions}</td></tr>"#,
            esc(&l.id),
            esc(&l.id),
            b = esc(&base.0),
        );
    }
    let body = format!(
        r#"{CHARTS}
<table id="listeners"><thead><tr><th>id</th>{heads}<th>actions</th></tr></thead>
<tbody>{rows}</tbody></table>"#,
        heads = FIELDS
            .iter()
            .map(|(_, label)| format!("<th>{label}</th>"))
            .collect::<String>(),
    );
    page(&console, &base, "Listeners", &body)
}

/// A partition's state: paused, backing off (the record, its key and
/// attempt, when it is tried again), or fetching.
pub(super) fn partition_state(paused: bool, backing_off: Option<&BackingOff>) -> String {
    match (backing_off, paused) {
        (Some(b), _) => format!(
            "backing off: offset {}, key {}, attempt {}, again at {}",
            b.offset,
            opt(b.key.as_deref()),
            b.attempt,
            time(b.retry_at_ms)
        ),
        (None, true) => "paused".to_owned(),
        (None, false) => "fetching".to_owned(),
    }
}

/// `GET /listeners/{id}`: the partitions, each with a seek form.
pub(super) async fn listener(
    State(console): State<Console>,
    base: Base,
    Path(id): Path<String>,
) -> Result<Html<String>, ConsoleError> {
    let d = api::detail(&console, &id).await?;
    let l = &d.listener;
    let sid = seg(&l.id);
    let mut rows = String::new();
    for (i, p) in d.partitions.iter().enumerate() {
        let _ = write!(
            rows,
            r#"<tr data-topic="{topic}" data-partition="{part}"><td>{topic}</td><td>{part}</td><td>{}</td><td data-field="committed">{}</td><td data-field="finished">{}</td><td data-field="log_end">{}</td><td data-field="lag">{}</td><td data-field="in_flight">{}</td><td data-field="oldest_in_flight_ms">{}</td><td data-field="state">{}</td>
<td><form id="seek-{i}" class="seek"><input type="hidden" name="topic" value="{topic}"><input type="hidden" name="partition" value="{part}">
<select name="position"><option>beginning</option><option>end</option><option>offset</option><option>timestamp</option></select>
<input name="value" placeholder="offset or ms" size="12"> {}</form></td></tr>"#,
            p.consumer,
            offset(p.committed),
            offset(p.finished),
            offset(p.log_end),
            p.lag,
            p.in_flight,
            opt(p.oldest_in_flight_ms),
            partition_state(d.paused, p.backing_off.as_ref()),
            button(
                &format!("listeners/{sid}/seek"),
                "seek",
                Some("Move this partition? Records may be skipped or handled again.")
            )
            .replace("<button", &format!(r#"<button data-form="seek-{i}""#)),
            topic = esc(&p.topic),
            part = p.partition,
        );
    }
    let budget = d.rate_limit.map_or_else(
        || "none".to_owned(),
        |r| format!("{} of {} per {} ms left", r.available, r.permits, r.per_ms),
    );
    let actions: String = ["start", "stop", "pause", "resume"]
        .iter()
        .map(|a| button(&format!("listeners/{sid}/{a}"), a, None))
        .collect();
    let facts: String = fields(l, &base)
        .iter()
        .zip(FIELDS)
        .map(|((_, value), (_, label))| format!("<dt>{label}</dt><dd>{value}</dd>"))
        .collect();
    let body = format!(
        r#"<dl>{facts}<dt>rate limit</dt><dd>{}</dd></dl>
<p>{actions}</p>
{CHARTS}
<table id="partitions" data-listener="{}"><thead><tr><th>topic</th><th>partition</th><th>consumer</th><th>committed</th><th>finished</th><th>log end</th><th>lag</th><th>in flight</th><th>oldest (ms)</th><th>state</th><th>seek</th></tr></thead><tbody>{rows}</tbody></table>"#,
        esc(&budget),
        esc(&l.id),
    );
    Ok(page(&console, &base, &format!("Listener {}", l.id), &body))
}

/// The dead-letters page's filter form: topic, group, error kind, and
/// `minutes` (stored in the last N minutes).
#[derive(Debug, serde::Deserialize)]
pub(super) struct PageFilter {
    topic: Option<String>,
    error_kind: Option<String>,
    consumer_group: Option<String>,
    minutes: Option<String>,
}

/// `GET /dead-letters`: filter, select, replay (paced) or delete.
pub(super) async fn dead_letters(
    State(console): State<Console>,
    base: Base,
    Query(q): Query<PageFilter>,
) -> Result<Html<String>, ConsoleError> {
    let mut filter = letters::normalized(DeadLetterFilter {
        topic: q.topic,
        error_kind: q.error_kind,
        consumer_group: q.consumer_group,
        ..DeadLetterFilter::default()
    });
    let minutes = q.minutes.and_then(|m| m.trim().parse::<i64>().ok());
    if let Some(m) = minutes {
        filter.since = Some(crate::util::now_ms() - m * 60_000);
    }
    let form = format!(
        r#"<form method="get" class="filter"><label>topic <input name="topic" value="{}"></label> <label>group <input name="consumer_group" value="{}"></label> <label>error kind <select name="error_kind">{}</select></label> <label>last <input name="minutes" size="5" value="{}"> minutes</label> <button type="submit">Filter</button></form>"#,
        esc(filter.topic.as_deref().unwrap_or("")),
        esc(filter.consumer_group.as_deref().unwrap_or("")),
        ["", "Retryable", "Fatal", "Decode"]
            .iter()
            .map(|k| {
                let sel = if filter.error_kind.as_deref() == Some(*k) {
                    " selected"
                } else {
                    ""
                };
                format!(
                    r#"<option value="{k}"{sel}>{}</option>"#,
                    if k.is_empty() { "any" } else { k }
                )
            })
            .collect::<String>(),
        minutes.map_or_else(String::new, |m| m.to_string()),
    );
    let mut rows = String::new();
    let list = match letters::rows(&console, filter).await {
        Ok(list) => list,
        Err(e) if e.status() == StatusCode::NOT_FOUND => {
            return Ok(page(
                &console,
                &base,
                "Dead letters",
                &format!("{form}<p>{}</p>", esc(e.message())),
            ))
        }
        Err(e) => return Err(e),
    };
    for l in &list {
        let id = seg(&l.id);
        let _ = write!(
            rows,
            r#"<tr data-id="{eid}"><td><input type="checkbox" name="sel" value="{eid}"></td><td><a href="{b}/dead-letters/{id}">{eid}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>"#,
            esc(&l.topic),
            l.partition,
            l.offset,
            opt(l.key.as_deref()),
            opt(l.error_kind.as_deref()),
            opt(l.message.as_deref()),
            l.attempts,
            time(l.stored_at),
            button(&format!("dead-letters/{id}/replay"), "replay", None),
            button(
                &format!("dead-letters/{id}/delete"),
                "delete",
                Some("Delete this dead letter for good?")
            ),
            eid = esc(&l.id),
            b = esc(&base.0),
        );
    }
    let body = format!(
        r#"{form}
<p class="bulk">{} of the selected at <input id="rate" size="4" value="{}"> records/s</p>
<table id="dead-letters"><thead><tr><th></th><th>id</th><th>topic</th><th>partition</th><th>offset</th><th>key</th><th>error kind</th><th>message</th><th>attempts</th><th>stored</th><th>actions</th></tr></thead>
<tbody>{rows}</tbody></table><p>{} dead letters.</p>"#,
        button(
            "dead-letters/replay",
            "Replay",
            Some("Replay the selected dead letters?")
        )
        .replace(
            "<button",
            r#"<button data-selection="true" data-after="/replays""#,
        ),
        console.inner.settings.replay_rate,
        list.len(),
    );
    Ok(page(&console, &base, "Dead letters", &body))
}

/// `GET /dead-letters/{id}`: one letter, headers, key, payload, exception.
pub(super) async fn dead_letter(
    State(console): State<Console>,
    base: Base,
    Path(id): Path<String>,
) -> Result<Html<String>, ConsoleError> {
    let l = letters::letter_json(&console, &id).await?;
    let pretty = |v: &serde_json::Value| match v.get("value") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        None => "–".to_owned(),
    };
    let fmt = |v: &serde_json::Value| {
        v.get("format")
            .and_then(|f| f.as_str())
            .unwrap_or("none")
            .to_owned()
    };
    let headers: String = l["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            format!(
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(h[0].as_str().unwrap_or("")),
                esc(h[1].as_str().unwrap_or(""))
            )
        })
        .collect();
    let sid = seg(&id);
    let body = format!(
        r#"<p>{} {}</p>
<dl><dt>record</dt><dd>{}-{} @ {}</dd><dt>group</dt><dd>{}</dd><dt>error kind</dt><dd>{}</dd><dt>attempts</dt><dd>{}</dd><dt>stored</dt><dd>{}</dd></dl>
<h2>Key ({})</h2><pre id="key">{}</pre>
<h2>Payload ({})</h2><pre id="payload">{}</pre>
<h2>Exception</h2><pre id="exception">{}
{}</pre>
<h2>Headers</h2><table id="headers"><tbody>{headers}</tbody></table>"#,
        button(&format!("dead-letters/{sid}/replay"), "replay", None)
            .replace("<button", r#"<button data-after="/dead-letters""#),
        button(
            &format!("dead-letters/{sid}/delete"),
            "delete",
            Some("Delete this dead letter for good?")
        )
        .replace("<button", r#"<button data-after="/dead-letters""#),
        esc(l["topic"].as_str().unwrap_or("")),
        l["partition"],
        l["offset"],
        opt(l["consumer_group"].as_str()),
        opt(l["error_kind"].as_str()),
        l["attempts"],
        time(l["stored_at"].as_i64().unwrap_or(0)),
        fmt(&l["key"]),
        esc(&pretty(&l["key"])),
        fmt(&l["payload"]),
        esc(&pretty(&l["payload"])),
        opt(l["exception"]["fqcn"].as_str()),
        esc(l["exception"]["stacktrace"]
            .as_str()
            .or(l["exception"]["message"].as_str())
            .unwrap_or("")),
    );
    Ok(page(&console, &base, &format!("Dead letter {id}"), &body))
}

/// `GET /replays`: the paced replays and their progress.
pub(super) async fn replays(State(console): State<Console>, base: Base) -> Html<String> {
    let jobs: Vec<letters::ReplayJob> = crate::util::lock(&console.inner.jobs)
        .iter()
        .rev()
        .cloned()
        .collect();
    let rows: String = jobs
        .iter()
        .map(|j| {
            let failed: Vec<String> = j.failed.iter().map(|(id, why)| format!("{id}: {why}")).collect();
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td></tr>",
                j.id, time(j.started_at), esc(&j.actor), j.rate, j.replayed, j.total, j.state, esc(&failed.join("; "))
            )
        })
        .collect();
    let body = format!(
        r#"<table id="replays"><thead><tr><th>#</th><th>started</th><th>by</th><th>records/s</th><th>replayed</th><th>state</th><th>failed</th></tr></thead><tbody>{rows}</tbody></table>"#
    );
    page(&console, &base, "Replays", &body)
}

/// `GET /audit`: every action, newest first.
pub(super) async fn audit(
    State(console): State<Console>,
    base: Base,
) -> Result<Html<String>, ConsoleError> {
    let rows: String = letters::audit_entries(&console, 200)
        .await?
        .iter()
        .map(|a| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                time(a.at),
                esc(&a.action),
                esc(&a.target),
                esc(&a.actor),
                esc(&a.result)
            )
        })
        .collect();
    let body = format!(
        r#"<table id="audit"><thead><tr><th>when</th><th>action</th><th>target</th><th>token</th><th>result</th></tr></thead><tbody>{rows}</tbody></table>"#
    );
    Ok(page(&console, &base, "Audit", &body))
}

fn asyncapi_doc(console: &Console) -> Result<&serde_json::Value, ConsoleError> {
    console
        .inner
        .settings
        .asyncapi
        .as_ref()
        .ok_or_else(|| ConsoleError::not_found("no AsyncAPI document (ConsoleBuilder::asyncapi)"))
}

/// `GET /asyncapi.json`: the document as given.
pub(super) async fn asyncapi_json(
    State(console): State<Console>,
) -> Result<Json<serde_json::Value>, ConsoleError> {
    Ok(Json(asyncapi_doc(&console)?.clone()))
}

/// `GET /asyncapi`: the document's channels (key, `address`, message names).
pub(super) async fn asyncapi(
    State(console): State<Console>,
    base: Base,
) -> Result<Html<String>, ConsoleError> {
    let doc = asyncapi_doc(&console)?;
    let rows: String = doc["channels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, ch)| {
            let messages: Vec<&str> = ch["messages"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(m, _)| m.as_str())
                .collect();
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                opt(ch["address"].as_str()),
                esc(&messages.join(", "))
            )
        })
        .collect();
    let title = doc["info"]["title"].as_str().unwrap_or("AsyncAPI");
    let body = format!(
        r#"<p>{} <a href="{}/asyncapi.json">asyncapi.json</a></p>
<table id="channels"><thead><tr><th>channel</th><th>address</th><th>messages</th></tr></thead><tbody>{rows}</tbody></table>"#,
        esc(title),
        esc(&base.0)
    );
    Ok(page(&console, &base, "AsyncAPI", &body))
}

/// `GET /topics`: every topic's partitions, log start and end offsets.
pub(super) async fn topics(
    State(console): State<Console>,
    base: Base,
) -> Result<Html<String>, ConsoleError> {
    let mut rows = String::new();
    for t in super::topics::topics(&console).await? {
        for p in &t.partitions {
            let _ = write!(
                rows,
                r#"<tr data-topic="{name}"><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                p.partition,
                p.log_start,
                p.log_end,
                p.log_end - p.log_start,
                name = esc(&t.topic),
            );
        }
    }
    let body = format!(
        r#"<table id="topics"><thead><tr><th>topic</th><th>partition</th><th>log start</th><th>log end</th><th>records</th></tr></thead><tbody>{rows}</tbody></table>"#
    );
    Ok(page(&console, &base, "Topics", &body))
}

/// `GET /assets/console.js`.
pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("console.js"),
    )
        .into_response()
}

/// `GET /assets/console.css`.
pub(super) async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("console.css"),
    )
        .into_response()
}
