//! Apps as child processes, for the tests that SIGKILL them: building a
//! binary with `cargo build`, `dev-broker` (librdkafka's mock cluster in a
//! process of its own, so that killing the app keeps the broker's data),
//! starting an app and waiting for its HTTP API, and killing children
//! (always, also when the test panics).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::workspace_root;

/// `CARGO_TARGET_DIR` (relative to the workspace root) or `<root>/target`.
pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// A `cargo` command (the one running the tests, `$CARGO`) for a test to
/// run, without the variables `cargo test` sets for the test process
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, `CARGO_BIN_EXE_*`, ...). Build
/// scripts that read such a variable (ring's reads `CARGO_MANIFEST_DIR`)
/// record its value, so a nested cargo that saw the test's values would
/// rebuild them and everything above them (kafka-listener included), and
/// the next `cargo test` outside would rebuild them all again.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_for_tests = [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*name);
        if set_for_tests {
            command.env_remove(&*name);
        }
    }
    command
}

/// The arguments of [`build`]: `.ci/run`'s test command's package set and
/// features (`--workspace --all-features`) with its test targets
/// (`--tests`, which turns the dev-dependencies' features on as `cargo
/// test` does), and every binary (`--bins`). Cargo then unifies features
/// exactly as for the test run that calls it, so the libraries it already
/// built are reused and only the binaries are compiled and linked; a
/// narrower `cargo build -p app` would resolve other features and rebuild
/// kafka-listener and its dependencies (about a minute each time on a
/// 2-core machine).
const BUILD_ARGS: [&str; 5] = [
    "build",
    "--workspace",
    "--all-features",
    "--tests",
    "--bins",
];

/// Builds the workspace's binaries (see [`BUILD_ARGS`]; cheap when the
/// test run built the same set) and returns the path of `bin` in the debug
/// profile, e.g. `build("coupon-service")`.
///
/// # Panics
/// When the build fails or the binary is not where it should be.
pub fn build(bin: &str) -> PathBuf {
    let status = cargo()
        .args(BUILD_ARGS)
        .current_dir(workspace_root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo {BUILD_ARGS:?} failed");
    let path = target_dir().join("debug").join(bin);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Builds `dev-broker` (`kafka-listener`'s binary with the `dev-broker`
/// feature, which `--all-features` turns on).
///
/// # Panics
/// As [`build`].
pub fn build_dev_broker() -> PathBuf {
    build("dev-broker")
}

/// Child processes, killed (SIGKILL) when dropped, the last started first,
/// also on panic; the first is `dev-broker` when [`Self::broker`] is set.
/// When dropped during a panic, prints the last warnings and errors of
/// their logs, so that a failure in CI shows what the processes saw.
#[derive(Debug, Default)]
pub struct Children {
    children: Vec<Child>,
    logs: Vec<PathBuf>,
    /// Whether the first child is `dev-broker`.
    pub broker: bool,
}

impl Children {
    /// Adds a child; returns its index.
    pub fn push(&mut self, child: Child) -> usize {
        self.children.push(child);
        self.children.len() - 1
    }

    /// SIGKILLs child `index` and reaps it.
    pub fn kill(&mut self, index: usize) {
        let child = &mut self.children[index];
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Panics when child `index` has exited, naming it `what`.
    pub fn assert_alive(&mut self, index: usize, what: &str) {
        if let Ok(Some(status)) = self.children[index].try_wait() {
            panic!("{what} exited: {status}");
        }
    }

    /// Panics when the broker (the first child) has exited.
    pub fn assert_broker_alive(&mut self) {
        if self.broker {
            self.assert_alive(0, "dev-broker");
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for log in &self.logs {
                print_warnings(log, 40);
            }
        }
    }
}

/// Prints the last `n` lines of `log` at WARN or ERROR (and panics) to
/// stderr.
fn print_warnings(log: &Path, n: usize) {
    let Ok(text) = std::fs::read_to_string(log) else {
        return;
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
        .collect();
    eprintln!(
        "--- {}: the last {} of {} warnings and errors ---",
        log.display(),
        n.min(lines.len()),
        lines.len()
    );
    for line in &lines[lines.len().saturating_sub(n)..] {
        eprintln!("{line}");
    }
}

/// A free TCP port on the loopback interface.
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `dev-broker` (built with [`build_dev_broker`]) with `topics`
/// (`name:partitions`), logging to `log`, as the first of `children`;
/// returns its bootstrap servers and its Schema Registry URL once it
/// printed them.
///
/// # Panics
/// When it does not start or print both within 30 s.
pub fn start_dev_broker(
    children: &mut Children,
    bin: &Path,
    topics: &[String],
    log: &Path,
) -> (String, String) {
    let mut command = Command::new(bin);
    for topic in topics {
        command.arg("--topic").arg(topic);
    }
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("dev-broker starts");
    let stdout = child.stdout.take().unwrap();
    children.push(child);
    children.broker = true;
    children.logs.push(log.to_owned());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Reads every line, so the broker never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            for prefix in ["bootstrap.servers=", "schema.registry.url="] {
                if let Some(value) = line.strip_prefix(prefix) {
                    let _ = tx.send((prefix, value.trim().to_owned()));
                }
            }
        }
    });
    let (mut bootstrap, mut registry) = (None, None);
    while bootstrap.is_none() || registry.is_none() {
        let (prefix, value) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("dev-broker prints bootstrap.servers and schema.registry.url");
        match prefix {
            "bootstrap.servers=" => bootstrap = Some(value),
            _ => registry = Some(value),
        }
    }
    (bootstrap.unwrap(), registry.unwrap())
}

/// Starts `bin serve` with `env`, appending its output to `log`; returns
/// its index in `children` once `GET {base}/health` answers 200.
///
/// # Panics
/// When it exits, or does not answer within 30 s.
pub async fn start_app(
    children: &mut Children,
    bin: &Path,
    env: &[(&str, String)],
    log: &Path,
    base: &str,
    client: &reqwest::Client,
) -> usize {
    let log_path = log;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let name = bin.file_name().unwrap().to_string_lossy().into_owned();
    let child = Command::new(bin)
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{name} starts: {e}"));
    let index = children.push(child);
    if !children.logs.iter().any(|l| l == log_path) {
        children.logs.push(log_path.to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            if r.status().is_success() {
                return index;
            }
        }
        children.assert_alive(index, &name);
        assert!(Instant::now() < deadline, "{name} did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh directory `<temp>/<prefix>-<pid>-<millis>` for a test's
/// processes (their logs, a SQLite file).
///
/// # Panics
/// When it cannot be created.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        example_support::now_ms()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
