//! Exemplars set by hand, read back by parsers promtrack did not write: the OpenMetrics text by
//! client_python's strict parser (through `../shared/tools/exposition-check` and directly, to
//! read each exemplar's labels, value and timestamp), the protobuf exposition by Python's
//! `protobuf` package against metrics.proto (a native histogram's exemplars in its native
//! `exemplars` field, field 16, as well as on its classic buckets). Text 0.0.4 carries none. A refused label set is
//! counted in `promtrack_invalid_updates_total`. Without the checker the tests show as ignored
//! (under `CI=true` they fail): see `tests/build.rs`.

use std::path::PathBuf;
use std::sync::OnceLock;

use promtrack::expose::{Format, encode};
use promtrack::model::{Exemplar, MetricFamily, MetricKind, Series, Value};
use promtrack::{
    Collector, Counter, ExemplarError, Family, Histogram, NativeConfig, Registry, TraceContext,
};

#[path = "checker_support/mod.rs"]
mod checker_support;
use checker_support::{PB_NATIVE_EXEMPLARS, check, python, python_pb};

const T1: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const S1: &str = "00f067aa0ba902b7";
const T2: &str = "0af7651916cd43dd8448eb211c80319c";

/// A collector's owned series with an exemplar (the multiprocess aggregate's path).
struct Owned;
impl Collector for Owned {
    fn collect(&self, out: &mut Vec<MetricFamily>) {
        let ex = Exemplar {
            labels: vec![("trace_id".into(), "ab".repeat(16))],
            value: 2.0,
            timestamp: Some(1_733_150_000.5),
        };
        out.push(
            MetricFamily::new("ex_collected_total", "Collected.", MetricKind::Counter)
                .with_series(Series::new(Value::Counter(7.0)).exemplar(0, ex)),
        );
    }
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let r = Registry::new();
        let orders =
            Family::<[&str; 1], Counter>::new("ex_orders_total", "Orders.").label_names(["shop"]);
        let lat =
            Family::<[&str; 1], Histogram>::new("ex_latency_seconds", "L.").label_names(["route"]);
        let lat = lat.buckets(&[0.1, 1.0]);
        let plain = Family::<(), Counter>::new("ex_plain_total", "No exemplar.");
        r.register(&orders).unwrap();
        r.register(&lat).unwrap();
        r.register(&plain).unwrap();
        r.register_collector(Owned);
        orders
            .with(&["web"])
            .inc_with_exemplar(&[("trace_id", T1), ("span_id", S1)])
            .unwrap();
        let h = lat.with(&["/a"]);
        // Each goes to an empty bucket, which always takes its first exemplar.
        h.observe_with_exemplar(0.042, &[("trace_id", T2)]).unwrap();
        h.observe_with_exemplar(0.5, &[("user", "ann \"the\" admin")])
            .unwrap();
        let ctx = TraceContext::new([0x11; 16], Some([0x22; 8])).unwrap();
        h.observe_with_trace(7.0, ctx);
        plain.inc();
        r
    })
}

/// The shared registry's exposition in `format`, written to `name`.
fn exposition(format: Format, name: &str) -> PathBuf {
    let mut body = Vec::new();
    encode(registry(), format, &mut body);
    checker_support::write(&body, name)
}

/// Prints `sample labels | exemplar labels | value | has timestamp` per exemplar, as
/// client_python's strict OpenMetrics parser reads them.
const OM_DUMP: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for f in text_string_to_metric_families(open(sys.argv[2]).read()):
    for s in f.samples:
        if s.exemplar is not None:
            e = s.exemplar
            print(s.name, json.dumps(s.labels, sort_keys=True), "|",
                  json.dumps(e.labels, sort_keys=True), "|", e.value, "|", e.timestamp is not None)
"#;

