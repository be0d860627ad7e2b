//! The start-up connection check: before an app on a real broker creates
//! topics or starts a listener, one client of each kind (the listeners'
//! consumer configuration and the template's producer configuration) fetches
//! the cluster's metadata. librdkafka retries a failed authentication or TLS
//! handshake forever in the background; here such a failure ends the build
//! with an [`Error::Config`] that names the client, the broker address and
//! librdkafka's reason, instead of an app that starts and silently never
//! receives a record.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;
use crate::error::{Error, Result};

/// How long the check waits for a broker that does not answer before it
/// lets the app start anyway.
const NO_ANSWER: Duration = Duration::from_secs(10);

/// Checks the consumer configuration (named after `listeners`) and the
/// producer configuration of an app on the real broker `bootstrap`.
///
/// # Errors
/// As [`check_connection`].
pub(crate) async fn check_app(
    config: &KafkaConfig,
    bootstrap: &str,
    listeners: &[&str],
) -> Result<()> {
    let who = if listeners.is_empty() {
        "admin client (topic creation)".to_owned()
    } else {
        format!(
            "consumer of listener(s) [{}] (and the admin client)",
            listeners.join(", ")
        )
    };
    let consumer = config.consumer_config(bootstrap);
    check_connection(ClientKind::Consumer, &who, &consumer, NO_ANSWER).await?;
    let producer = config.producer_config(bootstrap);
    check_connection(
        ClientKind::Producer,
        "producer (KafkaTemplate)",
        &producer,
        NO_ANSWER,
    )
    .await
}

/// How long one metadata request of the check waits.
const ATTEMPT: Duration = Duration::from_secs(2);

/// Which client configuration a check runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientKind {
    /// The listeners' (and the admin's) consumer configuration.
    Consumer,
    /// The template's producer configuration.
    Producer,
}

/// What librdkafka reported while the check ran: the error callback's and
/// the warning logs' messages.
#[derive(Clone, Default)]
struct CheckContext {
    reports: Reports,
}

/// librdkafka's reports: the error code (none for a log line) and the text.
type Reports = Arc<Mutex<Vec<(Option<RDKafkaErrorCode>, String)>>>;

impl ClientContext for CheckContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            crate::util::lock(&self.reports).push((None, format!("{fac}: {log_message}")));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        crate::util::lock(&self.reports).push((error.rdkafka_error_code(), reason.to_owned()));
    }
}

impl ConsumerContext for CheckContext {}

