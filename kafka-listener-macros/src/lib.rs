//! Procedural macros for kafka-listener (placeholder until the real expansion lands).
use proc_macro::TokenStream;

/// Declares a Kafka listener.
#[proc_macro_attribute]
pub fn kafka_listener(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
