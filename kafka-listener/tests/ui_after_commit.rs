//! Compile-time tests of `#[after_commit]` and `#[derive(OutboxEvent)]`:
//! `ui/after_commit/pass` must compile and run, `ui/after_commit/fail` must
//! fail with exactly the errors in the `.stderr` next to each case.
//! Regenerate the snapshots with `TRYBUILD=overwrite` and read every changed
//! one.

#![cfg(all(feature = "macros", feature = "after-commit"))]

#[test]
fn ui_after_commit() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/after_commit/pass/*.rs");
    t.compile_fail("tests/ui/after_commit/fail/*.rs");
}
