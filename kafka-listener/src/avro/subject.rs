//! Subject name strategies: under which registry subject a schema is
//! registered and looked up.
//!
//! The names and behaviour are those of Confluent's serializers
//! (`io.confluent.kafka.serializers.subject.*`, configured with
//! `key.subject.name.strategy` / `value.subject.name.strategy`).

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// How the subject of a key or value schema is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value`: one schema (and its evolutions) per
    /// topic. Confluent's default, `TopicNameStrategy`.
    #[default]
    TopicName,
    /// The record's full name (`namespace.Name`): one schema per record
    /// type, shared by every topic (`RecordNameStrategy`).
    RecordName,
    /// `<topic>-<namespace.Name>`: several record types per topic, each
    /// evolving on its own (`TopicRecordNameStrategy`).
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// The subject for a schema written to `topic` as a key (`is_key`) or a
    /// value, whose record full name is `record_name` (`None` for a schema
    /// that is not a named type, such as `"string"`).
    ///
    /// # Errors
    /// [`Error::Config`] when the strategy needs a record name and the schema
    /// has none.
    pub fn subject(
        self,
        topic: &str,
        is_key: bool,
        record_name: Option<&str>,
    ) -> Result<String, Error> {
        let suffix = if is_key { "key" } else { "value" };
        let named = |what: &str| {
            record_name.map(str::to_owned).ok_or_else(|| {
                Error::Config(format!(
                    "{what} needs a named schema (record, enum or fixed); the {suffix} schema for topic `{topic}` has no name"
                ))
            })
        };
        match self {
            SubjectNameStrategy::TopicName => Ok(format!("{topic}-{suffix}")),
            SubjectNameStrategy::RecordName => named("RecordNameStrategy"),
            SubjectNameStrategy::TopicRecordName => {
                Ok(format!("{topic}-{}", named("TopicRecordNameStrategy")?))
            }
        }
    }
}

impl fmt::Display for SubjectNameStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubjectNameStrategy::TopicName => "TopicNameStrategy",
            SubjectNameStrategy::RecordName => "RecordNameStrategy",
            SubjectNameStrategy::TopicRecordName => "TopicRecordNameStrategy",
        })
    }
}

impl FromStr for SubjectNameStrategy {
    type Err = Error;

    /// Accepts Confluent's class names
    /// (`io.confluent.kafka.serializers.subject.TopicNameStrategy`), their
    /// simple names, and `topic_name` / `record_name` / `topic_record_name`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let simple = s.rsplit('.').next().unwrap_or(s);
        match simple
            .to_ascii_lowercase()
            .replace(['_', '-'], "")
            .trim_end_matches("strategy")
        {
            "topicname" => Ok(SubjectNameStrategy::TopicName),
            "recordname" => Ok(SubjectNameStrategy::RecordName),
            "topicrecordname" => Ok(SubjectNameStrategy::TopicRecordName),
            _ => Err(Error::Config(format!(
                "unknown subject name strategy `{s}`; expected TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_subjects_as_confluent_does() {
        let t = SubjectNameStrategy::TopicName;
        assert_eq!(t.subject("orders", false, None).unwrap(), "orders-value");
        assert_eq!(
            t.subject("orders", true, Some("a.B")).unwrap(),
            "orders-key"
        );
        let r = SubjectNameStrategy::RecordName;
        assert_eq!(
            r.subject("orders", false, Some("shop.Order")).unwrap(),
            "shop.Order"
        );
        assert!(r.subject("orders", false, None).is_err());
        let tr = SubjectNameStrategy::TopicRecordName;
        assert_eq!(
            tr.subject("orders", false, Some("shop.Order")).unwrap(),
            "orders-shop.Order"
        );
    }

    #[test]
    fn parses_java_class_names() {
        for (s, want) in [
            (
                "io.confluent.kafka.serializers.subject.TopicNameStrategy",
                SubjectNameStrategy::TopicName,
            ),
            ("RecordNameStrategy", SubjectNameStrategy::RecordName),
            ("topic_record_name", SubjectNameStrategy::TopicRecordName),
        ] {
            assert_eq!(s.parse::<SubjectNameStrategy>().unwrap(), want, "{s}");
        }
        assert!("Nope".parse::<SubjectNameStrategy>().is_err());
    }
}
