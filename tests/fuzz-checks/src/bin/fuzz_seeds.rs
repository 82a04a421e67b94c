//! Writes the fixture of the reader check and the seed corpora of the fuzz targets, from the
//! real writer and from the repository's own examples of macro input and hostile labels.
//!
//! `cargo run -p promtrack-fuzz-checks --bin fuzz_seeds` (from anywhere in the repository).
//! It writes `tests/fuzz-checks/fixtures/worker.db` and `fuzz/corpus/<target>/seed-*`; the
//! corpora's other files are what fuzz runs found, and are left alone.

use std::path::{Path, PathBuf};

use promtrack::{Counter, Family, Gauge, GaugeMode, Histogram, Info, Summary};

const H_USED: usize = 16;
const H_ID: usize = 24;
const H_PID: usize = 32;
const H_FLAGS: usize = 36;
const H_START_TICKS: usize = 40;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let worker = write_worker();
    write(&root.join("tests/fuzz-checks/fixtures/worker.db"), &worker);
    let corpus = root.join("fuzz/corpus");
    reader_seeds(&corpus.join("multiprocess_file"), &worker);
    macro_seeds(&root, &corpus.join("macro_input"));
    label_seeds(&corpus.join("label_value"));
}

/// A worker file from the real writer: this process switches multiprocess mode on in a scratch
/// directory and records a known set of series.
fn write_worker() -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("promtrack-fuzz-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    promtrack::multiprocess::dir(&dir).expect("a fresh scratch directory");

    let requests = Family::<[&str; 2], Counter>::new("fuzz_worker_requests_total", "Requests.")
        .label_names(["route", "method"]);
    requests.with(&["/users/{id}", "GET"]).inc_by(3.0);
    requests
        .with(&["/ünïcödé \"q\" \\ \n", "POST"])
        .inc_by(0.25);
    let latency = Family::<[&str; 1], Histogram>::new("fuzz_worker_latency_seconds", "Latency.")
        .label_names(["route"])
        .buckets(&[0.01, 0.1, 1.0]);
    for v in [0.005, 0.05, 0.5, 5.0] {
        latency.with(&["/users/{id}"]).observe(v);
    }
    let render = Family::<(), Summary>::new("fuzz_worker_render_seconds", "Render time.");
    render.with(&()).observe(0.125);
    let build =
        Family::<[&str; 1], Info>::new("fuzz_worker_build_info", "Build.").label_names(["version"]);
    build.with(&["1.2.3"]);
    let mut gauges = Vec::new();
    for (i, mode) in GaugeMode::ALL.into_iter().enumerate() {
        let g =
            Family::<(), Gauge>::new(format!("fuzz_worker_gauge_{}", mode.as_str()), "A gauge.")
                .mode(mode);
        g.with(&()).set(i as f64 + 0.5);
        gauges.push(g);
    }
    // Families are created lazily: registering is not needed for their series to be in the file.
    let path = promtrack::__private::multiprocess_own_file().expect("this process has a file");
    let mut bytes = std::fs::read(&path).expect("the worker file");
    let used = u64::from_ne_bytes(bytes[H_USED..H_USED + 8].try_into().unwrap()) as usize;
    bytes.truncate(used);
    // No start time: a reader then never looks this pid up in /proc (it would be another
    // process's), whatever machine the check runs on.
    bytes[H_START_TICKS..H_START_TICKS + 8].fill(0);
    bytes[H_PID..H_PID + 4].copy_from_slice(&1000u32.to_ne_bytes());
    bytes[H_ID..H_ID + 8].copy_from_slice(&0x0123_4567_89ab_cdefu64.to_ne_bytes());
    bytes
}

fn reader_seeds(dir: &Path, worker: &[u8]) {
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    // Another worker of the same program: same records, its own pid and id.
    let mut other = worker.to_vec();
    other[H_PID..H_PID + 4].copy_from_slice(&2000u32.to_ne_bytes());
    other[H_ID..H_ID + 8].copy_from_slice(&0x0fed_cba9_8765_4321u64.to_ne_bytes());
    seeds.push(("valid".into(), other.clone()));
    let mut header_only = other[..64].to_vec();
    header_only[H_USED..H_USED + 8].copy_from_slice(&64u64.to_ne_bytes());
    seeds.push(("header-only".into(), header_only));
    let mut archive = other.clone();
    archive[H_FLAGS..H_FLAGS + 4].copy_from_slice(&1u32.to_ne_bytes());
    seeds.push(("archive-flag".into(), archive));
    for cut in [0, 8, 63, 72, other.len() / 2, other.len() - 8] {
        seeds.push((format!("truncated-{cut}"), other[..cut].to_vec()));
    }
    // One flipped bit in each header field and in the first records' lengths, tags and counts.
    for (what, at) in [
        ("magic", 0),
        ("version", 8),
        ("header-len", 12),
        ("used", 16),
        ("flags", 36),
        ("record-len", 64),
        ("record-tag", 68),
        ("family-kind", 72),
        ("family-mode", 73),
        ("family-labels", 74),
        ("family-bounds", 76),
        ("name-len", 80),
    ] {
        for bit in [0, 7] {
            let mut b = other.clone();
            b[at] ^= 1 << bit;
            seeds.push((format!("flip-{what}-{bit}"), b));
        }
    }
    let mut huge = other.clone();
    huge[64..68].copy_from_slice(&u32::MAX.to_ne_bytes());
    seeds.push(("record-len-4g".into(), huge));
    let mut huge = other.clone();
    huge[H_USED..H_USED + 8].copy_from_slice(&u64::MAX.to_ne_bytes());
    seeds.push(("used-max".into(), huge));
    // A dead copy of the live worker's file under another name: it must not hide the worker
    // (the regression the first fuzz runs found, see compact.rs `skip_dead_twins`).
    let mut twin = worker.to_vec();
    twin[H_PID..H_PID + 4].copy_from_slice(&3000u32.to_ne_bytes());
    seeds.push(("twin-of-live-id".into(), twin));
    let mut v2 = other;
    v2[8..12].copy_from_slice(&2u32.to_ne_bytes());
    seeds.push(("version-2".into(), v2));
    write_seeds(dir, seeds);
}

