//! Compile-time tests of `#[kafka_listener]`: `ui/pass` must compile (and
//! run), `ui/fail` must fail with exactly the errors in the `.stderr` next
//! to each case. Regenerate the snapshots with `TRYBUILD=overwrite` and read
//! every changed one.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
