//! The embedded broker: librdkafka's mock cluster (`rdkafka::mocking`)
//! running in-process, for apps and tests on a machine with no Kafka.
//!
//! Known limits (measured, see DESIGN.md): at most 5 MiB and 100,000
//! message sets are kept per partition; older records are dropped silently
//! and the log start offset moves forward, like an aggressive retention.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::error::{Error, Result};

/// The mock cluster type the embedded broker runs.
pub type Mock = MockCluster<'static, DefaultProducerContext>;

type Job = Box<dyn FnOnce(&Mock) + Send>;

/// An in-process Kafka broker. The mock cluster is not `Send`, so it lives
/// on a thread of its own and is reached through [`EmbeddedBroker::with_mock`].
/// Dropping the handle stops the broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    bootstrap: String,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts a mock cluster of one broker.
    ///
    /// # Errors
    /// [`Error::Embedded`] when librdkafka cannot create the cluster.
    pub fn start() -> Result<Self> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String>>();
        let thread = std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let mock = match MockCluster::new(1) {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::Embedded(e.to_string())));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(mock.bootstrap_servers()));
                while let Ok(job) = jobs_rx.recv() {
                    job(&mock);
                }
            })
            .map_err(|e| Error::Embedded(e.to_string()))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| Error::Embedded("the broker thread died".into()))??;
        // The app says it at WARN with what it means (records lost at exit).
        tracing::debug!("embedded Kafka broker started: bootstrap.servers={bootstrap}");
        Ok(Self {
            bootstrap,
            jobs: Some(jobs_tx),
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`, for any Kafka client.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Runs `f` with the mock cluster (fault injection: `broker_down`,
    /// `request_errors`, ...) and returns its result.
    ///
    /// # Errors
    /// [`Error::Embedded`] when the broker has stopped.
    pub fn with_mock<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Mock) -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |m| {
            let _ = tx.send(f(m));
        });
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or_else(|| Error::Embedded("the broker has stopped".into()))?;
        rx.recv()
            .map_err(|_| Error::Embedded("the broker has stopped".into()))
    }

    /// Creates a topic with `partitions` partitions (replication 1); an
    /// existing topic is left as it is.
    ///
    /// # Errors
    /// [`Error::Embedded`] when the broker refuses.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let name = name.to_owned();
        self.with_mock(move |m| m.create_topic(&name, partitions, 1))?
            .or_else(|e| {
                if e.to_string().contains("already exists") {
                    Ok(())
                } else {
                    Err(Error::Embedded(format!("create topic: {e}")))
                }
            })
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
