//! The macros' compile errors: each case in `tests/ui/fail` must fail with exactly the reviewed
//! message in its `.stderr`. Regenerate with `TRYBUILD=overwrite` and read every diff.
//!
//! The messages are one rustc's wording (`UI_SNAPSHOTS_RUSTC` in `tests/build.rs`): on another
//! rustc the test shows as ignored, naming the toolchain to run it on, unless `CI=true`.

include!(concat!(env!("OUT_DIR"), "/ui_gate.rs"));

ui_gate! {
    #[test]
    fn ui() {
        let t = trybuild::TestCases::new();
        t.compile_fail("ui/fail/*.rs");
    }
}