#[test]
#[cfg_attr(
    missing_protobuf_checker,
    ignore = "needs ../shared/tools/exposition-check and python3: apt-get install python3"
)]
fn openmetrics_exemplars_read_by_client_python() {
    let path = exposition(Format::OpenMetrics, "exemplars.om");
    check(&path, "openmetrics", &[]);
    let dump = python(OM_DUMP, &path);
    let want = [
        format!(
            "ex_orders_total {{\"shop\": \"web\"}} | {{\"span_id\": \"{S1}\", \"trace_id\": \"{T1}\"}} | 1 | True"
        ),
        format!(
            "ex_latency_seconds_bucket {{\"le\": \"0.1\", \"route\": \"/a\"}} | {{\"trace_id\": \"{T2}\"}} | 0.042 | True"
        ),
        "ex_latency_seconds_bucket {\"le\": \"1\", \"route\": \"/a\"} | {\"user\": \"ann \\\"the\\\" admin\"} | 0.5 | True".to_string(),
        format!(
            "ex_latency_seconds_bucket {{\"le\": \"+Inf\", \"route\": \"/a\"}} | {{\"span_id\": \"{}\", \"trace_id\": \"{}\"}} | 7 | True",
            "22".repeat(8),
            "11".repeat(16)
        ),
        format!(
            "ex_collected_total {{}} | {{\"trace_id\": \"{}\"}} | 2 | True",
            "ab".repeat(16)
        ),
    ];
    for w in &want {
        assert!(dump.lines().any(|l| l == w), "missing {w}\nin:\n{dump}");
    }
    assert_eq!(dump.lines().count(), want.len(), "{dump}");
}

#[test]
fn text_0_0_4_writes_no_exemplar() {
    let mut body = Vec::new();
    encode(registry(), Format::Text, &mut body);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("ex_orders_total{shop=\"web\"} 1\n"), "{text}");
    assert!(!text.contains(" # {"), "{text}");
}

/// Prints `family | bucket bound or - | exemplar labels | value | seconds`.
const PB_DUMP: &str = r#"
def show(name, where, e):
    labels = json.dumps({l.name: l.value for l in e.label}, sort_keys=True)
    print(name, "|", where, "|", labels, "|", e.value, "|", e.timestamp.seconds > 1_700_000_000)
for f in families:
    for m in f.metric:
        if m.HasField("counter") and m.counter.HasField("exemplar"):
            show(f.name, "-", m.counter.exemplar)
        if m.HasField("histogram"):
            for b in m.histogram.bucket:
                if b.HasField("exemplar"):
                    show(f.name, b.upper_bound, b.exemplar)
"#;

#[test]
#[cfg_attr(
    missing_protobuf_checker,
    ignore = "needs ../shared/tools/exposition-check and python3: apt-get install python3"
)]
fn protobuf_exemplars_decode_independently() {
    let path = exposition(Format::Protobuf, "exemplars.pb");
    check(&path, "protobuf", &[]);
    let dump = python_pb(PB_DUMP, &path);
    let want = [
        format!(
            "ex_orders_total | - | {{\"span_id\": \"{S1}\", \"trace_id\": \"{T1}\"}} | 1.0 | True"
        ),
        format!("ex_latency_seconds | 0.1 | {{\"trace_id\": \"{T2}\"}} | 0.042 | True"),
        "ex_latency_seconds | 1.0 | {\"user\": \"ann \\\"the\\\" admin\"} | 0.5 | True".to_string(),
        format!(
            "ex_latency_seconds | inf | {{\"span_id\": \"{}\", \"trace_id\": \"{}\"}} | 7.0 | True",
            "22".repeat(8),
            "11".repeat(16)
        ),
        format!(
            "ex_collected_total | - | {{\"trace_id\": \"{}\"}} | 2.0 | True",
            "ab".repeat(16)
        ),
    ];
    for w in &want {
        assert!(dump.lines().any(|l| l == w), "missing {w}\nin:\n{dump}");
    }
    assert_eq!(dump.lines().count(), want.len(), "{dump}");
}

