//! Request/reply against Spring for Apache Kafka itself, both ways, on a
//! real broker: our `ReplyingKafkaTemplate` asks a Spring `@SendTo`
//! listener, and our `reply = true` listener answers a Spring
//! `ReplyingKafkaTemplate`. The Spring side is `SpringInterop.java` in
//! `../shared/spring` (Spring Kafka 4.1, see its README), run with `java`.
//!
//! Needs `KAFKA_TEST_BOOTSTRAP_SERVERS` (Spring cannot talk to the
//! embedded broker), Java 17+ (`JAVA`, `JAVA_HOME/bin/java` or `java`) and
//! the Spring folder (`SPRING_INTEROP_DIR`, or `../shared/spring` next to
//! the repository). In CI's embedded pass (`KAFKA_TEST_EMBEDDED_PASS=1`)
//! the tests say they run in the real-broker pass; with `CI=true` and any
//! of these missing they fail; otherwise they print why they did not run.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use kafka_listener::__private::registered_listeners;
use kafka_listener::prelude::*;
use kafka_listener::record::headers::CORRELATION_ID;
use kafka_listener::ReplyingKafkaTemplate;
use support::*;
use tokio::process::{Child, Command};

/// Our side of Spring's `request` mode: answers `{"echo": <request>}` on
/// the request's `kafka_replyTopic`, correlation id copied (Spring checks
/// that the reply contains `"n":i}`).
#[kafka_listener(id = "spring-answerer", topics = ["interop.spring.requests"], reply = true)]
async fn answer_spring(request: Json<serde_json::Value>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "echo": request.0 }))
}

/// The Spring folder: `SPRING_INTEROP_DIR`, or `../shared/spring` next to
/// the repository (as `.ci/run` finds `../shared/kafka/kafka`).
fn spring_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SPRING_INTEROP_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/spring"),
    };
    dir.join("SpringInterop.java").is_file().then_some(dir)
}

fn java() -> PathBuf {
    if let Some(j) = std::env::var_os("JAVA").filter(|j| !j.is_empty()) {
        return PathBuf::from(j);
    }
    if let Some(home) = std::env::var_os("JAVA_HOME").filter(|j| !j.is_empty()) {
        let j = PathBuf::from(home).join("bin/java");
        if j.is_file() {
            return j;
        }
    }
    PathBuf::from("java")
}

/// The Spring folder when the test can run; `None` after printing why not
/// (or a panic under `CI=true`, see the module docs).
fn spring_ready(test: &str) -> Option<PathBuf> {
    if !real_broker_only(test) {
        return None;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let reason = match (spring_dir(), std::process::Command::new(java()).arg("-version").output()) {
        (None, _) => "no Spring folder: set SPRING_INTEROP_DIR or put it at ../shared/spring next to the repository".to_owned(),
        (_, Err(e)) => format!("`{}` cannot run: {e}", java().display()),
        (_, Ok(o)) if !o.status.success() => format!("`{} -version` failed", java().display()),
        (Some(dir), Ok(_)) => return Some(dir),
    };
    assert!(!ci, "{test}: CI=true but Spring cannot run: {reason}");
    eprintln!("{test}: SKIPPED: {reason}");
    None
}

/// `java -cp "libs/*" SpringInterop.java ARGS...` in `dir`.
fn spring(dir: &PathBuf, args: &[&str]) -> Child {
    Command::new(java())
        .current_dir(dir)
        .arg("-cp")
        .arg("libs/*")
        .arg("SpringInterop.java")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("java starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_replying_template_asks_a_spring_send_to_listener() {
    const TEST: &str = "our_replying_template_asks_a_spring_send_to_listener";
    let Some(dir) = spring_ready(TEST) else {
        return;
    };
    init_tracing();
    let requests = &unique("interop.rust.requests");
    let replies = &unique("interop.rust.replies");
    let broker = broker(requests, 2);
    broker.create_topic(replies, 2).unwrap();
    let mut replier = spring(&dir, &["reply", broker.bootstrap_servers(), requests, "90"]);

    let app = KafkaApp::builder()
        .config(config(&broker))
        .without_discovered_listeners()
        .build()
        .await
        .unwrap()
        .start()
        .await
        .unwrap();
    let template = ReplyingKafkaTemplate::builder(app.template(), replies.as_str())
        .kafka_config(&config(&broker), broker.bootstrap_servers())
        .start()
        .await
        .unwrap();
    const N: u64 = 10;
    // Spring compiles the source file and starts in a few seconds; its
    // group reads from the earliest offset, so early requests wait.
    let calls = (0..N).map(|n| {
        let template = template.clone();
        async move {
            let request = ProducerRecord::keyed(requests.as_str(), format!("k{n}"))
                .json(&serde_json::json!({ "n": n }))
                .unwrap();
            (
                n,
                template
                    .send_and_receive(request, Duration::from_secs(90))
                    .await,
            )
        }
    });
    let results = futures::future::join_all(calls).await;
    let failed = results.iter().any(|(_, r)| r.is_err());
    if failed {
        let _ = replier.start_kill();
        let out = replier.wait_with_output().await.unwrap();
        eprintln!("Spring's log:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut ok = 0;
    for (n, reply) in results {
        let reply = reply.unwrap_or_else(|e| panic!("request {n}: {e}"));
        let value: serde_json::Value =
            serde_json::from_slice(reply.value().expect("a value")).unwrap();
        assert_eq!(
            value,
            serde_json::json!({ "echo": { "n": n } }),
            "Spring's @SendTo answer"
        );
        assert_eq!(reply.topic(), replies.as_str());
        assert_eq!(
            reply.headers().get(CORRELATION_ID).map(<[u8]>::len),
            Some(16),
            "Spring copied our correlation id"
        );
        ok += 1;
    }
    println!("Spring's @SendTo listener answered {ok} of {N} requests");
    assert_eq!(ok, N);
    assert_eq!(template.pending(), 0);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_reply_true_listener_answers_a_spring_replying_template() {
    const TEST: &str = "our_reply_true_listener_answers_a_spring_replying_template";
    let Some(dir) = spring_ready(TEST) else {
        return;
    };
    init_tracing();
    // The macro's topic has a fixed name: made afresh on the real broker.
    let requests = "interop.spring.requests";
    let replies = &unique("interop.spring.replies");
    let broker = broker(replies, 2);
    broker.create_fresh_topic(requests, 2).unwrap();
    let spec = registered_listeners()
        .find(|s| s.id() == "spring-answerer")
        .expect("the #[kafka_listener] answer_spring")
        .group_id(unique("spring-answerer"));
    let app = listener_app(&broker, spec, ()).await.start().await.unwrap();

    const N: usize = 20;
    let requester = spring(
        &dir,
        &[
            "request",
            broker.bootstrap_servers(),
            requests,
            replies,
            &N.to_string(),
        ],
    );
    let out = tokio::time::timeout(Duration::from_secs(240), requester.wait_with_output())
        .await
        .expect("Spring's requester finishes within 240 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("spring_requests="))
        .unwrap_or_else(|| {
            panic!(
                "no result line from Spring (exit {:?}); stdout:\n{stdout}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    println!("Spring's requester: {line}");
    assert_eq!(
        line,
        format!("spring_requests={N} replies_ok={N}"),
        "every Spring request got its reply"
    );
    app.shutdown().await;
}
