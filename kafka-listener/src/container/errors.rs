//! What the broker refused a listener's consumers: authorization and
//! authentication failures and other consumer errors, kept for
//! [`super::ListenerContainer::consumer_errors`], logged and counted in
//! `kafka_listener_consumer_errors_total{listener, kind}`.
//!
//! A topic the listener may not read (an ACL denies `Read`) does not stop
//! the listener: librdkafka leaves that topic out of the assignment and the
//! other topics keep flowing, while this module says, at ERROR, which topic
//! was refused.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::lanes::ContainerContext;

/// The most errors a container keeps (the oldest go first).
const KEPT: usize = 32;

/// The errors a container's consumers reported, oldest first.
pub(crate) type Errors = Arc<Mutex<VecDeque<ConsumerError>>>;

/// What kind of failure a [`ConsumerError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConsumerErrorKind {
    /// An ACL denied the listener a topic, its group or the cluster
    /// (`TOPIC_AUTHORIZATION_FAILED`, `GROUP_AUTHORIZATION_FAILED`,
    /// `CLUSTER_AUTHORIZATION_FAILED`).
    Authorization,
    /// SASL authentication or the TLS handshake failed.
    Authentication,
    /// Anything else the consumer reported (a broker down, a timeout).
    Other,
}

impl ConsumerErrorKind {
    /// The `kind` label of the metric: `authorization`, `authentication` or
    /// `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorization => "authorization",
            Self::Authentication => "authentication",
            Self::Other => "other",
        }
    }

    fn of(code: Option<RDKafkaErrorCode>, text: &str) -> Self {
        use RDKafkaErrorCode as C;
        match code {
            Some(
                C::TopicAuthorizationFailed
                | C::GroupAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::TransactionalIdAuthorizationFailed,
            ) => Self::Authorization,
            Some(C::Authentication | C::SaslAuthenticationFailed | C::SSL) => Self::Authentication,
            _ if text.contains("authorization failed") => Self::Authorization,
            _ => Self::Other,
        }
    }
}

/// One error a listener's consumer reported
/// ([`super::ListenerContainer::consumer_errors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerError {
    /// The failure's kind.
    pub kind: ConsumerErrorKind,
    /// librdkafka's message (for an authorization failure it names the
    /// topic, as in `Subscribed topic not available: orders: Broker: Topic
    /// authorization failed`).
    pub message: String,
    /// When it was reported, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// librdkafka's code, to tell one event reported twice (the error
    /// callback, with its reason, and `poll`) from a new one.
    code: Option<RDKafkaErrorCode>,
}

impl ContainerContext {
    /// Keeps, logs and counts a consumer error (from `poll` or librdkafka's
    /// error callback).
    pub(super) fn report_error(&self, error: &KafkaError, reason: Option<&str>) {
        let message = match reason {
            Some(r) if !r.is_empty() => format!("{error}: {r}"),
            _ => error.to_string(),
        };
        let code = error.rdkafka_error_code();
        let now = crate::util::now_ms();
        // librdkafka hands an error event both to the error callback (with
        // the reason, which names the topic) and to `poll`: keep one.
        if reason.is_none() {
            let kept = crate::util::lock(&self.errors);
            if kept
                .back()
                .is_some_and(|last| last.code == code && now - last.at_ms < 1000)
            {
                return;
            }
        }
        let kind = ConsumerErrorKind::of(code, &message.to_ascii_lowercase());
        let listener = self.listener.info.id.to_string();
        match kind {
            ConsumerErrorKind::Other => {
                tracing::warn!(consumer = %self.name, listener = %listener, error = %message, "consumer error");
            }
            _ => {
                tracing::error!(consumer = %self.name, listener = %listener, kind = kind.as_str(), error = %message,
                    "the broker refused this listener's consumer; records the refusal covers are not consumed, the rest keep flowing");
            }
        }
        metrics::counter!(crate::metrics::names::CONSUMER_ERRORS,
            "listener" => listener, "kind" => kind.as_str())
        .increment(1);
        let mut kept = crate::util::lock(&self.errors);
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(ConsumerError {
            kind,
            message,
            at_ms: now,
            code,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_codes_and_text() {
        assert_eq!(
            ConsumerErrorKind::of(Some(RDKafkaErrorCode::TopicAuthorizationFailed), ""),
            ConsumerErrorKind::Authorization
        );
        assert_eq!(
            ConsumerErrorKind::of(
                Some(RDKafkaErrorCode::UnknownTopicOrPartition),
                "subscribed topic not available: t: broker: topic authorization failed"
            ),
            ConsumerErrorKind::Authorization
        );
        assert_eq!(
            ConsumerErrorKind::of(Some(RDKafkaErrorCode::Authentication), ""),
            ConsumerErrorKind::Authentication
        );
        assert_eq!(
            ConsumerErrorKind::of(Some(RDKafkaErrorCode::AllBrokersDown), "down"),
            ConsumerErrorKind::Other
        );
        assert_eq!(ConsumerErrorKind::Authorization.as_str(), "authorization");
    }
}
