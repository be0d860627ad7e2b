//! Application state ([`State`]).

use std::ops::Deref;

use super::{batch_from_context, FromBatch, FromRecord};
use crate::context::{ListenerContext, ListenerInfo};
use crate::error::ExtractError;
use crate::record::ConsumerRecord;

/// Application state given to `KafkaApp::state`, cloned for each call
/// (wrap large state in an `Arc`).
///
/// # Errors
/// The listener refuses to start when no state of type `T` was registered.
#[derive(Debug, Clone, Copy, Default)]
pub struct State<T>(pub T);

impl<T> Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone + Send + Sync + 'static> FromRecord for State<T> {
    fn from_record(
        _record: &ConsumerRecord,
        ctx: &ListenerContext<'_>,
    ) -> Result<Self, ExtractError> {
        ctx.info
            .state
            .get::<T>()
            .cloned()
            .map(State)
            .ok_or_else(|| {
                ExtractError::new::<Self>("no such state was registered with KafkaApp::state")
            })
    }

    fn validate(info: &ListenerInfo) -> Result<(), String> {
        if info.state.contains::<T>() {
            Ok(())
        } else {
            Err(format!(
                "`State<{0}>` is used but no `{0}` was registered; call `.state(value)` on the KafkaApp builder",
                std::any::type_name::<T>()
            ))
        }
    }
}
batch_from_context!(State<T>, [T: Clone + Send + Sync + 'static]);
