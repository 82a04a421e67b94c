//! Decides, before the tests compile, which of them this machine can run, so that
//! `cargo test --workspace --all-features` passes with nothing but a Rust toolchain and shows
//! every test it cannot run as `ignored, <what it needs>: <how to get it>` in its own output
//! (an `eprintln!` from a test that returns early is captured by the harness and never seen).
//!
//! What it sets, each read by `#[cfg_attr(…, ignore = "…")]` on the tests concerned:
//! - `missing_pushgateway`: no `prometheus-pushgateway` (Debian's name) or `pushgateway`
//!   (upstream's) on `PATH`; push.rs needs one. Otherwise `PROMTRACK_TESTS_PUSHGATEWAY` holds
//!   its path.
//! - `missing_exposition_parser`: neither `../shared/tools/exposition-check` beside the
//!   repository (with `python3` to run it) nor `promtool` on `PATH`; fuzz_corpus.rs hands the
//!   corpus to one of them. Otherwise `PROMTRACK_TESTS_EXPOSITION_CHECK` or
//!   `PROMTRACK_TESTS_PROMTOOL` holds the path.
//! - `missing_protobuf_checker`: no `../shared/tools/exposition-check` beside the repository
//!   (with `python3`); protobuf_exposition.rs decodes the protobuf exposition with it (Python's
//!   `protobuf` package, which the checker installs on first use). promtool cannot stand in:
//!   it reads text only.
//! - `missing_cap_sys_admin`: this process may not mount a tmpfs (the full-disk test in
//!   multiprocess_full_disk.rs). A privilege, not a program: ignored under CI too.
//! - `$OUT_DIR/ui_gate.rs`: the UI suite's gate, a macro that adds `#[ignore = "…"]` when this
//!   rustc is not [`UI_SNAPSHOTS_RUSTC`] (the reason must name both versions, and an `ignore`
//!   reason has to be a literal, so it is written out here rather than set as a cfg).
//!
//! Under `CI` (set and not `false`/`0`), a missing program is demanded, not skipped: no
//! `missing_*` cfg is set for it, the test runs, and it fails naming the program and its
//! install command. The UI suite runs on any rustc there.
//!
//! Reruns: when `PATH`, `CI`, `TRYBUILD`, `USER` or `SUDO_USER` changes, or a directory on
//! `PATH` changes (a package that installs a binary changes its directory's mtime), so a program
//! installed later is found without `cargo clean`, and an ordinary `cargo test` does not rebuild
//! this package.
//! A checker appearing in `../shared` later is not watched (its parent directory holds whole
//! checkouts, whose every build would look like a change): `touch tests/build.rs` picks it up.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The rustc release whose wording the UI snapshots (`ui/fail/*.stderr`) hold, and the only
/// place that records it. A new release may reword a message: the UI suite then shows as
/// ignored, naming this version, instead of failing every contributor's `cargo test`. To move
/// the snapshots to a new rustc, run on it
/// `TRYBUILD=overwrite cargo test -p promtrack-tests --test macros_ui`, read every changed
/// `.stderr`, and set this to its `rustc --version`.
const UI_SNAPSHOTS_RUSTC: &str = "1.95.0";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    // USER and SUDO_USER: the privilege to mount is read here too, and `sudo`/`su` change them.
    for var in ["PATH", "CI", "TRYBUILD", "USER", "SUDO_USER"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    for cfg in [
        "missing_pushgateway",
        "missing_exposition_parser",
        "missing_protobuf_checker",
        "missing_cap_sys_admin",
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    let ci = ci();
    watch_path_directories();

    let gateway = on_path("prometheus-pushgateway").or_else(|| on_path("pushgateway"));
    match &gateway {
        Some(binary) => set_env("PROMTRACK_TESTS_PUSHGATEWAY", binary),
        None if ci => demanded(
            "prometheus-pushgateway",
            "apt-get install prometheus-pushgateway",
        ),
        None => println!("cargo::rustc-cfg=missing_pushgateway"),
    }

    let checker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/exposition-check");
    let checker = (checker.is_file() && on_path("python3").is_some()).then(|| {
        println!("cargo::rerun-if-changed={}", checker.display());
        checker.canonicalize().unwrap_or(checker)
    });
    let promtool = on_path("promtool");
    if let Some(checker) = &checker {
        set_env("PROMTRACK_TESTS_EXPOSITION_CHECK", checker);
    }
    if let Some(promtool) = &promtool {
        set_env("PROMTRACK_TESTS_PROMTOOL", promtool);
    }
    if checker.is_none() && promtool.is_none() {
        if ci {
            demanded("promtool", "apt-get install prometheus");
        } else {
            println!("cargo::rustc-cfg=missing_exposition_parser");
        }
    }

    if checker.is_none() {
        if ci {
            demanded(
                "../shared/tools/exposition-check",
                "the workspace's shared/tools beside the repository, and apt-get install python3",
            );
        } else {
            println!("cargo::rustc-cfg=missing_protobuf_checker");
        }
    }

    if !may_mount() {
        println!("cargo::rustc-cfg=missing_cap_sys_admin");
    }

    write_ui_gate(ci);
}

/// `CI` as CI services set it (`true`); an empty, `0` or `false` value is a local run.
fn ci() -> bool {
    env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// Says, in the build's output, that a test will fail for want of `program` (CI only).
fn demanded(program: &str, install: &str) {
    println!(
        "cargo::warning=CI is set and {program} is not on PATH: the tests that need it will fail \
         ({install})"
    );
}

fn set_env(name: &str, program: &Path) {
    match program.to_str() {
        Some(path) => println!("cargo::rustc-env={name}={path}"),
        None => println!(
            "cargo::warning={name}: {} is not valid UTF-8; its tests cannot name it",
            program.display()
        ),
    }
}

fn path_directories() -> Vec<PathBuf> {
    env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).collect())
        .unwrap_or_default()
}

