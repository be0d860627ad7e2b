//! The registry's journal: every change (a registration, a deleted subject,
//! a compatibility level) as one JSON line appended to a file and synced to
//! disk before the change is answered. A registry opened on the file
//! replays the lines in order; the store assigns ids deterministically, so
//! every schema gets its id back.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::store::{Compatibility, Store};

/// One change, as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Entry {
    /// `POST /subjects/{subject}/versions`.
    Register { subject: String, schema: String },
    /// `DELETE /subjects/{subject}`.
    DeleteSubject { subject: String },
    /// `PUT /config[/{subject}]`.
    Compatibility {
        subject: Option<String>,
        level: String,
    },
}

/// Replays `path` into `store` (a missing file is an empty journal) and
/// opens it for appending.
///
/// # Errors
/// A message naming the file and the line when it cannot be read or a line
/// cannot be replayed.
pub(crate) fn open(path: &Path, store: &Store) -> Result<File, String> {
    let shown = path.display();
    if path.exists() {
        let file = File::open(path).map_err(|e| format!("{shown}: {e}"))?;
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| format!("{shown}: {e}"))?;
            if line.trim().is_empty() {
                continue;
            }
            let entry: Entry =
                serde_json::from_str(&line).map_err(|e| format!("{shown}:{}: {e}", n + 1))?;
            replay(store, entry).map_err(|e| format!("{shown}:{}: {e}", n + 1))?;
        }
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{shown}: {e}"))
}

fn replay(store: &Store, entry: Entry) -> Result<(), String> {
    match entry {
        Entry::Register { subject, schema } => store
            .register_in_memory(&subject, &schema)
            .map(drop)
            .map_err(|e| e.message),
        // A subject deleted twice in a row is no error on replay.
        Entry::DeleteSubject { subject } => {
            let _ = store.delete_subject_in_memory(&subject);
            Ok(())
        }
        Entry::Compatibility { subject, level } => {
            let level: Compatibility = level.parse()?;
            store.set_compatibility_in_memory(subject.as_deref(), level);
            Ok(())
        }
    }
}

/// Appends `entry` to `file` and syncs it to disk.
pub(crate) fn append(file: &mut File, entry: &Entry) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    line.push(b'\n');
    file.write_all(&line)?;
    file.sync_data()
}
