//! Helpers shared by the tests that validate an exposition with parsers promtrack did not
//! write: `../shared/tools/exposition-check` (found by `tests/build.rs`, which marks the tests
//! needing it ignored when it is missing) and Python scripts reading an exposition through it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The checker's path, as `tests/build.rs` found it.
pub fn checker() -> &'static str {
    option_env!("PROMTRACK_TESTS_EXPOSITION_CHECK").unwrap_or_else(|| {
        panic!(
            "needs ../shared/tools/exposition-check beside the repository and python3 \
             (apt-get install python3): it decodes protobuf with Python's protobuf package"
        )
    })
}

/// Writes `bytes` to `name` in this test process's own temporary directory.
pub fn write(bytes: &[u8], name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("promtrack-checked-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Asserts the checker accepts the exposition at `path` in `format`; `args` are more of its
/// options (`--expect NAME{LABELS}=VALUE`).
pub fn check(path: &Path, format: &str, args: &[&str]) {
    let out = Command::new(checker())
        .arg(path)
        .args(["--format", format])
        .args(args)
        .output()
        .expect("the checker runs");
    assert!(
        out.status.success(),
        "exposition-check rejects the {format} exposition:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()),
    );
}

/// Runs a Python script with the checker's path and `path` as `sys.argv[1]` and `sys.argv[2]`;
/// returns what it printed, asserting it succeeded.
pub fn python(script: &str, path: &Path) -> String {
    let out = Command::new("python3")
        .args(["-c", script, checker(), path.to_str().unwrap()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Loads the checker as a module and decodes the protobuf exposition at `sys.argv[2]` into
/// `families` with Python's `protobuf` package (exiting on a decode error); `json` and `sys`
/// are imported.
const PB_DECODE: &str = r#"
import importlib.machinery, importlib.util, json, sys
loader = importlib.machinery.SourceFileLoader("exposition_check", sys.argv[1])
module = importlib.util.module_from_spec(importlib.util.spec_from_loader("exposition_check", loader))
loader.exec_module(module)
module.ensure_tools(("protobuf",))
families, errors = module.pb_decode(open(sys.argv[2], "rb").read())
if errors:
    sys.exit("decode errors: %r" % errors)
"#;

/// [`python`] with `body` run over `families`, the protobuf exposition at `path` decoded.
pub fn python_pb(body: &str, path: &Path) -> String {
    python(&format!("{PB_DECODE}{body}"), path)
}

/// Prints `family | series labels | where | exemplar labels | value | seconds`, `where` being
/// `native` for the native `exemplars` field or a classic bucket's bound; `schema` lines show
/// the message is native.
pub const PB_NATIVE_EXEMPLARS: &str = r#"
for f in families:
    for m in f.metric:
        h = m.histogram
        series = json.dumps({l.name: l.value for l in m.label}, sort_keys=True)
        print(f.name, "|", series, "| schema", h.schema if h.HasField("schema") else None)
        where = [("native", e) for e in h.exemplars]
        where += [(b.upper_bound, b.exemplar) for b in h.bucket if b.HasField("exemplar")]
        for w, e in where:
            labels = json.dumps({l.name: l.value for l in e.label}, sort_keys=True)
            ts = e.timestamp.seconds + e.timestamp.nanos / 1e9 if e.HasField("timestamp") else None
            print(f.name, "|", series, "|", w, "|", labels, "|", e.value, "|", ts)
"#;
