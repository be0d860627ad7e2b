//! The operator console's JSON API (feature `console`) over a running app
//! on the test broker: every action with and without the token, the
//! cross-site checks, the listeners' and partitions' views, the dead-letter
//! store's list, view, replay (one and a paced selection) and delete, the
//! audit log, the live stream and the AsyncAPI hook.

mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use futures::StreamExt;
use kafka_listener::console::{Console, ConsoleToken};
use kafka_listener::dlq::DeadLetterStore;
use kafka_listener::prelude::*;
use kafka_listener::record::headers::REPLAYED_FROM;
use kafka_listener::RunningApp;
use serde_json::{json, Value};
use sqlx::any::AnyPoolOptions;
use support::*;
use tower::ServiceExt;

const SECRET: &str = "s3cret";

/// A request to the console: `auth` is the bearer secret, `origin` an
/// `Origin` header; POSTs carry a JSON body unless `json` is false.
struct Call<'a> {
    method: &'a str,
    path: String,
    auth: Option<&'a str>,
    origin: Option<&'a str>,
    body: Option<Value>,
}

fn get(path: impl Into<String>) -> Call<'static> {
    Call {
        method: "GET",
        path: path.into(),
        auth: None,
        origin: None,
        body: None,
    }
}

fn post(path: impl Into<String>, body: Value) -> Call<'static> {
    Call {
        method: "POST",
        path: path.into(),
        auth: Some(SECRET),
        origin: None,
        body: Some(body),
    }
}

