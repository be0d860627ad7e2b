//! The embedded registry's data: schemas by global id, subjects with their
//! versions, and compatibility levels, in memory.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

/// A compatibility level, with Confluent's names and meanings: which earlier
/// versions of a subject a new schema is checked against, and in which
/// direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compatibility {
    /// No check.
    None,
    /// The new schema can read data written with the latest one (Confluent's
    /// default): fields may be removed, or added with a default.
    #[default]
    Backward,
    /// As `Backward`, against every earlier version.
    BackwardTransitive,
    /// The latest schema can read data written with the new one.
    Forward,
    /// As `Forward`, against every earlier version.
    ForwardTransitive,
    /// Both `Backward` and `Forward` with the latest version.
    Full,
    /// Both, with every earlier version.
    FullTransitive,
}

impl Compatibility {
    const NAMES: [(&'static str, Compatibility); 7] = [
        ("NONE", Compatibility::None),
        ("BACKWARD", Compatibility::Backward),
        ("BACKWARD_TRANSITIVE", Compatibility::BackwardTransitive),
        ("FORWARD", Compatibility::Forward),
        ("FORWARD_TRANSITIVE", Compatibility::ForwardTransitive),
        ("FULL", Compatibility::Full),
        ("FULL_TRANSITIVE", Compatibility::FullTransitive),
    ];

    fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    /// Checks `new` against `earlier` (oldest first); `Err` lists why not.
    fn check(self, new: &Schema, earlier: &[&Schema]) -> Result<(), Vec<String>> {
        let against: &[&Schema] = if self.transitive() {
            earlier
        } else {
            earlier.last().map_or(&[], std::slice::from_ref)
        };
        let (backward, forward) = match self {
            Compatibility::None => (false, false),
            Compatibility::Backward | Compatibility::BackwardTransitive => (true, false),
            Compatibility::Forward | Compatibility::ForwardTransitive => (false, true),
            Compatibility::Full | Compatibility::FullTransitive => (true, true),
        };
        let mut errors = Vec::new();
        for old in against {
            if backward {
                if let Err(e) = SchemaCompatibility::can_read(old, new) {
                    errors.push(format!(
                        "the new schema cannot read data written with an earlier one ({self}): {e}"
                    ));
                }
            }
            if forward {
                if let Err(e) = SchemaCompatibility::can_read(new, old) {
                    errors.push(format!(
                        "an earlier schema cannot read data written with the new one ({self}): {e}"
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::NAMES
            .iter()
            .find(|(_, c)| c == self)
            .map_or("NONE", |(n, _)| n);
        f.write_str(name)
    }
}

impl FromStr for Compatibility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s.trim()))
            .map(|(_, c)| *c)
            .ok_or_else(|| format!("invalid compatibility level `{s}`"))
    }
}

/// A registry error with Confluent's error code (the HTTP status is the
/// code's first three digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreError {
    pub(crate) code: u32,
    pub(crate) message: String,
}

impl StoreError {
    fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn status(&self) -> u16 {
        let s = if self.code >= 1000 {
            self.code / 100
        } else {
            self.code
        };
        u16::try_from(s).unwrap_or(500)
    }

    fn subject_not_found(subject: &str) -> Self {
        Self::new(40401, format!("Subject '{subject}' not found."))
    }
}

/// A version of a subject as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) subject: String,
    pub(crate) version: i32,
    pub(crate) id: u32,
    pub(crate) schema: String,
}

struct Stored {
    text: String,
    parsed: Schema,
}

#[derive(Default)]
struct Data {
    /// Schema id `n` is `schemas[n - 1]`.
    schemas: Vec<Stored>,
    /// Normalized schema JSON -> id (one id per distinct schema).
    by_normalized: HashMap<String, u32>,
    /// Subject -> schema ids, version `n` at `n - 1`.
    subjects: BTreeMap<String, Vec<u32>>,
    global: Compatibility,
    per_subject: HashMap<String, Compatibility>,
}

