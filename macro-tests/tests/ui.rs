//! Compile-time tests of `#[kafka_listener]`: each `ui/fail` case must fail
//! with exactly the errors in the `.stderr` next to it. Regenerate the
//! snapshots with `TRYBUILD=overwrite` and read every changed one.
//!
//! The pass cases are test binaries of kafka-listener (`ui_pass_*`, in
//! `kafka-listener/tests/ui/pass`): trybuild would build them, every
//! dependency included, where the compile-fail cases only need a check.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
}
