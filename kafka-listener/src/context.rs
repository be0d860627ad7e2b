//! What a listener knows about itself ([`ListenerInfo`]) and what an
//! extractor sees besides the record ([`ListenerContext`]).
//!
//! Settings layer: built by the container from a listener's settings, read
//! by extractors, handlers and recoverers.

use std::sync::Arc;

use crate::ack::{AckHandle, AckMode};
use crate::state::StateMap;

/// What a listener knows about itself at start-up: what
/// [`FromRecord::validate`] checks against.
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    pub(crate) id: Arc<str>,
    pub(crate) group_id: Arc<str>,
    pub(crate) ack_mode: AckMode,
    pub(crate) state: Arc<StateMap>,
}

impl ListenerInfo {
    /// A listener description for tests of handlers and extractors.
    pub fn new(id: &str, ack_mode: AckMode, state: StateMap) -> Self {
        Self {
            id: Arc::from(id),
            group_id: Arc::from(id),
            ack_mode,
            state: Arc::new(state),
        }
    }

    /// The listener id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The consumer group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The ack mode.
    pub fn ack_mode(&self) -> AckMode {
        self.ack_mode
    }

    /// The application state.
    pub fn state(&self) -> &StateMap {
        &self.state
    }
}

/// What an extractor sees besides the record: the listener and, in the
/// manual ack modes, the acknowledgment of this record.
#[derive(Debug)]
pub struct ListenerContext<'a> {
    pub(crate) info: &'a ListenerInfo,
    pub(crate) ack: Option<AckHandle>,
    pub(crate) attempt: u32,
}

impl<'a> ListenerContext<'a> {
    /// A context for tests of handlers and extractors (no acknowledgment,
    /// first delivery attempt).
    pub fn new(info: &'a ListenerInfo) -> Self {
        Self {
            info,
            ack: None,
            attempt: 1,
        }
    }

    /// The listener.
    pub fn info(&self) -> &ListenerInfo {
        self.info
    }

    /// The delivery attempt of this record on this instance, from 1.
    pub fn delivery_attempt(&self) -> u32 {
        self.attempt
    }

    /// An owned copy, for futures that outlive the borrow.
    pub(crate) fn to_owned(&self) -> OwnedContext {
        OwnedContext {
            info: self.info.clone(),
            ack: self.ack.clone(),
            attempt: self.attempt,
        }
    }
}

/// A [`ListenerContext`] that owns its listener info (cheap: `Arc`s).
pub(crate) struct OwnedContext {
    info: ListenerInfo,
    ack: Option<AckHandle>,
    attempt: u32,
}

impl OwnedContext {
    pub(crate) fn info(&self) -> &ListenerInfo {
        &self.info
    }

    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    pub(crate) fn borrow(&self) -> ListenerContext<'_> {
        ListenerContext {
            info: &self.info,
            ack: self.ack.clone(),
            attempt: self.attempt,
        }
    }
}
