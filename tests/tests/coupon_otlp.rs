//! coupon-service with `OTEL_EXPORTER_OTLP_ENDPOINT` set exports its traces
//! over OTLP/HTTP, and an issue request is one trace: the caller's span →
//! the HTTP request's span → the listener's span of the record it sent.
//!
//! The service runs as a child process (`coupon-service serve`, embedded
//! broker, a SQLite file), because the exporter is process-wide; this test
//! is the collector: an HTTP server on `/v1/traces` that decodes each
//! export request (OTLP's protobuf messages, from `opentelemetry-proto`).
//! SIGTERM stops the service, which sends the last spans as it exits.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use kafka_listener_tests::process::{build, free_port};
use kafka_listener_tests::{poll, unique};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::{json, Value};

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

/// The collector's `/v1/traces`: decodes the request and keeps its spans.
async fn collect(
    spans: axum::extract::State<Arc<Mutex<Vec<Exported>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    assert_eq!(
        headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/x-protobuf"[..]),
        "OTLP/HTTP with protobuf bodies"
    );
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP export request");
    let mut out = spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
            out.push(Exported {
                service: service.clone(),
                name: span.name,
                trace_id: span.trace_id,
                span_id: span.span_id,
                parent_span_id: span.parent_span_id,
            });
        }
    }
    StatusCode::OK
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_request_is_one_trace_from_the_caller_to_the_listener_exported_over_otlp() {
    let bin = build("coupon-service");
    let spans = Arc::new(Mutex::new(Vec::new()));
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = collector.local_addr().unwrap();
    let routes = axum::Router::new()
        .route("/v1/traces", post(collect))
        .with_state(Arc::clone(&spans));
    tokio::spawn(async move { axum::serve(collector, routes).await });

    let dir = std::env::temp_dir().join(unique("coupon-otlp"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("coupon-service.log")).unwrap();
    let mut child = Command::new(&bin)
        .arg("serve")
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.join("c.db").display()),
        )
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{collector_addr}"),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("coupon-service starts");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    // Up once its API answers (a 404 for a coupon that does not exist).
    poll(Duration::from_secs(60), "coupon-service serving", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("coupon-service exited at start: {status}");
        }
        let probe = client.get(format!("{base}/coupons/none")).send();
        async move {
            let r = probe.await.ok()?;
            (r.status() == reqwest::StatusCode::NOT_FOUND).then_some(())
        }
    })
    .await;

    let r = client
        .post(format!("{base}/coupons"))
        .json(&json!({ "coupon_id": "traced", "stock": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    // The caller's own trace (a Java service's, say).
    let (trace_id, caller_span) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let r = client
        .post(format!("{base}/coupons/traced/issue"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({ "user_id": "user-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let decided: Value = poll(Duration::from_secs(30), "the request decided", || {
        let probe = client
            .get(format!("{base}/coupons/traced/issues/user-1"))
            .send();
        async move {
            let v: Value = probe.await.ok()?.json().await.ok()?;
            (v["status"] != "pending").then_some(v)
        }
    })
    .await;
    assert_eq!(decided["status"], "issued", "{decided}");
    // SIGTERM: the service drains, stops, and its exporter sends what is
    // left.
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("coupon-service did not stop on SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "coupon-service exited with {status}");

    let spans = spans.lock().unwrap().clone();
    let in_trace: Vec<&Exported> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == trace_id)
        .collect();
    let names: Vec<&str> = in_trace.iter().map(|s| s.name.as_str()).collect();
    let http = in_trace
        .iter()
        .find(|s| s.name == "POST /coupons/{coupon_id}/issue")
        .unwrap_or_else(|| {
            panic!("no HTTP span in the caller's trace: {names:?} (log in {dir:?})")
        });
    let listener = in_trace
        .iter()
        .find(|s| s.name == "process coupon.issue.requested")
        .unwrap_or_else(|| panic!("no listener span in the caller's trace: {names:?}"));
    assert_eq!(http.service, "coupon-service");
    assert_eq!(
        hex(&http.parent_span_id),
        caller_span,
        "the request span continues the caller's"
    );
    assert_eq!(
        listener.parent_span_id, http.span_id,
        "the listener continues the request that sent its record"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
