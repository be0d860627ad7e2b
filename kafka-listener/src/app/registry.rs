//! The listener registry: every listener container of an app by id, with
//! start, stop, pause and resume (Spring's `KafkaListenerEndpointRegistry`).

use std::sync::{Arc, RwLock};

use crate::container::ListenerContainer;
use crate::error::{Error, Result};

/// The listener containers of an app, by listener id (Spring's
/// `KafkaListenerEndpointRegistry`).
///
/// A cheap handle (clone it freely) that exists before the app starts:
/// [`crate::KafkaApp::registry`] gives it, so it can go into the app state
/// or an HTTP router; the containers appear in it when the app starts. Every
/// operation on an id that no container has fails with
/// [`Error::Listener`] naming the ids there are.
///
/// ```no_run
/// # use kafka_listener::prelude::*;
/// # async fn f() -> Result<(), kafka_listener::Error> {
/// let app = KafkaApp::builder().build().await?;
/// let registry = app.registry();
/// let running = app.state(registry.clone()).start().await?;
/// registry.pause("coupon-issuer")?;
/// assert!(registry.is_paused("coupon-issuer")?);
/// registry.resume("coupon-issuer")?;
/// # running.shutdown().await; Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ListenerRegistry {
    containers: Arc<RwLock<Vec<Arc<ListenerContainer>>>>,
}

impl ListenerRegistry {
    /// Puts the app's containers in (once, at start).
    pub(super) fn fill(&self, containers: Vec<Arc<ListenerContainer>>) {
        *self.containers.write().unwrap_or_else(|e| e.into_inner()) = containers;
    }

    /// The ids of the listeners, in declaration order (empty before the app
    /// starts).
    pub fn ids(&self) -> Vec<String> {
        self.read().iter().map(|c| c.id().to_owned()).collect()
    }

    /// The container of the listener `id`.
    pub fn container(&self, id: &str) -> Option<Arc<ListenerContainer>> {
        self.read().iter().find(|c| c.id() == id).cloned()
    }

    /// Every container, in declaration order.
    pub fn containers(&self) -> Vec<Arc<ListenerContainer>> {
        self.read().clone()
    }

    /// Starts the listener `id` (one declared with `auto_startup = false`,
    /// or one stopped); does nothing when it runs.
    ///
    /// # Errors
    /// [`Error::Listener`] for an unknown id; [`Error::Kafka`] when a
    /// consumer cannot be created.
    pub fn start(&self, id: &str) -> Result<()> {
        self.get(id)?.start()
    }

    /// Stops the listener `id`: its consumers finish the records in hand,
    /// commit and leave the group.
    ///
    /// # Errors
    /// [`Error::Listener`] for an unknown id.
    pub async fn stop(&self, id: &str) -> Result<()> {
        self.get(id)?.stop().await;
        Ok(())
    }

    /// Pauses the listener `id`: its consumers stay in the group and keep
    /// polling, records in hand are finished, no new ones are handed out.
    ///
    /// # Errors
    /// [`Error::Listener`] for an unknown id.
    pub fn pause(&self, id: &str) -> Result<()> {
        self.get(id)?.pause();
        Ok(())
    }

    /// Resumes the listener `id` after [`Self::pause`].
    ///
    /// # Errors
    /// [`Error::Listener`] for an unknown id.
    pub fn resume(&self, id: &str) -> Result<()> {
        self.get(id)?.resume();
        Ok(())
    }

    /// Whether the listener `id` runs.
    ///
    /// # Errors
    /// [`Error::Listener`] for an unknown id.
    pub fn is_running(&self, id: &str) -> Result<bool> {
        Ok(self.get(id)?.is_running())
    }

    /// Whether the listener `id` is paused.
    ///
    /// # Errors
    /// [`Error::Listener`] for an unknown id.
    pub fn is_paused(&self, id: &str) -> Result<bool> {
        Ok(self.get(id)?.is_paused())
    }

    /// Stops every container in parallel.
    pub(super) async fn stop_all(&self) {
        let containers = self.containers();
        futures::future::join_all(containers.iter().map(|c| c.stop())).await;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<ListenerContainer>>> {
        self.containers.read().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &str) -> Result<Arc<ListenerContainer>> {
        self.container(id).ok_or_else(|| {
            let ids = self.ids();
            Error::Listener {
                listener: id.to_owned(),
                reason: if ids.is_empty() {
                    "no such listener (the app has not started, or has no listeners)".to_owned()
                } else {
                    format!("no such listener; the app's listeners: {}", ids.join(", "))
                },
            }
        })
    }
}
