//! Compile-time tests of `#[after_commit]` and `#[derive(OutboxEvent)]`:
//! each `ui/after_commit/fail` case must fail with exactly the errors in
//! the `.stderr` next to it. Regenerate the snapshots with
//! `TRYBUILD=overwrite` and read every changed one. The pass cases are test
//! binaries of kafka-listener (`ui_pass_after_commit_*`).

#[test]
fn ui_after_commit() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/after_commit/fail/*.rs");
}