/// The in-memory registry.
#[derive(Default)]
pub(crate) struct Store {
    data: Mutex<Data>,
    id_lookups: AtomicU64,
    /// The `Authorization` header value every request must carry, if any.
    auth: Mutex<Option<String>>,
    /// The journal file, when the registry keeps its data on disk; its lock
    /// also orders the changes, so that the journal has them in the order
    /// ids were given.
    journal: Mutex<Option<std::fs::File>>,
}

/// Standard base64 with padding (RFC 4648), for basic-auth headers.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn parse(text: &str) -> Result<(Schema, String), StoreError> {
    let parsed = Schema::parse_str(text)
        .map_err(|e| StoreError::new(42201, format!("Invalid schema: {e}")))?;
    let normalized = serde_json::to_string(&parsed)
        .map_err(|e| StoreError::new(42201, format!("Invalid schema: {e}")))?;
    Ok((parsed, normalized))
}

impl Store {
    /// Requires HTTP basic auth with `user_info` (`user:password`), or
    /// nothing when `None`.
    pub(crate) fn require_basic_auth(&self, user_info: Option<&str>) {
        *crate::util::lock(&self.auth) =
            user_info.map(|u| format!("Basic {}", base64(u.as_bytes())));
    }

    /// Whether a request with this `Authorization` header may pass.
    pub(crate) fn authorized(&self, header: Option<&str>) -> bool {
        match &*crate::util::lock(&self.auth) {
            None => true,
            Some(want) => header == Some(want.as_str()),
        }
    }

    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        crate::util::lock(&self.data)
    }

    /// Keeps the data in `path` from now on, after replaying what it holds
    /// (see [`super::journal`]).
    pub(crate) fn open_journal(&self, path: &std::path::Path) -> Result<(), String> {
        let file = super::journal::open(path, self)?;
        *crate::util::lock(&self.journal) = Some(file);
        Ok(())
    }

    /// Runs `change` and, when it succeeds and a journal is open, appends
    /// `entry` to it, all under the journal's lock.
    fn journaled<T>(
        &self,
        entry: impl FnOnce() -> super::journal::Entry,
        change: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut journal = crate::util::lock(&self.journal);
        let out = change()?;
        if let Some(file) = journal.as_mut() {
            super::journal::append(file, &entry())
                .map_err(|e| StoreError::new(50001, format!("journal write failed: {e}")))?;
        }
        Ok(out)
    }

    /// Registers `text` under `subject`: the existing id when the subject
    /// already has this schema, else checked against the subject's level.
    pub(crate) fn register(&self, subject: &str, text: &str) -> Result<u32, StoreError> {
        self.journaled(
            || super::journal::Entry::Register {
                subject: subject.to_owned(),
                schema: text.to_owned(),
            },
            || self.register_in_memory(subject, text),
        )
    }

    /// [`Self::register`] without the journal.
    pub(crate) fn register_in_memory(&self, subject: &str, text: &str) -> Result<u32, StoreError> {
        let (parsed, normalized) = parse(text)?;
        let mut data = self.data();
        let known = data.by_normalized.get(&normalized).copied();
        let versions = data.subjects.get(subject).cloned().unwrap_or_default();
        if let Some(id) = known {
            if versions.contains(&id) {
                return Ok(id);
            }
        }
        let level = data
            .per_subject
            .get(subject)
            .copied()
            .unwrap_or(data.global);
        let earlier: Vec<&Schema> = versions
            .iter()
            .map(|id| &data.schemas[*id as usize - 1].parsed)
            .collect();
        if let Err(reasons) = level.check(&parsed, &earlier) {
            return Err(StoreError::new(
                409,
                format!(
                    "Schema being registered is incompatible with an earlier schema for subject \"{subject}\"; {}",
                    reasons.join("; ")
                ),
            ));
        }
        let id = match known {
            Some(id) => id,
            None => {
                data.schemas.push(Stored {
                    text: text.to_owned(),
                    parsed,
                });
                let id = u32::try_from(data.schemas.len()).unwrap_or(u32::MAX);
                data.by_normalized.insert(normalized, id);
                id
            }
        };
        data.subjects
            .entry(subject.to_owned())
            .or_default()
            .push(id);
        Ok(id)
    }

    /// The schema text of a global id.
    pub(crate) fn schema(&self, id: u32) -> Result<String, StoreError> {
        self.id_lookups.fetch_add(1, Ordering::Relaxed);
        let data = self.data();
        id.checked_sub(1)
            .and_then(|i| data.schemas.get(i as usize))
            .map(|s| s.text.clone())
            .ok_or_else(|| StoreError::new(40403, format!("Schema {id} not found")))
    }

    /// How many look-ups by id were answered (or refused) so far.
    pub(crate) fn id_lookups(&self) -> u64 {
        self.id_lookups.load(Ordering::Relaxed)
    }

    /// The subjects and versions that use a global id.
    pub(crate) fn usages(&self, id: u32) -> Vec<(String, i32)> {
        let data = self.data();
        data.subjects
            .iter()
            .flat_map(|(s, ids)| {
                ids.iter()
                    .enumerate()
                    .filter(|(_, i)| **i == id)
                    .map(|(v, _)| (s.clone(), v as i32 + 1))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub(crate) fn subjects(&self) -> Vec<String> {
        self.data().subjects.keys().cloned().collect()
    }

    pub(crate) fn versions(&self, subject: &str) -> Result<Vec<i32>, StoreError> {
        let data = self.data();
        let ids = data
            .subjects
            .get(subject)
            .ok_or_else(|| StoreError::subject_not_found(subject))?;
        Ok((1..=ids.len() as i32).collect())
    }

    /// `version` is a number from 1, `latest` or `-1`.
    pub(crate) fn version(&self, subject: &str, version: &str) -> Result<Version, StoreError> {
        let data = self.data();
        let ids = data
            .subjects
            .get(subject)
            .ok_or_else(|| StoreError::subject_not_found(subject))?;
        let n = match version {
            "latest" | "-1" => ids.len(),
            v => v
                .parse::<usize>()
                .map_err(|_| StoreError::new(42202, format!("Invalid version `{v}`")))?,
        };
        let id = n
            .checked_sub(1)
            .and_then(|i| ids.get(i))
            .copied()
            .ok_or_else(|| StoreError::new(40402, format!("Version {version} not found.")))?;
        Ok(Version {
            subject: subject.to_owned(),
            version: n as i32,
            id,
            schema: data.schemas[id as usize - 1].text.clone(),
        })
    }

    /// The version of `subject` that has `text`, if any.
    pub(crate) fn lookup(&self, subject: &str, text: &str) -> Result<Version, StoreError> {
        let (_, normalized) = parse(text)?;
        let data = self.data();
        let ids = data
            .subjects
            .get(subject)
            .ok_or_else(|| StoreError::subject_not_found(subject))?;
        let id = data
            .by_normalized
            .get(&normalized)
            .copied()
            .ok_or_else(|| StoreError::new(40403, "Schema not found"))?;
        let n = ids
            .iter()
            .position(|i| *i == id)
            .ok_or_else(|| StoreError::new(40403, "Schema not found"))?;
        Ok(Version {
            subject: subject.to_owned(),
            version: n as i32 + 1,
            id,
            schema: data.schemas[id as usize - 1].text.clone(),
        })
    }

    /// Deletes a subject; returns the versions it had.
    pub(crate) fn delete_subject(&self, subject: &str) -> Result<Vec<i32>, StoreError> {
        self.journaled(
            || super::journal::Entry::DeleteSubject {
                subject: subject.to_owned(),
            },
            || self.delete_subject_in_memory(subject),
        )
    }

    /// [`Self::delete_subject`] without the journal.
    pub(crate) fn delete_subject_in_memory(&self, subject: &str) -> Result<Vec<i32>, StoreError> {
        let mut data = self.data();
        let ids = data
            .subjects
            .remove(subject)
            .ok_or_else(|| StoreError::subject_not_found(subject))?;
        data.per_subject.remove(subject);
        Ok((1..=ids.len() as i32).collect())
    }

    /// Whether `text` could be registered as a new version after `version`
    /// (`latest` or a number) of `subject`; a subject that does not exist
    /// accepts anything.
    pub(crate) fn check(
        &self,
        subject: &str,
        version: &str,
        text: &str,
    ) -> Result<Vec<String>, StoreError> {
        let (parsed, _) = parse(text)?;
        let data = self.data();
        let Some(ids) = data.subjects.get(subject) else {
            return Ok(Vec::new());
        };
        let level = data
            .per_subject
            .get(subject)
            .copied()
            .unwrap_or(data.global);
        let upto = match version {
            "latest" | "-1" => ids.len(),
            v => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=ids.len()).contains(n))
                .ok_or_else(|| StoreError::new(40402, format!("Version {v} not found.")))?,
        };
        let earlier: Vec<&Schema> = ids[..upto]
            .iter()
            .map(|id| &data.schemas[*id as usize - 1].parsed)
            .collect();
        Ok(level.check(&parsed, &earlier).err().unwrap_or_default())
    }

    /// The level of `subject` (its own, else the global one), or the global
    /// level when `subject` is `None`.
    pub(crate) fn compatibility(&self, subject: Option<&str>) -> Compatibility {
        let data = self.data();
        subject
            .and_then(|s| data.per_subject.get(s).copied())
            .unwrap_or(data.global)
    }

    /// Sets the level of `subject`, or the global one (journaled).
    pub(crate) fn set_compatibility(&self, subject: Option<&str>, level: Compatibility) {
        let done = self.journaled(
            || super::journal::Entry::Compatibility {
                subject: subject.map(str::to_owned),
                level: level.to_string(),
            },
            || {
                self.set_compatibility_in_memory(subject, level);
                Ok(())
            },
        );
        if let Err(e) = done {
            tracing::error!("schema registry: {}", e.message);
        }
    }

    /// [`Self::set_compatibility`] without the journal.
    pub(crate) fn set_compatibility_in_memory(&self, subject: Option<&str>, level: Compatibility) {
        let mut data = self.data();
        match subject {
            Some(s) => {
                data.per_subject.insert(s.to_owned(), level);
            }
            None => data.global = level,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"U","fields":[{"name":"a","type":"string"}]}"#;
    const V2: &str = r#"{"type":"record","name":"U","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;
    const BAD: &str = r#"{"type":"record","name":"U","fields":[{"name":"a","type":"string"},{"name":"c","type":"int"}]}"#;

    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(base64(b"svc:secret"), "c3ZjOnNlY3JldA==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn registers_versions_and_refuses_incompatible_changes() {
        let s = Store::default();
        assert_eq!(s.register("t-value", V1), Ok(1));
        assert_eq!(s.register("t-value", V1), Ok(1), "same schema, same id");
        assert_eq!(s.register("t-value", V2), Ok(2));
        let e = s.register("t-value", BAD).unwrap_err();
        assert_eq!((e.code, e.status()), (409, 409));
        assert!(e.message.contains("incompatible"), "{}", e.message);
        assert_eq!(s.register("other-value", V1), Ok(1), "ids are global");
        assert_eq!(s.version("t-value", "latest").unwrap().id, 2);
        assert_eq!(s.lookup("t-value", V1).unwrap().version, 1);
        assert_eq!(s.schema(3).unwrap_err().code, 40403);
        assert!(!s.check("t-value", "latest", BAD).unwrap().is_empty());
        s.set_compatibility(Some("t-value"), Compatibility::None);
        assert_eq!(s.register("t-value", BAD), Ok(3));
        assert_eq!(s.register("t-value", "{nope").unwrap_err().status(), 422);
    }
}