async fn send(router: &Router, call: Call<'_>) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(call.method)
        .uri(&call.path)
        .header("host", "console.test");
    if let Some(a) = call.auth {
        req = req.header("authorization", format!("Bearer {a}"));
    }
    if let Some(o) = call.origin {
        req = req.header("origin", o);
    }
    let body = match call.body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

/// Counts handled records; fails every record of `fail` topics that is
/// not a replay (so it is dead-lettered at once), and backs off on a record
/// keyed `slow`.
async fn handle(record: ConsumerRecord, seen: State<Seen>) -> Result<(), ListenerError> {
    if record.key().is_some_and(|k| k.as_ref() == b"slow") {
        return Err(ListenerError::retryable(std::io::Error::other("slow")));
    }
    if record.topic().contains(".fail") && record.headers().get(REPLAYED_FROM).is_none() {
        return Err(ListenerError::fatal(std::io::Error::other("not yet")));
    }
    seen.push(record.partition(), record.offset(), 0);
    Ok(())
}

struct Fixture {
    app: RunningApp,
    router: Router,
    seen: Seen,
    topic: String,
    id: String,
    _broker: std::sync::Arc<TestBroker>,
}

async fn fixture(name: &str, token: Option<ConsoleToken>) -> Fixture {
    fixture_on("sqlite::memory:", name, token).await
}

/// [`fixture`] with the store on the database `url`; on PostgreSQL (shared
/// with the tests running at the same time) this topic's letters and audit
/// entries from earlier runs are removed first.
async fn fixture_on(url: &str, name: &str, token: Option<ConsoleToken>) -> Fixture {
    sqlx::any::install_default_drivers();
    let topic = unique(name);
    let id = format!("{topic}-listener");
    let broker = broker(&topic, 3);
    broker.create_topic(&format!("{topic}-dlt"), 3).unwrap();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let store = DeadLetterStore::new(pool.clone()).await.unwrap();
    store.audit_log(1).await.unwrap();
    for sql in [
        "DELETE FROM kafka_dead_letters WHERE original_topic = $1",
        "DELETE FROM kafka_console_audit WHERE target LIKE $1 || '-dlt-%'",
    ] {
        sqlx::query(sql).bind(&topic).execute(&pool).await.unwrap();
    }
    let seen = Seen::default();
    let config = consumer_property(config(&broker), "statistics.interval.ms", "200");
    let app = KafkaApp::builder()
        .config(config)
        .without_discovered_listeners()
        .listener(
            ListenerSpec::new(id.clone())
                .topics([topic.clone()])
                .dead_letter(DeadLetter::suffixed())
                .retry(RetryPolicy::fixed(2, Duration::from_secs(60)))
                .handler(handle),
        )
        .listener(store.listener(&format!("{topic}-store"), [format!("{topic}-dlt")]))
        .build()
        .await
        .unwrap()
        .state(seen.clone())
        .start()
        .await
        .unwrap();
    let mut console = Console::builder(app.registry().clone())
        .dead_letters(store, app.template())
        .sample_interval(Duration::from_millis(200))
        .topics(&KafkaConfig::new(), broker.bootstrap_servers())
        .asyncapi(json!({
            "asyncapi": "3.0.0",
            "info": {"title": "orders", "version": "1"},
            "channels": {"orders": {"address": topic, "messages": {"OrderPlaced": {}, "OrderCancelled": {}}}}
        }));
    if let Some(t) = token {
        console = console.token(t);
    }
    let router = Router::new().merge(console.build().mount("/console"));
    let c = app.container(&id).unwrap();
    assert!(
        c.wait_for_assignment(3, Duration::from_secs(20)).await,
        "assigned"
    );
    Fixture {
        app,
        router,
        seen,
        topic,
        id,
        _broker: broker,
    }
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The listener `id` in a `GET /api/listeners` answer.
fn listener_in(all: &Value, id: &str) -> Value {
    let listeners = all["listeners"].as_array().unwrap();
    listeners.iter().find(|l| l["id"] == id).unwrap().clone()
}

fn state_of(v: &Value) -> &str {
    v["state"].as_str().unwrap_or("?")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_views_actions_and_token_checks() {
    init_tracing();
    let f = fixture("console.actions", Some(ConsoleToken::new("ops", SECRET))).await;
    let r = &f.router;
    let base = format!("/console/api/listeners/{}", f.id);
    produce(&f.app.template(), &f.topic, 0..6, 3).await;
    assert_eq!(
        f.seen.wait_for(Duration::from_secs(20), |n| n >= 6).await,
        6
    );

    let (s, all) = send(r, get("/console/api/listeners")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(all["read_only"], false);
    let me = listener_in(&all, &f.id);
    assert_eq!(
        (
            state_of(&me),
            me["consumers"].as_u64(),
            me["processed"].as_u64()
        ),
        ("running", Some(1), Some(6))
    );
    assert_eq!(me["topics"], json!([f.topic]));
    assert_eq!(me["dead_letters"], 0);

    // The partitions: finished offsets add up to the 6 records, and once the
    // statistics came, the log end too, with no lag.
    wait_until("statistics with log end offsets", || async {
        let (_, d) = send(r, get(base.clone())).await;
        let parts = d["partitions"].as_array().unwrap().clone();
        parts.len() == 3
            && parts
                .iter()
                .map(|p| p["log_end"].as_i64().unwrap())
                .sum::<i64>()
                == 6
            && parts
                .iter()
                .map(|p| p["finished"].as_i64().unwrap().max(0))
                .sum::<i64>()
                == 6
            && parts.iter().all(|p| p["lag"] == 0)
    })
    .await;

    // The token and cross-site checks, on pause.
    let pause = || post(format!("{base}/pause"), json!({}));
    let refusals = [
        (
            Call {
                auth: None,
                ..pause()
            },
            StatusCode::UNAUTHORIZED,
            "Authorization: Bearer",
        ),
        (
            Call {
                auth: Some("wrong"),
                ..pause()
            },
            StatusCode::FORBIDDEN,
            "not the console's",
        ),
        (
            Call {
                origin: Some("https://evil.example"),
                ..pause()
            },
            StatusCode::FORBIDDEN,
            "cross-site",
        ),
        (
            Call {
                body: None,
                ..pause()
            },
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
    ];
    for (call, status, reason) in refusals {
        let (s, e) = send(r, call).await;
        assert_eq!(s, status, "{e}");
        assert!(
            e["error"].as_str().unwrap().contains(reason),
            "{reason}: {e}"
        );
    }
    assert!(
        !f.app.registry().is_paused(&f.id).unwrap(),
        "no refused call paused it"
    );
    let (s, v) = send(
        r,
        Call {
            origin: Some("http://console.test"),
            ..pause()
        },
    )
    .await;
    assert_eq!((s, state_of(&v)), (StatusCode::OK, "paused"));
    assert!(f.app.registry().is_paused(&f.id).unwrap());
    let (_, d) = send(r, get(base.clone())).await;
    assert_eq!(
        (state_of(&d), d["paused"].as_bool()),
        ("paused", Some(true))
    );

    let (s, v) = send(r, post(format!("{base}/resume"), json!({}))).await;
    assert_eq!((s, state_of(&v)), (StatusCode::OK, "running"));
    let (s, v) = send(r, post(format!("{base}/stop"), json!({}))).await;
    assert_eq!((s, state_of(&v)), (StatusCode::OK, "stopped"));
    assert!(!f.app.registry().is_running(&f.id).unwrap());
    let (_, d) = send(r, get(base.clone())).await;
    assert_eq!(
        (
            d["consumers"].as_u64(),
            d["partitions"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );
    let (s, v) = send(r, post(format!("{base}/start"), json!({}))).await;
    assert_eq!((s, state_of(&v)), (StatusCode::OK, "running"));
    let c = f.app.container(&f.id).unwrap();
    assert!(c.wait_for_assignment(3, Duration::from_secs(20)).await);
    let (s, _) = send(r, post(format!("{base}/jump"), json!({}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = send(r, post("/console/api/listeners/nope/pause", json!({}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Seek: a partition to its beginning hands its records again; the other
    // positions are accepted; a partition it does not hold and a bad
    // position are refused.
    let (_, d) = send(r, get(base.clone())).await;
    let p = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["log_end"].as_i64() > Some(0))
        .unwrap()
        .clone();
    let records = p["log_end"].as_i64().unwrap() as usize;
    let partition = p["partition"].as_i64().unwrap();
    let seek = |position: &str, value: Option<i64>| {
        post(
            format!("{base}/seek"),
            json!({"topic": f.topic, "partition": partition, "position": position, "value": value}),
        )
    };
    let before = f.seen.len();
    let (s, v) = send(r, seek("beginning", None)).await;
    assert_eq!(
        (s, v["position"].as_str()),
        (StatusCode::ACCEPTED, Some("beginning"))
    );
    let again = f
        .seen
        .wait_for(Duration::from_secs(20), |n| n >= before + records)
        .await;
    assert_eq!(
        again,
        before + records,
        "the partition's {records} records handled again"
    );
    for (position, value) in [("end", None), ("offset", Some(1)), ("timestamp", Some(0))] {
        let (s, v) = send(r, seek(position, value)).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{position}: {v}");
    }
    let (s, _) = send(r, seek("offset", None)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = send(r, seek("middle", None)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = send(
        r,
        post(
            format!("{base}/seek"),
            json!({"topic": f.topic, "partition": 9, "position": "end"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = send(
        r,
        Call {
            auth: None,
            ..seek("end", None)
        },
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // A record that fails shows in its partition while it backs off (on
    // another partition than the one sought four times just now: that one
    // was seen to stop fetching for 15 s or more after such a burst).
    let other = (partition as i32 + 1) % 3;
    let slow = ProducerRecord::keyed(f.topic.clone(), "slow")
        .value("{}")
        .partition(other);
    let sent = f.app.template().send(slow).await.unwrap();
    wait_until("the back-off in the partition view", || async {
        let (_, d) = send(r, get(base.clone())).await;
        let parts = d["partitions"].as_array().unwrap().clone();
        parts.iter().any(|p| {
            p["partition"] == sent.partition
                && p["backing_off"]["offset"] == sent.offset
                && p["backing_off"]["key"] == "slow"
                && p["backing_off"]["attempt"] == 1
                && p["backing_off"]["retry_at_ms"].as_i64() > Some(0)
                && p["in_flight"].as_u64() >= Some(1)
                // An ordered lane ages the record in hand, back-off included.
                && p["oldest_in_flight_ms"].as_i64() >= Some(300)
        })
    })
    .await;
    let (_, d) = send(r, get(base.clone())).await;
    for p in d["partitions"].as_array().unwrap() {
        if p["partition"] != sent.partition {
            assert!(p["oldest_in_flight_ms"].is_null(), "an idle partition: {p}");
        }
    }
    let (_, page) = send(r, get(format!("/console/listeners/{}", f.id))).await;
    assert!(
        page.as_str().unwrap().contains("backing off: offset"),
        "{page}"
    );

    // The audit log names every action and the token.
    let (_, a) = send(r, get("/console/api/audit")).await;
    let actions: Vec<&str> = a["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "pause",
        "resume",
        "stop",
        "start",
        "seek beginning",
        "seek end",
        "seek offset 1",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert!(a["audit"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"] == "ops"));
    f.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_console_is_read_only() {
    init_tracing();
    let f = fixture("console.readonly", None).await;
    let (s, v) = send(&f.router, get("/console/api/listeners")).await;
    assert_eq!((s, &v["read_only"]), (StatusCode::OK, &json!(true)));
    for path in [
        format!("listeners/{}/pause", f.id),
        "dead-letters/x/delete".into(),
    ] {
        let (s, e) = send(&f.router, post(format!("/console/api/{path}"), json!({}))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
        assert!(e["error"].as_str().unwrap().contains("read-only"), "{e}");
    }
    assert!(!f.app.registry().is_paused(&f.id).unwrap());
    let (s, page) = send(&f.router, get("/console")).await;
    assert_eq!(s, StatusCode::OK);
    let page = page.as_str().unwrap();
    assert!(page.contains("Read-only") && page.contains(&f.id), "{page}");
    assert!(
        page.contains(r#"href="/console/listeners/"#),
        "links under the mount: {page}"
    );
    f.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_replayed_paced_and_deleted() {
    init_tracing();
    dead_letters_scenario("sqlite::memory:", "console.fail").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_on_postgres() {
    init_tracing();
    let Some(url) = postgres_url() else {
        eprintln!("TEST_DATABASE_URL is not set; skipping the console's PostgreSQL store test");
        return;
    };
    dead_letters_scenario(&url, "console.pg.fail").await;
}

/// This test's letters (the table may be shared).
async fn mine(f: &Fixture) -> Vec<Value> {
    let (_, l) = send(
        &f.router,
        get(format!("/console/api/dead-letters?topic={}", f.topic)),
    )
    .await;
    l["dead_letters"].as_array().unwrap().clone()
}

async fn dead_letters_scenario(url: &str, name: &str) {
    let f = fixture_on(url, name, Some(ConsoleToken::parse(SECRET).unwrap())).await;
    let r = &f.router;
    produce(&f.app.template(), &f.topic, 0..5, 5).await;
    wait_until("5 stored dead letters", || async {
        mine(&f).await.len() == 5
    })
    .await;

    let (s, l) = send(
        r,
        get(format!("/console/api/dead-letters?topic={}", f.topic)),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<String> = l["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 5);
    let (_, l) = send(
        r,
        get(format!(
            "/console/api/dead-letters?error_kind=Retryable&topic={}",
            f.topic
        )),
    )
    .await;
    assert_eq!(l["dead_letters"].as_array().unwrap().len(), 0);
    let (_, l) = send(
        r,
        get(format!(
            "/console/api/dead-letters?error_kind=Fatal&consumer_group=&topic={}",
            f.topic
        )),
    )
    .await;
    assert_eq!(l["dead_letters"].as_array().unwrap().len(), 5);
    let (_, l) = send(
        r,
        get(format!("/console/api/dead-letters?since={}", i64::MAX / 2)),
    )
    .await;
    assert_eq!(l["dead_letters"].as_array().unwrap().len(), 0);
    let (_, all) = send(r, get("/console/api/listeners")).await;
    let me = listener_in(&all, &f.id);
    assert_eq!(me["dead_letters"], 5);
    // The listeners page links the count to the group's letters.
    let (_, page) = send(r, get("/console")).await;
    let link = format!("/console/dead-letters?consumer_group={}", f.id);
    assert!(page
        .as_str()
        .unwrap()
        .contains(&format!(r#"href="{link}">5</a>"#)));
    let (_, page) = send(r, get(link)).await;
    assert!(page.as_str().unwrap().contains("5 dead letters."), "{page}");
    assert!(me["failures"].as_u64().unwrap() >= 5);

    // One letter: headers with the kafka_dlt-* ones, the payload as JSON.
    let (s, one) = send(r, get(format!("/console/api/dead-letters/{}", ids[0]))).await;
    assert_eq!(s, StatusCode::OK);
    let headers = one["headers"].as_array().unwrap();
    assert!(
        headers.contains(&json!(["kafka_dlt-original-topic", f.topic])),
        "{headers:?}"
    );
    assert!(
        headers.contains(&json!(["kafka_dlt-exception-message", "not yet"])),
        "{headers:?}"
    );
    assert_eq!(one["payload"]["format"], "json");
    assert!(one["payload"]["value"]["seq"].is_u64());
    assert_eq!(one["key"]["format"], "text");
    let (s, _) = send(r, get("/console/api/dead-letters/none-0-0")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Replay one: the listener handles it, it leaves the list.
    let (s, _) = send(
        r,
        Call {
            auth: None,
            ..post(
                format!("/console/api/dead-letters/{}/replay", ids[0]),
                json!({}),
            )
        },
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = send(
        r,
        post(
            format!("/console/api/dead-letters/{}/replay", ids[0]),
            json!({}),
        ),
    )
    .await;
    assert_eq!(
        (s, v["topic"].as_str()),
        (StatusCode::OK, Some(f.topic.as_str())),
        "{v}"
    );
    assert_eq!(
        f.seen.wait_for(Duration::from_secs(20), |n| n >= 1).await,
        1
    );
    assert_eq!(mine(&f).await.len(), 4);

    // Delete one; again is a 404.
    let delete = post(
        format!("/console/api/dead-letters/{}/delete", ids[1]),
        json!({}),
    );
    let (s, v) = send(r, delete).await;
    assert_eq!(
        (s, v["deleted"].as_str()),
        (StatusCode::OK, Some(ids[1].as_str()))
    );
    let (s, _) = send(
        r,
        post(
            format!("/console/api/dead-letters/{}/delete", ids[1]),
            json!({}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(mine(&f).await.len(), 3);

    // A paced selection: 3 at 5/s take at least 400 ms (the first at once).
    let started = Instant::now();
    let (s, job) = send(
        r,
        post(
            "/console/api/dead-letters/replay",
            json!({"ids": &ids[2..], "rate": 5.0}),
        ),
    )
    .await;
    assert_eq!(
        (s, job["total"].as_u64(), job["state"].as_str()),
        (StatusCode::ACCEPTED, Some(3), Some("running"))
    );
    wait_until("the paced replay", || async {
        let (_, j) = send(r, get("/console/api/replays")).await;
        j["replays"][0]["state"] == "done"
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "paced: {:?}",
        started.elapsed()
    );
    let (_, j) = send(r, get("/console/api/replays")).await;
    assert_eq!(
        (
            j["replays"][0]["replayed"].as_u64(),
            j["replays"][0]["failed"].as_array().unwrap().len()
        ),
        (Some(3), 0)
    );
    assert_eq!(
        f.seen.wait_for(Duration::from_secs(20), |n| n >= 4).await,
        4
    );
    assert!(mine(&f).await.is_empty());
    let (s, _) = send(
        r,
        post(
            "/console/api/dead-letters/replay",
            json!({"ids": [], "rate": 5.0}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Every replay and delete is in the audit table, by token "default".
    let (_, a) = send(r, get("/console/api/audit")).await;
    let entries: Vec<&Value> = a["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["target"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}-dlt-", f.topic))
        })
        .collect();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["action"] == "replay" && e["result"] == "ok")
            .count(),
        4
    );
    assert_eq!(
        entries.iter().filter(|e| e["action"] == "delete").count(),
        2,
        "the second one failed"
    );
    assert!(entries.iter().all(|e| e["actor"] == "default"));
    let page = format!("/console/dead-letters?topic={}", f.topic);
    let (s, page) = send(r, get(page)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("0 dead letters."));
    f.app.shutdown().await;
}

/// The next chunk of a Server-Sent Events body (one event), within 5 s.
async fn next_event(stream: &mut axum::body::BodyDataStream) -> String {
    let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event within 5 s")
        .expect("the stream goes on")
        .expect("a chunk");
    String::from_utf8_lossy(&chunk).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_history_pages_and_asyncapi() {
    init_tracing();
    let f = fixture("console.live", Some(ConsoleToken::new("ops", SECRET))).await;
    let r = &f.router;
    let req = Request::get("/console/api/events")
        .body(Body::empty())
        .unwrap();
    let response = r.clone().oneshot(req).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.into_body().into_data_stream();
    let first = next_event(&mut stream).await;
    assert!(first.starts_with("event: update\ndata: "), "{first}");
    assert!(first.contains(&format!(r#""id":"{}""#, f.id)), "{first}");
    let second = next_event(&mut stream).await;
    assert!(second.contains(r#""sample":{"at""#), "a sample is pushed");

    // Pages cannot be framed by another site, and load only their own files.
    let req = Request::get("/console").body(Body::empty()).unwrap();
    let page = r.clone().oneshot(req).await.unwrap();
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"),
        "{csp}"
    );

    // The cluster's topics, with this test's three partitions.
    produce(&f.app.template(), &f.topic, 0..4, 4).await;
    let (s, t) = send(r, get("/console/api/topics")).await;
    assert_eq!(s, StatusCode::OK);
    let topic = t["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["topic"] == f.topic.as_str())
        .unwrap();
    let parts = topic["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        parts
            .iter()
            .map(|p| p["log_end"].as_i64().unwrap() - p["log_start"].as_i64().unwrap())
            .sum::<i64>(),
        4
    );
    let (_, page) = send(r, get("/console/topics")).await;
    let rows = format!(r#"<tr data-topic="{}">"#, f.topic);
    assert_eq!(page.as_str().unwrap().matches(&rows).count(), 3);

    let (_, h) = send(r, get("/console/api/history")).await;
    assert_eq!(h["interval_ms"], 200);
    assert!(!h["samples"].as_array().unwrap().is_empty());
    // The listener's own history counts its four records.
    let mine = format!("/console/api/history?listener={}", f.id);
    wait_until("the listener's throughput in its history", || async {
        let (_, h) = send(r, get(mine.clone())).await;
        h["samples"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["records_per_second"].as_f64() > Some(0.0) && s["lag"].is_i64())
    })
    .await;
    let (s, _) = send(r, get("/console/api/history?listener=nobody")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A listener's own stream: its partitions with their state, and its sample.
    let req = Request::get(format!("/console/api/listeners/{}/events", f.id))
        .body(Body::empty())
        .unwrap();
    let response = r.clone().oneshot(req).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.into_body().into_data_stream();
    for _ in 0..2 {
        let event = next_event(&mut stream).await;
        let data: Value = serde_json::from_str(
            event
                .strip_prefix("event: update\ndata: ")
                .unwrap_or_else(|| panic!("{event}"))
                .trim_end(),
        )
        .unwrap();
        assert_eq!(data["id"], f.id.as_str());
        let parts = data["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 3, "{data}");
        assert!(parts.iter().all(|p| p["state"] == "fetching"), "{data}");
        assert!(data["sample"]["at"].is_i64(), "{data}");
    }
    let (s, _) = send(r, get("/console/api/listeners/nobody/events")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // `/console/` leads to the console (a nested router does not match it).
    let req = Request::get("/console/").body(Body::empty()).unwrap();
    let moved = r.clone().oneshot(req).await.unwrap();
    assert_eq!(moved.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(moved.headers()["location"], "../console");

    let (s, doc) = send(r, get("/console/asyncapi.json")).await;
    assert_eq!(
        (s, doc["channels"]["orders"]["address"].as_str()),
        (StatusCode::OK, Some(f.topic.as_str()))
    );
    let (s, page) = send(r, get("/console/asyncapi")).await;
    let page = page.as_str().unwrap().to_owned();
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("OrderCancelled, OrderPlaced") && page.contains(&f.topic),
        "{page}"
    );
    assert!(page.contains(r#"href="/console/asyncapi.json""#));
    for path in [
        "/console",
        &format!("/console/listeners/{}", f.id),
        "/console/dead-letters",
        "/console/replays",
        "/console/audit",
        "/console/assets/console.js",
    ] {
        let (s, _) = send(r, get(path)).await;
        assert_eq!(s, StatusCode::OK, "{path}");
    }
    let (s, page) = send(r, get(format!("/console/listeners/{}", f.id))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        page.as_str().unwrap().matches(" data-partition=").count(),
        3
    );
    let (s, e) = send(r, get("/console/nowhere")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(e["error"].is_string());
    f.app.shutdown().await;
}