fn on_path(program: &str) -> Option<PathBuf> {
    path_directories()
        .into_iter()
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Asks to be rerun when a program appears on (or leaves) `PATH`. Cargo watches a directory by
/// the newest mtime beneath it, so only absolute directories without subdirectories are
/// watched: a project directory on `PATH` would otherwise rebuild this package after every
/// build of its own.
fn watch_path_directories() {
    let mut seen = Vec::new();
    for dir in path_directories() {
        if !dir.is_absolute() || seen.contains(&dir) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let flat = entries
            .flatten()
            .all(|e| e.file_type().is_ok_and(|t| !t.is_dir()));
        if flat {
            if let Some(dir) = dir.to_str() {
                println!("cargo::rerun-if-changed={dir}");
            }
        }
        seen.push(dir);
    }
}

/// Whether mounting a tmpfs may work: `CAP_SYS_ADMIN` (bit 21) in the effective set, and
/// `mount` on `PATH`. Root in a default Docker container lacks the capability.
fn may_mount() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    effective & (1 << CAP_SYS_ADMIN) != 0 && on_path("mount").is_some()
}

/// This rustc's release (`1.95.0`, `1.97.0-nightly`), or `None` if it cannot be asked.
fn rustc_release() -> Option<String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output().ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("release: "))
        .map(|r| r.trim().to_owned())
}

/// Writes `ui_gate!`, which wraps the UI test: unchanged on the snapshots' rustc, under `CI`,
/// or while regenerating (`TRYBUILD=overwrite`, which an ignored test would silently skip);
/// ignored with a reason naming the toolchain to use otherwise.
fn write_ui_gate(ci: bool) {
    let release = rustc_release();
    let this = release.as_deref().unwrap_or("unknown");
    let overwrite = env::var_os("TRYBUILD").is_some_and(|v| v == "overwrite");
    let attribute = if release.as_deref() == Some(UI_SNAPSHOTS_RUSTC) || ci {
        String::new()
    } else if overwrite {
        println!(
            "cargo::warning=regenerating the UI snapshots on rustc {this}: once reviewed, set \
             UI_SNAPSHOTS_RUSTC in tests/build.rs to \"{this}\""
        );
        String::new()
    } else {
        format!(
            "#[ignore = \"the UI snapshots hold rustc {UI_SNAPSHOTS_RUSTC}'s messages, this is \
             rustc {this}: run `cargo +{UI_SNAPSHOTS_RUSTC} test -p promtrack-tests --test \
             macros_ui`, or set CI=true to compare on this rustc\"]"
        )
    };
    let gate = format!(
        "/// Generated by tests/build.rs: the UI test, ignored when this rustc is not the \
         snapshots' one.\nmacro_rules! ui_gate {{\n    ($test:item) => {{\n        \
         {attribute}\n        $test\n    }};\n}}\n"
    );
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("ui_gate.rs"), gate).expect("OUT_DIR is writable");
}