/// A native histogram's exemplars in the protobuf native field, read by Python's decoder: the
/// one a native-only histogram keeps (also on its explicit `+Inf` bucket), and one per classic
/// bucket of a classic-and-native one (also on those buckets), each with its trace id, value
/// and timestamp.
#[test]
#[cfg_attr(
    missing_protobuf_checker,
    ignore = "needs ../shared/tools/exposition-check and python3: apt-get install python3"
)]
fn native_histogram_exemplars_decode_from_the_native_field() {
    let r = Registry::new();
    let native = Family::<[&str; 1], Histogram>::new("ex_native_seconds", "Native only.")
        .label_names(["route"])
        .native(NativeConfig::default());
    let both = Family::<(), Histogram>::new("ex_both_seconds", "Classic and native.")
        .buckets(&[0.1, 1.0])
        .native(NativeConfig::default().classic(true));
    r.register(&native).unwrap();
    r.register(&both).unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    native
        .with(&["/a"])
        .observe_with_exemplar(0.25, &[("trace_id", T1)])
        .unwrap();
    native.with(&["/a"]).observe(3.0);
    // Each goes to an empty bucket, which always takes its first exemplar.
    both.observe_with_exemplar(0.042, &[("trace_id", T2)])
        .unwrap();
    both.observe_with_exemplar(7.0, &[("trace_id", T1), ("span_id", S1)])
        .unwrap();

    let mut body = Vec::new();
    encode(&r, Format::Protobuf, &mut body);
    let path = checker_support::write(&body, "native-exemplars.pb");
    check(&path, "protobuf", &[]);
    let dump = python_pb(PB_NATIVE_EXEMPLARS, &path);

    // Timestamps: when observed, to the nanosecond; shown as `-` once checked.
    let mut lines = Vec::new();
    for line in dump.lines() {
        let mut fields: Vec<&str> = line.split(" | ").collect();
        if fields.len() == 6 {
            let ts: f64 = fields[5].parse().unwrap_or_else(|_| panic!("{line}"));
            assert!(
                ts >= before - 1.0 && ts <= before + 600.0,
                "{line}: not the observation's time (~{before})"
            );
            fields[5] = "-";
        }
        lines.push(fields.join(" | "));
    }
    // Families in name order.
    let want = [
        "ex_both_seconds | {} | schema 3".to_string(),
        format!("ex_both_seconds | {{}} | native | {{\"trace_id\": \"{T2}\"}} | 0.042 | -"),
        format!(
            "ex_both_seconds | {{}} | native | {{\"span_id\": \"{S1}\", \"trace_id\": \"{T1}\"}} | 7.0 | -"
        ),
        format!("ex_both_seconds | {{}} | 0.1 | {{\"trace_id\": \"{T2}\"}} | 0.042 | -"),
        format!(
            "ex_both_seconds | {{}} | inf | {{\"span_id\": \"{S1}\", \"trace_id\": \"{T1}\"}} | 7.0 | -"
        ),
        "ex_native_seconds | {\"route\": \"/a\"} | schema 3".to_string(),
        format!(
            "ex_native_seconds | {{\"route\": \"/a\"}} | native | {{\"trace_id\": \"{T1}\"}} | 0.25 | -"
        ),
        format!(
            "ex_native_seconds | {{\"route\": \"/a\"}} | inf | {{\"trace_id\": \"{T1}\"}} | 0.25 | -"
        ),
    ];
    assert_eq!(lines, want, "{dump}");
}

fn invalid_updates() -> f64 {
    let mut body = Vec::new();
    encode(promtrack::default_registry(), Format::Text, &mut body);
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("promtrack_invalid_updates_total "))
        .expect("the default registry exposes promtrack_invalid_updates_total")
        .parse()
        .unwrap()
}

#[test]
fn refused_label_sets_are_counted_and_the_value_recorded() {
    let c = Family::<(), Counter>::new("ex_refused_total", "R.");
    let h = Family::<(), Histogram>::new("ex_refused_seconds", "R.");
    let before = invalid_updates();
    let long = "x".repeat(121); // "trace_id" + 121 = 129 characters
    assert_eq!(
        c.inc_with_exemplar(&[("trace_id", &long)]),
        Err(ExemplarError::TooLong { chars: 129 })
    );
    assert!(matches!(
        h.observe_with_exemplar(0.2, &[("0bad", "x")]),
        Err(ExemplarError::InvalidName(_))
    ));
    assert_eq!(c.get(), 1.0);
    assert_eq!(h.count(), 1);
    assert!(invalid_updates() >= before + 2.0);
    // Exactly 128 characters is accepted.
    assert!(c.inc_with_exemplar(&[("trace_id", &long[1..])]).is_ok());
}
