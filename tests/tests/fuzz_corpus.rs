//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the checks the fuzz
//! targets run (`tests/fuzz-checks`), so an input a fuzz run found stays fixed. The fuzz runs
//! themselves are `scripts/fuzz.sh`, which CI does not run.
//!
//! The label values are also handed to parsers promtrack did not write: every value as a
//! series of one family, in one exposition per format, through `../shared/tools/exposition-check`
//! (promtool and prometheus_client's strict parsers) or, without it, `promtool check metrics`;
//! with neither, that test shows as ignored (under `CI=true` it fails): see `tests/build.rs`.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use promtrack_fuzz_checks::{label_values, macro_input, reader};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.expect("a directory entry").path();
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "{}: the corpus is missing",
        dir.display()
    );
    files
}

/// Runs `check` on every file of the corpus and fails naming every file that fails it.
fn replay(target: &str, check: fn(&[u8])) {
    let failed: Vec<String> = corpus(target)
        .into_iter()
        .filter_map(|(path, bytes)| {
            catch_unwind(AssertUnwindSafe(|| check(&bytes)))
                .err()
                .map(|_| path.display().to_string())
        })
        .collect();
    assert!(
        failed.is_empty(),
        "inputs failing the {target} check: {failed:#?}"
    );
}

#[test]
fn multiprocess_file_corpus() {
    replay("multiprocess_file", reader::check);
}

#[test]
fn macro_input_corpus() {
    macro_input::check_baseline();
    replay("macro_input", macro_input::check);
}

#[test]
fn label_value_corpus() {
    replay("label_value", label_values::check);
}

/// Every UTF-8 value of the corpus, as series of one family, through the independent parsers:
/// the checker beside the repository if `tests/build.rs` found it, else promtool (text only).
#[test]
#[cfg_attr(
    missing_exposition_parser,
    ignore = "needs promtool or ../shared/tools/exposition-check: apt-get install prometheus"
)]
fn label_value_corpus_through_independent_parsers() {
    let files = corpus("label_value");
    let values: Vec<&str> = files
        .iter()
        .filter_map(|(_, b)| std::str::from_utf8(b).ok())
        .collect();
    let checker = option_env!("PROMTRACK_TESTS_EXPOSITION_CHECK");
    let promtool = option_env!("PROMTRACK_TESTS_PROMTOOL");
    let Some(program) = checker.or(promtool) else {
        panic!(
            "needs promtool on PATH (or ../shared/tools/exposition-check): \
             apt-get install prometheus"
        )
    };
    for (format, name) in label_values::FORMATS {
        let text = label_values::render(&values, format);
        let args = if checker.is_some() {
            vec!["-", "--format", name, "--allow-lint"]
        } else if name == "openmetrics" {
            // promtool reads the text format only.
            continue;
        } else {
            vec!["check", "metrics"]
        };
        let mut child = Command::new(program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(text.as_bytes())
            .expect("the checker reads its input");
        let out = child.wait_with_output().expect("the checker runs");
        // promtool's exit status 3 reports lint findings only (an empty HELP is one: these
        // HELP texts are arbitrary), as the checker's --allow-lint does; a parse error is 1.
        let lint_only = out.status.code() == Some(3) && checker.is_none();
        assert!(
            out.status.success() || lint_only,
            "{program} rejects the {name} exposition of the label-value corpus ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
}