/// Every attribute argument list and item of the UI suite and the forms, one per seed: the
/// valid ones (`tests/forms`, `tests/ui/pass`) and the rejected ones (`tests/ui/fail`).
fn macro_seeds(root: &Path, dir: &Path) {
    let mut seeds = Vec::new();
    let mut files = Vec::new();
    for sub in ["tests/ui", "tests/forms"] {
        collect_rs(&root.join(sub), &mut files);
    }
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a test source");
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        for (i, piece) in macro_pieces(&text).into_iter().enumerate() {
            seeds.push((format!("{stem}-{i}"), piece.into_bytes()));
        }
    }
    write_seeds(dir, seeds);
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The argument lists of promtrack attributes (`#[metrics::counter(...)]`, `#[counter(...)]`)
/// and `#[derive]`d items, cut out of a test source by bracket matching.
fn macro_pieces(text: &str) -> Vec<String> {
    let names = [
        "counter(",
        "histogram(",
        "summary(",
        "gauge(",
        "do_not_track(",
        "exclude_all_metrics(",
        "family!",
    ];
    let mut out = Vec::new();
    for name in names {
        let mut from = 0;
        while let Some(i) = text[from..].find(name) {
            let start = from + i + name.len();
            from = start;
            let open = if name.ends_with('!') {
                match text[start..].find(['{', '(']) {
                    Some(j) => start + j + 1,
                    None => continue,
                }
            } else {
                start
            };
            let Some(end) = matching(text, open) else {
                continue;
            };
            out.push(text[open..end].to_owned());
            // The item an attribute is on: from after its `)]` to the end of the item.
            if !name.ends_with('!') && text[end..].starts_with(")]") {
                let item = end + 2;
                if let Some(body) = text[item..].find(['{', ';']).map(|j| item + j) {
                    let item_end = if text[body..].starts_with('{') {
                        matching(text, body + 1).map(|e| e + 1)
                    } else {
                        Some(body + 1)
                    };
                    if let Some(item_end) = item_end {
                        out.push(text[item..item_end].trim().to_owned());
                    }
                }
            }
        }
    }
    // Items deriving LabelSet or LabelValue: from the derive to the end of the item.
    let mut from = 0;
    while let Some(i) = text[from..].find("#[derive(") {
        let start = from + i;
        from = start + 1;
        let Some(body) = text[start..].find(['{', ';']).map(|j| start + j) else {
            continue;
        };
        let end = if text[body..].starts_with('{') {
            matching(text, body + 1).map(|e| e + 1)
        } else {
            Some(body + 1)
        };
        if let Some(end) = end {
            out.push(text[start..end].to_owned());
        }
    }
    out
}

/// The index of the bracket closing the one just before `open` (`(`, `[` or `{`).
fn matching(text: &str, open: usize) -> Option<usize> {
    let mut depth = 1usize;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The values of `examples/src/bin/hostile_labels.rs` and then some.
fn label_seeds(dir: &Path) {
    let values: &[&str] = &[
        "plain",
        "",
        "quote \" inside",
        "back\\slash",
        "line\nfeed",
        "emoji 😀 and ünïcödé",
        "trailing backslash \\",
        "{braces},commas=\"equals\"",
        "x\\\"\n",
        "\\n",
        "\\\\\"\"\n\n",
        "carriage\rreturn",
        "tab\there",
        "nul\0byte",
        "# HELP x y",
        "} 1\nfake_total 2",
        "\u{2028}\u{2029}\u{85}\u{feff}",
        "+Inf",
        " leading and trailing spaces ",
    ];
    let seeds = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("{i:02}"), v.as_bytes().to_vec()))
        .collect();
    write_seeds(dir, seeds);
}

/// Replaces the `seed-*` files of `dir` with these.
fn write_seeds(dir: &Path, seeds: Vec<(String, Vec<u8>)>) {
    std::fs::create_dir_all(dir).expect("the corpus directory");
    for e in std::fs::read_dir(dir)
        .expect("the corpus directory")
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with("seed-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let n = seeds.len();
    for (name, bytes) in seeds {
        write(&dir.join(format!("seed-{name}")), &bytes);
    }
    println!("{n} seeds in {}", dir.display());
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
