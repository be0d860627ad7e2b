//! Production security on a real broker (`kafka start --secure`): the
//! `ssl` feature's SASL_SSL with SCRAM-SHA-512 and SSL with mutual TLS,
//! the start-up connection check, and ACLs.
//!
//! One secure node, then in order:
//!
//! 1. SASL_SSL, SCRAM-SHA-512: the app creates its topic (admin client),
//!    the template sends 30 records, the listener handles all 30; Kafka's
//!    `topics --describe` shows the 3 partitions and `consumer-groups
//!    --describe` lag 0.
//! 2. SSL with a client certificate (mutual TLS): the same with 20 records.
//! 3. A wrong password, a CA that did not sign the broker's certificate and
//!    a missing client certificate each make `KafkaApp::build` fail within
//!    15 s with `Error::Config` naming the listener, the broker address and
//!    librdkafka's reason.
//! 4. ACLs: `kafka tool acls` denies user `app` `Read` on one topic; a
//!    listener of that topic and another one reports the authorization
//!    error (`ListenerContainer::consumer_errors`, kind `Authorization`,
//!    naming the topic) and handles every record of the other topic, none
//!    of the denied one.
//!
//! Needs `KAFKA_LAUNCHER` (see `kafka_listener_tests::cluster`).

use std::time::{Duration, Instant};

use kafka_listener::{ConsumerErrorKind, Error, KafkaApp, KafkaConfig, NewTopic};
use kafka_listener_tests::cluster::{launcher_or_skip, workspace_root, Cluster};
use kafka_listener_tests::init_logs;
use kafka_listener_tests::scenario::{recording_listener, Handled, Msg};

/// The SASL_SSL configuration of user `app` with `password`.
fn sasl(cluster: &Cluster, password: &str) -> KafkaConfig {
    KafkaConfig::new()
        .bootstrap_servers(cluster.var("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"))
        .property("security.protocol", "SASL_SSL")
        .property("sasl.mechanism", "SCRAM-SHA-512")
        .property("sasl.username", cluster.var("KAFKA_SASL_USERNAME"))
        .property("sasl.password", password)
        .property("ssl.ca.location", cluster.var("KAFKA_SSL_CA_LOCATION"))
}

/// The SSL configuration trusting `ca`, with the client certificate when
/// `client_cert`.
fn mtls(cluster: &Cluster, ca: &str, client_cert: bool) -> KafkaConfig {
    let mut c = KafkaConfig::new()
        .bootstrap_servers(cluster.var("KAFKA_SSL_BOOTSTRAP_SERVERS"))
        .property("security.protocol", "SSL")
        .property("ssl.ca.location", ca);
    if client_cert {
        c = c
            .property(
                "ssl.certificate.location",
                cluster.var("KAFKA_SSL_CERTIFICATE_LOCATION"),
            )
            .property("ssl.key.location", cluster.var("KAFKA_SSL_KEY_LOCATION"));
    }
    c
}

/// Runs a listener of `topic` (3 partitions, created by the app) over
/// `config`, sends `n` records with the app's template and checks that all
/// were handled and committed.
async fn round_trip(cluster: &Cluster, config: KafkaConfig, topic: &str, n: u64) {
    let group = format!("{topic}-group");
    let handled = Handled::default();
    let app = KafkaApp::builder()
        .config(config)
        .without_discovered_listeners()
        .topic(NewTopic::new(topic, 3))
        .listener(recording_listener(topic, topic, &group))
        .build()
        .await
        .unwrap_or_else(|e| panic!("{topic}: build: {e}"))
        .state(handled.clone());
    let running = app.start().await.expect("start");
    let template = running.template();
    for seq in 0..n {
        let sent = template
            .send_json(topic, format!("k{seq}"), &Msg { seq })
            .await
            .expect("send");
        assert_eq!(sent.topic, topic);
    }
    let want: Vec<u64> = (0..n).collect();
    let missing = handled.wait_for_all(&want, Duration::from_secs(60)).await;
    assert!(missing.is_empty(), "{topic}: not handled: {missing:?}");
    assert_eq!(handled.len(), n as usize, "{topic}: each record once");
    running.shutdown().await;
    tokio::task::block_in_place(|| {
        let partitions = cluster.describe_topic(topic);
        assert_eq!(
            partitions.len(),
            3,
            "{topic} created by the app: {partitions:?}"
        );
        cluster.assert_zero_lag(&group, &[(topic, 3)]);
    });
}

