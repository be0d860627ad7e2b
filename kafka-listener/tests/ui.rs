//! Compile-time tests of `#[kafka_listener]`: each `ui/fail` case must fail
//! with exactly the errors in the `.stderr` next to it. Regenerate the
//! snapshots with `TRYBUILD=overwrite` and read every changed one.
//!
//! The pass cases (`ui/pass`) are test binaries of their own (`ui_pass_*`
//! in Cargo.toml): trybuild would build them in a target directory of its
//! own, every dependency included, where compile-fail cases only need a
//! check.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
}