impl ProducerContext for CheckContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// Whether a report says the client can never connect as configured: an
/// authentication failure, a TLS failure (unknown CA, a certificate the
/// broker refused, a missing client certificate) or an authorization
/// failure on the cluster.
fn is_fatal(code: Option<RDKafkaErrorCode>, message: &str) -> bool {
    use RDKafkaErrorCode as C;
    if matches!(
        code,
        Some(
            C::Authentication
                | C::SaslAuthenticationFailed
                | C::UnsupportedSASLMechanism
                | C::IllegalSASLState
                | C::SSL
                | C::ClusterAuthorizationFailed
        )
    ) {
        return true;
    }
    let m = message.to_ascii_lowercase();
    [
        "ssl handshake failed",
        "sasl authentication error",
        "authentication failed",
        "certificate verify failed",
        "bad certificate",
        "certificate required",
        "unknown ca",
        "ssl transport error",
        "failed to verify",
        "unsupported sasl mechanism",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// The security settings of `config` that help read a failure
/// (`security.protocol`, `sasl.mechanism(s)`, `sasl.username`, the TLS
/// files), never a secret.
fn security_summary(config: &ClientConfig) -> String {
    let keys = [
        "security.protocol",
        "sasl.mechanisms",
        "sasl.mechanism",
        "sasl.username",
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.keystore.location",
    ];
    let parts: Vec<String> = keys
        .iter()
        .filter_map(|k| config.get(k).map(|v| format!("{k}={v}")))
        .collect();
    if parts.is_empty() {
        "security.protocol=plaintext".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Fetches the cluster's metadata with `config` (a client of `kind`) until
/// it answers or `timeout` passes.
///
/// `who` names the client in the error (for example
/// `consumer of listeners [orders]`).
///
/// # Errors
/// [`Error::Config`] naming `who`, the bootstrap servers, the security
/// settings and librdkafka's reason, at the first authentication, TLS or
/// cluster authorization failure. When the broker just does not answer in
/// `timeout`, a warning is logged and the build goes on (the broker may be
/// starting; the clients keep trying, as they always do).
pub(crate) async fn check_connection(
    kind: ClientKind,
    who: &str,
    config: &ClientConfig,
    timeout: Duration,
) -> Result<()> {
    let mut config = config.clone();
    // The check must not join a group (and asks for every topic's
    // metadata, which creates none).
    config.remove("group.id");
    config.set_log_level(RDKafkaLogLevel::Warning);
    let bootstrap = config.get("bootstrap.servers").unwrap_or("?").to_owned();
    let summary = security_summary(&config);
    let who = who.to_owned();
    tokio::task::spawn_blocking(move || {
        let ctx = CheckContext::default();
        let reports = Arc::clone(&ctx.reports);
        let fail = |cause: String| {
            Error::Config(format!(
                "the {who} cannot connect to Kafka at {bootstrap} ({summary}): {cause}"
            ))
        };
        // One attempt: serve librdkafka's queued events for up to `wait`
        // (an authentication failure arrives as an error event, handed to
        // the context), then ask for the metadata.
        let fetch: Box<dyn Fn(Duration) -> std::result::Result<(), KafkaError>> = match kind {
            ClientKind::Consumer => {
                let c: BaseConsumer<CheckContext> = config
                    .create_with_context(ctx)
                    .map_err(|e| fail(e.to_string()))?;
                Box::new(move |wait| {
                    if let Some(Err(e)) = c.poll(wait) {
                        tracing::debug!("connection check: {e}");
                    }
                    c.fetch_metadata(None, ATTEMPT).map(drop)
                })
            }
            ClientKind::Producer => {
                let p: BaseProducer<CheckContext> = config
                    .create_with_context(ctx)
                    .map_err(|e| fail(e.to_string()))?;
                Box::new(move |wait| {
                    p.poll(wait);
                    p.client().fetch_metadata(None, ATTEMPT).map(drop)
                })
            }
        };
        let deadline = Instant::now() + timeout;
        loop {
            let result = fetch(Duration::ZERO);
            if result.is_err() {
                // The failure's reason may only now be queued.
                let _ = fetch(Duration::from_millis(100));
            }
            let fatal = crate::util::lock(&reports)
                .iter()
                .find(|(code, m)| is_fatal(*code, m))
                .cloned();
            if let Some((code, message)) = fatal {
                let code = code.map(|c| format!(" [{c:?}]")).unwrap_or_default();
                return Err(fail(format!("{message}{code}")));
            }
            match result {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    let seen = crate::util::lock(&reports)
                        .last()
                        .map(|(_, m)| format!("; last report: {m}"))
                        .unwrap_or_default();
                    tracing::warn!(client = %who, bootstrap.servers = %bootstrap,
                        "no answer from Kafka within {timeout:?} at start ({e}{seen}); starting anyway, the clients keep trying");
                    return Ok(());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    })
    .await
    .map_err(|e| Error::Config(format!("connection check: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_and_tls_failures_are_fatal() {
        assert!(is_fatal(
            Some(RDKafkaErrorCode::Authentication),
            "SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
        ));
        assert!(is_fatal(
            None,
            "FAIL: ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed"
        ));
        assert!(!is_fatal(
            Some(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down"
        ));
    }

    #[test]
    fn the_summary_names_no_secret() {
        let mut c = ClientConfig::new();
        c.set("security.protocol", "SASL_SSL")
            .set("sasl.mechanisms", "SCRAM-SHA-512")
            .set("sasl.username", "app")
            .set("sasl.password", "hunter2");
        let s = security_summary(&c);
        assert!(s.contains("security.protocol=SASL_SSL"), "{s}");
        assert!(s.contains("sasl.username=app"), "{s}");
        assert!(!s.contains("hunter2"), "{s}");
    }
}
