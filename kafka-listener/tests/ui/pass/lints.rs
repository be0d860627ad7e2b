//! The expansion is warning-free under strict lints, in modules, with
//! visibility and other attributes on the function (`#[cfg]` included),
//! and with a raw identifier as the function name.
#![forbid(unsafe_code)]
#![deny(warnings, missing_docs, unreachable_pub, missing_debug_implementations)]

use kafka_listener::prelude::*;

/// Listeners in a module.
pub mod listeners {
    use super::*;

    /// Handles orders.
    #[kafka_listener(topics = ["orders"], concurrency = 2)]
    #[allow(clippy::unused_async)]
    pub(crate) async fn on_order(value: String) -> Result<(), ListenerError> {
        let _ = value;
        Ok(())
    }

    #[kafka_listener(topics = ["types"])]
    async fn r#type(_value: String) {}

    // Compiled out, and its registration with it.
    #[kafka_listener(topics = ["disabled"])]
    #[cfg(any())]
    async fn disabled(_value: String) {}
}

fn main() {
    let mut ids: Vec<_> = kafka_listener::__private::registered_listeners()
        .map(|s| s.id().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["on_order", "type"]);
}
