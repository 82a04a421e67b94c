//! The macros' compile errors: each case in `tests/ui/fail` must fail with exactly the reviewed
//! message in its `.stderr`. Regenerate with `TRYBUILD=overwrite` and read every diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
}
