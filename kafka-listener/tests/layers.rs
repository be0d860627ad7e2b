//! The runtime crate's modules form layers (docs/src/architecture.md): a
//! top-level module of `kafka-listener/src` imports only modules listed
//! before it in `LAYERS`, so no module imports one above it and no two
//! modules import each other.
//!
//! Read from the sources: every `crate::<module>` path outside comments and
//! `#[cfg(test)]` modules, in every file of a top-level module.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Bottom to top. Keep in step with lib.rs and docs/src/architecture.md.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "base",
        &["util", "error", "metrics", "record", "state", "db"],
    ),
    (
        "settings",
        &["config", "retry", "rate_limit", "ack", "context"],
    ),
    (
        "records in and out",
        &[
            "extract",
            "handler",
            "intercept",
            "recover",
            "schema",
            "listener",
            "avro",
            "trace",
            "transaction",
            "producer",
            "reply",
        ],
    ),
    ("failure paths", &["dlq", "retry_topics"]),
    ("container", &["container"]),
    ("dev", &["embedded"]),
    (
        "top",
        &[
            "topics",
            "app",
            "after_commit",
            "asyncapi",
            "console",
            "testing",
        ],
    ),
];

fn order() -> Vec<&'static str> {
    LAYERS.iter().flat_map(|(_, m)| m.iter().copied()).collect()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The files of top-level module `name` (`name.rs` or `name/**.rs`).
fn files(name: &str) -> Vec<PathBuf> {
    let file = src().join(format!("{name}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut out = Vec::new();
    let mut dirs = vec![src().join(name)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// `text` without comments and without `#[cfg(test)]` modules.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            if lines
                .peek()
                .is_some_and(|l| l.trim_start().starts_with("mod "))
            {
                break; // test modules are last in a file (clippy checks)
            }
            lines.next(); // a one-line test-only item (`use`, `const`)
            continue;
        }
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The top-level modules named in `crate::` paths of `code`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `$crate::`, `my_crate::`
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
            out.insert(name);
        }
    }
    out
}

#[test]
fn every_module_of_lib_rs_is_in_a_layer() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: BTreeSet<String> = code(&lib)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.to_owned())
        })
        .collect();
    let layered: BTreeSet<String> = order().into_iter().map(str::to_owned).collect();
    assert_eq!(declared, layered, "lib.rs modules vs LAYERS");
}

#[test]
fn no_module_imports_one_above_it() {
    let order = order();
    let mut violations = Vec::new();
    for (rank, module) in order.iter().enumerate() {
        for file in files(module) {
            let text = std::fs::read_to_string(&file).unwrap();
            for used in imports(&code(&text)) {
                if used == *module {
                    continue;
                }
                match order.iter().position(|m| *m == used) {
                    Some(r) if r < rank => {}
                    Some(_) => violations.push(format!(
                        "{} (module `{module}`) imports `crate::{used}`, which is not below it",
                        file.strip_prefix(src()).unwrap().display()
                    )),
                    None => violations.push(format!(
                        "{}: `crate::{used}` is not a module in LAYERS",
                        file.strip_prefix(src()).unwrap().display()
                    )),
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer violations:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_parser_sees_imports_and_skips_comments_and_tests() {
    let text = "use crate::error::Error;\n// crate::app is only named here\nfn f() { crate::util::lock(&m); }\n/// [`crate::KafkaApp`]\n#[cfg(test)]\nmod tests { use crate::app::X; }\n";
    let got = imports(&code(text));
    let want: BTreeSet<String> = ["error", "util"].into_iter().map(String::from).collect();
    assert_eq!(got, want);
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut long = Vec::new();
    let mut dirs = vec![src()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let n = std::fs::read_to_string(&p).unwrap().lines().count();
                if n > 600 {
                    long.push(format!("{} ({n} lines)", p.display()));
                }
            }
        }
    }
    assert!(long.is_empty(), "split by concern: {long:?}");
}

/// The crates of `cargo tree -p kafka-listener -e normal` with `features`.
fn normal_dependencies(features: &[&str]) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "kafka-listener",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(features.iter().flat_map(|f| ["--features", *f]))
        .args([
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ])
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let crates: BTreeSet<String> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(
        crates.contains("rdkafka"),
        "the tree lists the runtime: {crates:?}"
    );
    crates
}

#[test]
fn default_features_bring_no_database_http_or_registry_client() {
    let crates = normal_dependencies(&[]);
    for heavy in ["sqlx", "axum", "hyper", "reqwest", "apache-avro"] {
        assert!(!crates.contains(heavy), "`{heavy}` is in the default build");
    }
}

#[test]
fn the_embedded_broker_brings_no_http_server_or_registry() {
    // The README's dependency line: the embedded broker without Avro.
    let crates = normal_dependencies(&["embedded", "test-support"]);
    for heavy in ["sqlx", "axum", "hyper", "reqwest", "apache-avro"] {
        assert!(!crates.contains(heavy), "`{heavy}` comes with `embedded`");
    }
    assert!(
        normal_dependencies(&["embedded", "avro"]).contains("axum"),
        "the embedded Schema Registry's server comes with `avro`"
    );
}
