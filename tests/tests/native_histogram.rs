//! Native histograms through the public API: the builders, every exposition format (the text
//! formats' fallback and the protobuf native fields read by parsers promtrack did not write),
//! and exact totals under threads.

use std::path::PathBuf;
use std::process::Command;

use promtrack::expose::{Format, encode};
use promtrack::{Family, Histogram, NativeConfig, Registry};

fn registry() -> (
    Registry,
    Family<[&'static str; 1], Histogram>,
    Family<(), Histogram>,
) {
    let r = Registry::new();
    let native = Family::<[&str; 1], Histogram>::new("nh_latency_seconds", "Native only.")
        .label_names(["route"])
        .native(NativeConfig::default());
    let both = Family::<(), Histogram>::new("nh_both_seconds", "Classic and native.")
        .buckets(&[0.1, 1.0])
        .native(NativeConfig::default().bucket_factor(2.0).classic(true));
    r.register(&native).unwrap();
    r.register(&both).unwrap();
    for v in [0.004, 0.02, 0.02, 0.3, 2.5, 0.0] {
        native.with(&["/a"]).observe(v);
        both.observe(v);
    }
    (r, native, both)
}

fn exposition(r: &Registry, format: Format, name: &str) -> (PathBuf, Vec<u8>) {
    let mut out = Vec::new();
    encode(r, format, &mut out);
    let dir = std::env::temp_dir().join(format!("promtrack-native-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &out).unwrap();
    (path, out)
}

#[test]
fn text_formats_write_a_native_only_histogram_as_one_inf_bucket() {
    let (r, native, both) = registry();
    assert_eq!(native.with(&["/a"]).count(), 6);
    assert_eq!(both.count(), 6);
    assert!((native.with(&["/a"]).sum() - 2.844).abs() < 1e-12);
    let (_, text) = exposition(&r, Format::Text, "native.txt");
    let text = String::from_utf8(text).unwrap();
    let want = "\
# HELP nh_latency_seconds Native only.
# TYPE nh_latency_seconds histogram
nh_latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 6
nh_latency_seconds_sum{route=\"/a\"} 2.844
nh_latency_seconds_count{route=\"/a\"} 6
";
    assert!(text.contains(want), "{text}");
    // Classic and native: text shows the classic buckets.
    assert!(
        text.contains("nh_both_seconds_bucket{le=\"0.1\"} 4\nnh_both_seconds_bucket{le=\"1\"} 5\n"),
        "{text}"
    );
    let (_, om) = exposition(&r, Format::OpenMetrics, "native.om");
    let om = String::from_utf8(om).unwrap();
    assert!(
        om.contains("nh_latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 6\n"),
        "{om}"
    );
}

fn checker() -> Option<String> {
    std::env::var("PROMTRACK_TESTS_EXPOSITION_CHECK")
        .ok()
        .or(option_env!("PROMTRACK_TESTS_EXPOSITION_CHECK").map(str::to_owned))
}

#[test]
#[cfg_attr(
    missing_protobuf_checker,
    ignore = "needs ../shared/tools/exposition-check and python3: apt-get install python3"
)]
fn strict_parsers_accept_every_format() {
    let checker = checker().expect("PROMTRACK_TESTS_EXPOSITION_CHECK");
    let (r, _, _) = registry();
    for (format, arg, name) in [
        (Format::Text, "text", "native.txt"),
        (Format::OpenMetrics, "openmetrics", "native.om"),
        (Format::Protobuf, "protobuf", "native.pb"),
    ] {
        let (path, _) = exposition(&r, format, name);
        let out = Command::new(&checker)
            .arg(&path)
            .args(["--format", arg])
            .args(["--expect", "nh_latency_seconds_count{route=\"/a\"}=6"])
            .args(["--expect", "nh_both_seconds_count=6"])
            .output()
            .expect("the checker runs");
        assert!(
            out.status.success(),
            "{arg}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Threads observing across reductions lose nothing, through the public API.
#[test]
fn concurrent_observations_are_all_counted() {
    let h = Family::<(), Histogram>::new("nh_threads", "T.")
        .native(NativeConfig::default().max_buckets(10));
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let h = &h;
            s.spawn(move || {
                for i in 0..25_000u32 {
                    h.observe(f64::from(i % 1000 + t) * 0.001 + 1e-6);
                }
            });
        }
    });
    assert_eq!(h.count(), 100_000);
}

#[test]
fn bad_settings_are_refused_at_registration() {
    let r = Registry::new();
    let bad = Family::<(), Histogram>::new("nh_bad", "B.")
        .native(NativeConfig::default().bucket_factor(0.5));
    let err = r.register(&bad).unwrap_err().to_string();
    assert!(err.contains("bucket_factor"), "{err}");
}

#[promtrack::histogram("nh_attr_seconds", "Native from the attribute.", native)]
fn native_only() {}

#[promtrack::histogram(
    "nh_attr_both_seconds",
    "Classic and native from the attribute.",
    buckets = [0.5],
    native(bucket_factor = 2.0, max_buckets = 20, zero_threshold = 0.0, max_zero_threshold = 1e-3, min_reset = "1h30m")
)]
fn classic_and_native() {}

/// The attribute's `native`: a native-only histogram shows one `+Inf` bucket in text; with
/// `buckets` too, the classic buckets.
#[test]
fn the_attribute_declares_native_histograms() {
    native_only();
    native_only();
    classic_and_native();
    let text = promtrack::expose::encode_to_string(promtrack::default_registry(), Format::Text);
    assert!(
        text.contains("nh_attr_seconds_bucket{le=\"+Inf\"} 2\n"),
        "{text}"
    );
    assert!(
        !text.contains("nh_attr_seconds_bucket{le=\"0.005\"}"),
        "{text}"
    );
    assert!(text.contains("nh_attr_seconds_count 2\n"), "{text}");
    assert!(
        text.contains("nh_attr_both_seconds_bucket{le=\"0.5\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("nh_attr_both_seconds_count 1\n"), "{text}");
}
