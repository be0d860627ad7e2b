//! Configuration files: Java `.properties` (Spring Boot's
//! `application.properties`, parsed by the `java-properties` crate) and
//! YAML (Spring Boot's `application.yml`, parsed by `yaml-rust2`), both
//! read as flat `key=value` settings.

use std::collections::BTreeMap;
use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

use super::KafkaConfig;
use crate::error::{Error, Result};

impl KafkaConfig {
    /// Reads a configuration file: a Java `.properties` file (Spring Boot's
    /// `application.properties`; `=`, `:` or blank separators, `#` and `!`
    /// comments, `\` line continuations and escapes), or, for a name
    /// ending in `.yml` or `.yaml`, a YAML file (Spring Boot's
    /// `application.yml`: nested keys are joined with `.`, a list becomes
    /// a comma-separated value, a `"[sasl.mechanism]"` key is taken as
    /// written). Each entry is a [`Self::setting`]: Spring's
    /// `spring.kafka.*` names, `bootstrap.servers`, `schema.registry.url`,
    /// `consumer.<name>` and `producer.<name>` for one kind of client, any
    /// other key a property for every client. In a file with any
    /// `spring.kafka.*` key (a Spring Boot file), only the `spring.kafka.*`
    /// keys are read: the others are the app's other settings.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file when it cannot be read or parsed,
    /// or a setting cannot be honoured.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let fail = |e: String| Error::Config(format!("{}: {e}", path.display()));
        let yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"));
        let text = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let entries = if yaml {
            let text = String::from_utf8(text).map_err(|e| fail(e.to_string()))?;
            yaml_entries(&text)
        } else {
            properties_entries(&text)
        };
        Self::from_entries(entries.map_err(fail)?).map_err(|e| fail(e.to_string()))
    }

    /// As [`Self::from_file`], from the text of a Java `.properties` file
    /// (for example one compiled in with `include_str!`).
    ///
    /// # Errors
    /// [`Error::Config`] when the text cannot be parsed or a setting cannot
    /// be honoured.
    pub fn from_properties_str(text: &str) -> Result<Self> {
        Self::from_entries(properties_entries(text.as_bytes()).map_err(Error::Config)?)
    }

    /// As [`Self::from_file`], from the text of a YAML file (Spring Boot's
    /// `application.yml`).
    ///
    /// # Errors
    /// [`Error::Config`] when the text is not YAML, has a key that is not a
    /// scalar, or a setting cannot be honoured.
    pub fn from_yaml_str(text: &str) -> Result<Self> {
        Self::from_entries(yaml_entries(text).map_err(Error::Config)?)
    }

    /// The settings of a file's entries; in a Spring Boot file (any
    /// `spring.kafka.*` key) only the `spring.kafka.*` ones.
    fn from_entries(entries: BTreeMap<String, String>) -> Result<Self> {
        let spring_file = entries.keys().any(|k| k.starts_with("spring.kafka."));
        let mut config = Self::default();
        for (k, v) in entries {
            if spring_file && !k.starts_with("spring.kafka.") {
                continue;
            }
            config = config.setting(&k, v);
        }
        config.validate()?;
        Ok(config)
    }
}

/// The entries of a Java `.properties` text (ISO 8859-1 escapes, as
/// `java-properties` reads them).
fn properties_entries(bytes: &[u8]) -> std::result::Result<BTreeMap<String, String>, String> {
    Ok(java_properties::read(bytes)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect())
}

/// The YAML documents of `text` as flat `dotted.key -> value` entries.
fn yaml_entries(text: &str) -> std::result::Result<BTreeMap<String, String>, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for doc in &docs {
        flatten(doc, "", &mut out)?;
    }
    Ok(out)
}

fn flatten(
    node: &Yaml,
    prefix: &str,
    out: &mut BTreeMap<String, String>,
) -> std::result::Result<(), String> {
    match node {
        Yaml::Hash(map) => {
            for (k, v) in map {
                let key =
                    scalar(k).ok_or_else(|| format!("{prefix}: a key that is not a scalar"))?;
                // Spring's escape for a key with dots: "[sasl.mechanism]".
                let key = key
                    .strip_prefix('[')
                    .and_then(|k| k.strip_suffix(']'))
                    .unwrap_or(&key)
                    .to_owned();
                let full = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(v, &full, out)?;
            }
        }
        Yaml::Array(items) => {
            let values: Option<Vec<String>> = items.iter().map(scalar).collect();
            let values =
                values.ok_or_else(|| format!("{prefix}: a list of anything but values"))?;
            out.insert(prefix.to_owned(), values.join(","));
        }
        Yaml::Null => {}
        other => {
            let value = scalar(other).ok_or_else(|| format!("{prefix}: an unsupported value"))?;
            out.insert(prefix.to_owned(), value);
        }
    }
    Ok(())
}

fn scalar(node: &Yaml) -> Option<String> {
    match node {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(n) => Some(n.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spring_yaml_flattens_to_the_properties_names() {
        let entries = yaml_entries(
            "server:\n  port: 8080\n\
             spring:\n  kafka:\n    bootstrap-servers:\n      - a:9092\n      - b:9092\n\
             \x20   consumer:\n      group-id: orders\n      max-poll-records: 200\n\
             \x20   properties:\n      \"[sasl.mechanism]\": SCRAM-SHA-512\n      security.protocol: SASL_SSL\n",
        )
        .unwrap();
        assert_eq!(entries["spring.kafka.bootstrap-servers"], "a:9092,b:9092");
        assert_eq!(entries["spring.kafka.consumer.group-id"], "orders");
        assert_eq!(entries["spring.kafka.consumer.max-poll-records"], "200");
        assert_eq!(
            entries["spring.kafka.properties.sasl.mechanism"],
            "SCRAM-SHA-512"
        );
        assert_eq!(
            entries["spring.kafka.properties.security.protocol"],
            "SASL_SSL"
        );
        assert_eq!(entries["server.port"], "8080");
        assert!(yaml_entries("a: [b: 1]").is_err());
    }
}
