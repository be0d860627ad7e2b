//! The plumbing of the apps' binaries: `<app> [serve]` serves until
//! SIGINT or SIGTERM, `<app> load [--spawn]` loads a running service or one
//! started in the same process.

use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::db::remove_sqlite_files;

/// A started app, as the binaries drive it.
pub trait Service {
    /// `http://<ip>:<port>` of its HTTP API, without a trailing slash.
    fn base_url(&self) -> String;

    /// Stops it gracefully.
    fn shutdown(self) -> impl Future<Output = ()> + Send;
}

/// The `--spawn` and `--database-url` options of `<app> load` (flattened
/// into its arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct SpawnArgs {
    /// Start a service in this process (embedded broker, a fresh SQLite file
    /// in the temp directory unless --database-url is given) and load it
    /// instead of --url.
    #[arg(long)]
    pub spawn: bool,
    /// With --spawn: the database of the spawned service.
    #[arg(long, requires = "spawn")]
    pub database_url: Option<String>,
}

/// `<app> serve`: awaits `started` (the app's `start(config)`), then serves
/// until SIGINT (Ctrl-C) or SIGTERM and stops the service gracefully.
///
/// # Errors
/// The start error, as text.
pub async fn serve<S, E>(started: impl Future<Output = Result<S, E>>) -> Result<(), String>
where
    S: Service,
    E: Display,
{
    let service = started.await.map_err(|e| e.to_string())?;
    kafka_listener::shutdown_signal().await;
    service.shutdown().await;
    Ok(())
}

/// `<app> load`: without `--spawn`, `run(None)` (the load goes to `--url`).
/// With `--spawn`, first `start(database_url)`: the URL given with
/// `--database-url`, or a fresh SQLite file
/// `<temp dir>/<app>-load-<pid>.db`; then `run(Some(base_url))` against the
/// started service, which is stopped afterwards (the temporary SQLite file
/// and its `-wal` and `-shm` files removed).
///
/// # Errors
/// What `start` failed with; `run`'s own outcome is its output.
pub async fn load<S, T, StartFut, RunFut>(
    app: &str,
    spawn: SpawnArgs,
    start: impl FnOnce(String) -> StartFut,
    run: impl FnOnce(Option<String>) -> RunFut,
) -> Result<T, String>
where
    S: Service,
    StartFut: Future<Output = Result<S, String>>,
    RunFut: Future<Output = T>,
{
    if !spawn.spawn {
        return Ok(run(None).await);
    }
    let mut temp_db: Option<PathBuf> = None;
    let database_url = match spawn.database_url {
        Some(url) => url,
        None => {
            let path = std::env::temp_dir().join(format!("{app}-load-{}.db", std::process::id()));
            let url = format!("sqlite://{}?mode=rwc", path.display());
            temp_db = Some(path);
            url
        }
    };
    let service = start(database_url).await?;
    let output = run(Some(service.base_url())).await;
    service.shutdown().await;
    if let Some(path) = temp_db {
        remove_sqlite_files(&path);
    }
    Ok(output)
}

/// The process' exit code for the outcome of a command: success, or
/// failure after printing `<app>: <error>` to stderr.
pub fn exit_code(app: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{app}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    #[derive(Debug)]
    struct Fake(Arc<AtomicBool>);

    impl Service for Fake {
        fn base_url(&self) -> String {
            "http://fake".into()
        }

        async fn shutdown(self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn without_spawn_the_load_goes_to_the_url() {
        let spawn = SpawnArgs {
            spawn: false,
            database_url: None,
        };
        let out = load(
            "app",
            spawn,
            |_| async { Err::<Fake, _>("not started".to_owned()) },
            |url| async move { url },
        )
        .await;
        assert_eq!(out, Ok(None));
    }

    #[tokio::test]
    async fn a_spawned_service_gets_a_temp_sqlite_file_and_is_stopped() {
        let stopped = Arc::new(AtomicBool::new(false));
        let spawn = SpawnArgs {
            spawn: true,
            database_url: None,
        };
        let seen = std::sync::Mutex::new(String::new());
        let out = load(
            "app",
            spawn,
            |url| {
                *seen.lock().unwrap() = url;
                let stopped = Arc::clone(&stopped);
                async move { Ok(Fake(stopped)) }
            },
            |url| async move { url },
        )
        .await;
        assert_eq!(out, Ok(Some("http://fake".to_owned())));
        assert!(stopped.load(Ordering::SeqCst));
        let url = seen.into_inner().unwrap();
        assert!(url.starts_with("sqlite://"), "{url}");
        assert!(
            url.ends_with(&format!("app-load-{}.db?mode=rwc", std::process::id())),
            "{url}"
        );

        let given = SpawnArgs {
            spawn: true,
            database_url: Some("sqlite::memory:".into()),
        };
        let out = load(
            "app",
            given,
            |url| async move {
                assert_eq!(url, "sqlite::memory:");
                Err::<Fake, _>("refused".to_owned())
            },
            |url| async move { url },
        )
        .await;
        assert_eq!(out, Err("refused".to_owned()));
    }

    #[test]
    fn failures_exit_non_zero() {
        assert_eq!(exit_code("app", Ok(())), ExitCode::SUCCESS);
        assert_eq!(exit_code("app", Err("no".into())), ExitCode::FAILURE);
    }
}
