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

/// Builds a binary with `cargo build <args>` and returns its path in the
/// debug profile.
///
/// # Panics
/// When the build fails or the binary is not where it should be.
pub fn build(args: &[&str], bin: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .arg("build")
        .args(args)
        .current_dir(workspace_root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build {args:?} failed");
    let path = target_dir().join("debug").join(bin);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Builds `dev-broker` (`kafka-listener` with the `dev-broker` feature).
///
/// # Panics
/// As [`build`].
pub fn build_dev_broker() -> PathBuf {
    build(
        &[
            "-p",
            "kafka-listener",
            "--features",
            "dev-broker",
            "--bin",
            "dev-broker",
        ],
        "dev-broker",
    )
}

/// Child processes, killed (SIGKILL) when dropped, the last started first,
/// also on panic; the first is `dev-broker` when [`Self::broker`] is set.
#[derive(Debug, Default)]
pub struct Children {
    children: Vec<Child>,
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
