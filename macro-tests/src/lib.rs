//! Compile-fail tests of kafka-listener's macros: `tests/ui.rs`
//! (`#[kafka_listener]`) and `tests/ui_after_commit.rs` (`#[after_commit]`,
//! `#[derive(OutboxEvent)]`). The pass cases are test binaries of
//! kafka-listener (`ui_pass_*`). This library is empty.