/// Builds an app with `config` and one listener, and returns the build's
/// error message (it must fail with `Error::Config` within 15 s).
async fn build_error(config: KafkaConfig, id: &str) -> String {
    let started = Instant::now();
    let result = KafkaApp::builder()
        .config(config)
        .without_discovered_listeners()
        .listener(recording_listener(id, "never.created", id))
        .build()
        .await;
    let elapsed = started.elapsed();
    let message = match result {
        Err(Error::Config(m)) => m,
        Err(other) => panic!("{id}: expected Error::Config, got {other:?}"),
        Ok(_) => panic!("{id}: the app was built with bad credentials"),
    };
    assert!(
        elapsed < Duration::from_secs(15),
        "{id}: the failure took {elapsed:?} ({message})"
    );
    eprintln!("{id}: {message} ({elapsed:?})");
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_mutual_tls_bad_credentials_and_acls_on_a_secure_broker() {
    let Some(launcher) = launcher_or_skip("scenario_security") else {
        return;
    };
    init_logs();
    let cluster = Cluster::start_secure(&launcher, &[]);
    let password = cluster.var("KAFKA_SASL_PASSWORD").to_owned();
    let ca = cluster.var("KAFKA_SSL_CA_LOCATION").to_owned();

    // 1. SASL_SSL with SCRAM-SHA-512.
    round_trip(&cluster, sasl(&cluster, &password), "secure.sasl", 30).await;

    // 2. SSL with mutual TLS.
    round_trip(&cluster, mtls(&cluster, &ca, true), "secure.mtls", 20).await;

    // 3. Bad credentials fail at start, clearly.
    let sasl_addr = cluster.var("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS").to_owned();
    let ssl_addr = cluster.var("KAFKA_SSL_BOOTSTRAP_SERVERS").to_owned();
    let m = build_error(sasl(&cluster, "not-the-password"), "wrong-password").await;
    assert!(m.contains("wrong-password"), "names the listener: {m}");
    assert!(m.contains(&sasl_addr), "names the broker: {m}");
    assert!(m.contains("SCRAM-SHA-512"), "names the mechanism: {m}");
    assert!(
        m.to_ascii_lowercase().contains("authentication"),
        "says authentication failed: {m}"
    );
    assert!(!m.contains("not-the-password"), "no password in it: {m}");

    let other_ca = workspace_root().join("kafka-listener/tests/tls/ca.pem");
    let m = build_error(
        mtls(&cluster, &other_ca.to_string_lossy(), true),
        "unknown-ca",
    )
    .await;
    assert!(m.contains("unknown-ca"), "names the listener: {m}");
    assert!(m.contains(&ssl_addr), "names the broker: {m}");
    assert!(
        m.to_ascii_lowercase().contains("certificate verify failed"),
        "says the broker's certificate was not verified: {m}"
    );

    let m = build_error(mtls(&cluster, &ca, false), "no-client-cert").await;
    assert!(m.contains("no-client-cert"), "names the listener: {m}");
    assert!(m.contains(&ssl_addr), "names the broker: {m}");
    let lower = m.to_ascii_lowercase();
    assert!(
        lower.contains("ssl") || lower.contains("certificate"),
        "says the TLS handshake failed: {m}"
    );

    // 4. ACLs: one topic denied, the other keeps flowing.
    let (denied, allowed) = ("secure.acl.denied", "secure.acl.allowed");
    cluster.create_topic(denied, 2, 1).await;
    cluster.create_topic(allowed, 2, 1).await;
    tokio::task::block_in_place(|| {
        cluster.tool(&[
            "acls",
            "--add",
            "--deny-principal",
            "User:app",
            "--operation",
            "Read",
            "--topic",
            denied,
        ])
    });
    let handled = Handled::default();
    let app = KafkaApp::builder()
        .config(sasl(&cluster, &password))
        .without_discovered_listeners()
        .listener(recording_listener("acl", allowed, "acl-group").topics([denied]))
        .build()
        .await
        .expect("the app builds: only one topic is denied")
        .state(handled.clone());
    // The denied topic's records, written over PLAINTEXT (the broker's
    // super user): seqs 1000.. .
    let plaintext = KafkaApp::builder()
        .config(KafkaConfig::new().bootstrap_servers(cluster.bootstrap()))
        .without_discovered_listeners()
        .build()
        .await
        .expect("a PLAINTEXT app")
        .template();
    for seq in 0..20u64 {
        plaintext
            .send_json(denied, format!("d{seq}"), &Msg { seq: 1000 + seq })
            .await
            .expect("send to the denied topic as the super user");
    }
    let running = app.start().await.expect("start");
    let template = running.template();
    // The allowed topic's records, seqs 0..20, over SASL_SSL as `app`.
    for seq in 0..20u64 {
        template
            .send_json(allowed, format!("a{seq}"), &Msg { seq })
            .await
            .expect("send to the allowed topic");
    }
    let want: Vec<u64> = (0..20).collect();
    let missing = handled.wait_for_all(&want, Duration::from_secs(60)).await;
    assert!(missing.is_empty(), "allowed topic not handled: {missing:?}");
    let container = running.container("acl").expect("the acl container");
    let refusal = container
        .wait_for_consumer_error(ConsumerErrorKind::Authorization, Duration::from_secs(30))
        .await
        .expect("an authorization error reported within 30 s");
    assert!(
        refusal
            .message
            .to_ascii_lowercase()
            .contains("authorization failed"),
        "{refusal:?}"
    );
    assert!(
        refusal.message.contains(denied),
        "the report names the denied topic: {refusal:?}"
    );
    // Records keep flowing on the allowed topic after the refusal.
    for seq in 20..30u64 {
        template
            .send_json(allowed, format!("a{seq}"), &Msg { seq })
            .await
            .expect("send");
    }
    let want: Vec<u64> = (0..30).collect();
    let missing = handled.wait_for_all(&want, Duration::from_secs(60)).await;
    assert!(
        missing.is_empty(),
        "allowed topic after the refusal: {missing:?}"
    );
    let from_denied: Vec<u64> = handled.seqs().into_iter().filter(|s| *s >= 1000).collect();
    assert!(
        from_denied.is_empty(),
        "records of the denied topic were handled: {from_denied:?}"
    );
    running.shutdown().await;
}
