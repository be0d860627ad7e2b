//! Settings helpers shared by the apps' `ServiceConfig`s.

use std::time::Duration;

use kafka_listener::KafkaConfig;

/// Makes the producer give up on a record after `send_timeout` (rounded to
/// whole milliseconds, 1 ms to `i32::MAX` ms) by setting
/// `message.timeout.ms` for producers, unless
/// `message.timeout.ms` or `delivery.timeout.ms` is set already (in the
/// producer properties or the common ones): an explicit setting wins.
///
/// The apps answer 503 when the broker did not acknowledge a record within
/// this time.
pub fn default_message_timeout(kafka: KafkaConfig, send_timeout: Duration) -> KafkaConfig {
    if kafka.producer_value("delivery.timeout.ms").is_some() {
        return kafka;
    }
    let ms = send_timeout.as_millis().clamp(1, i32::MAX as u128);
    kafka.producer_default("message.timeout.ms", ms.to_string())
}

/// A database URL fit for logs: `scheme://user:password@host/...` becomes
/// `scheme://user:<redacted>@host/...`; a URL without a password is
/// returned as it is.
pub fn redact_database_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:<redacted>{}", &url[..s + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_timeout_becomes_message_timeout_unless_set() {
        let kafka = default_message_timeout(KafkaConfig::new(), Duration::from_millis(2500));
        assert_eq!(kafka.producer_value("message.timeout.ms"), Some("2500"));

        let explicit = KafkaConfig::new().producer_property("message.timeout.ms", "900");
        let explicit = default_message_timeout(explicit, Duration::from_millis(2500));
        assert_eq!(explicit.producer_value("message.timeout.ms"), Some("900"));

        let delivery = KafkaConfig::new().property("delivery.timeout.ms", "900");
        let delivery = default_message_timeout(delivery, Duration::from_millis(2500));
        assert_eq!(delivery.producer_value("message.timeout.ms"), None);

        let tiny = default_message_timeout(KafkaConfig::new(), Duration::from_micros(10));
        assert_eq!(tiny.producer_value("message.timeout.ms"), Some("1"));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_database_url("postgres://app:hunter2@db:5432/coupons"),
            "postgres://app:<redacted>@db:5432/coupons"
        );
        assert_eq!(
            redact_database_url("postgres://app@db:5432/q"),
            "postgres://app@db:5432/q"
        );
        assert_eq!(
            redact_database_url("sqlite://x.db?mode=rwc"),
            "sqlite://x.db?mode=rwc"
        );
    }
}
