//! [`DeadLetter`]: which topic a listener's dead letters go to (the policy;
//! publishing them is `crate::dlq`'s).

use std::fmt;

use crate::error::Error;

/// The suffix of the default dead-letter topic: `<topic>-dlt`, as Spring
/// Kafka 3.3+ names it (`DeadLetterPublishingRecoverer`'s default
/// destination resolver, and the `@RetryableTopic` DLT).
pub const DLT_SUFFIX: &str = "-dlt";

/// Where a listener's dead letters go: `<original topic>-dlt`, one per
/// source topic ([`DeadLetter::suffixed`], the default;
/// `dead_letter = true`), or one named topic for every source topic
/// ([`DeadLetter::topic`]; `dead_letter = "name"`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DeadLetter {
    /// `None`: `<topic>-dlt`.
    topic: Option<String>,
}

impl fmt::Debug for DeadLetter {
    /// `Suffixed("-dlt")` or `Topic("name")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.topic {
            None => f.debug_tuple("Suffixed").field(&DLT_SUFFIX).finish(),
            Some(name) => f.debug_tuple("Topic").field(name).finish(),
        }
    }
}

impl DeadLetter {
    /// `<original topic>-dlt`, one dead-letter topic per source topic.
    pub const fn suffixed() -> Self {
        Self { topic: None }
    }

    /// One named topic for the dead letters of every source topic.
    ///
    /// # Panics
    /// When `name` is not a valid topic name (see [`try_topic`](Self::try_topic)).
    pub fn topic(name: impl Into<String>) -> Self {
        Self::try_topic(name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`topic`](Self::topic), checked.
    ///
    /// # Errors
    /// [`Error::Config`] when `name` is not a valid Kafka topic name: 1 to
    /// 249 of ASCII letters, digits, `.`, `_` and `-`, not `.` or `..`
    /// (the broker's rule, `org.apache.kafka.common.internals.Topic`).
    pub fn try_topic(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        validate_topic(&name).map_err(|why| {
            Error::Config(format!("dead-letter `topic` `{name}` is invalid: {why}"))
        })?;
        Ok(Self { topic: Some(name) })
    }

    /// The named topic, or `None` for `<topic>-dlt`.
    pub fn fixed_topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    /// The dead-letter topic of a record from `topic`.
    pub fn topic_for(&self, topic: &str) -> String {
        match &self.topic {
            None => format!("{topic}{DLT_SUFFIX}"),
            Some(name) => name.clone(),
        }
    }
}

/// Why `name` is not a valid Kafka topic name, if it is not.
pub(crate) fn validate_topic(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a topic name cannot be empty".into());
    }
    if name.len() > 249 {
        return Err(format!("{} characters, at most 249", name.len()));
    }
    if name == "." || name == ".." {
        return Err("`.` and `..` are not topic names".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "`{c}` is not allowed; a topic name uses ASCII letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixed_and_named_topics() {
        assert_eq!(DeadLetter::suffixed().topic_for("orders"), "orders-dlt");
        assert_eq!(DeadLetter::default(), DeadLetter::suffixed());
        assert_eq!(DeadLetter::suffixed().fixed_topic(), None);
        let named = DeadLetter::topic("dead");
        assert_eq!(named.topic_for("orders"), "dead");
        assert_eq!(named.fixed_topic(), Some("dead"));
        assert_eq!(format!("{named:?}"), r#"Topic("dead")"#);
    }

    #[test]
    fn invalid_topic_names_are_refused() {
        for bad in ["", ".", "..", "has space", "ümlaut", &"x".repeat(250)] {
            let e = DeadLetter::try_topic(bad).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{e}");
            assert!(e.to_string().contains("dead-letter `topic`"), "{e}");
        }
    }
}
