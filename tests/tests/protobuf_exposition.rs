//! The protobuf exposition read by a decoder promtrack did not write: every metric type from
//! every source (registered families, a collector, rust-prometheus interop, the multiprocess
//! directory aggregate) encoded with `Format::Protobuf`, then handed to
//! `../shared/tools/exposition-check --format protobuf` (Python's `protobuf` package decoding
//! against metrics.proto, plus its invariants) with the exact sample values expected, and the
//! created timestamps read back through the same Python decoder. Without the checker the tests
//! show as ignored (under `CI=true` they fail): see `tests/build.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use promtrack::expose::{Format, Scrape, encode};
use promtrack::model::{MetricFamily, MetricKind, Series, Value};
use promtrack::multiprocess::DirCollector;
use promtrack::{Collector, Counter, Family, Gauge, Histogram, Info, Registry, Summary};

#[path = "checker_support/mod.rs"]
mod checker_support;
use checker_support::{checker, python_pb};

const CREATED: f64 = 1_700_000_000.125;

struct Fixed;
impl Collector for Fixed {
    fn collect(&self, out: &mut Vec<MetricFamily>) {
        let mut collected = Series::new(Value::Counter(5.0));
        collected.created = Some(CREATED);
        out.push(
            MetricFamily::new(
                "pb_collected_total",
                "From a collector.",
                MetricKind::Counter,
            )
            .with_series(collected),
        );
        out.push(
            MetricFamily::new("pb_raw", "Untyped.", MetricKind::Unknown)
                .with_series(Series::new(Value::Unknown(7.0))),
        );
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("promtrack-protobuf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// One registry holding every type from every source, with the multiprocess directory it
/// aggregates. Built once, and first thing in every test: multiprocess mode must be on before
/// this process creates any series.
fn every_source() -> &'static (Registry, PathBuf) {
    static SOURCES: OnceLock<(Registry, PathBuf)> = OnceLock::new();
    SOURCES.get_or_init(build_sources)
}

fn build_sources() -> (Registry, PathBuf) {
    // This process writes a multiprocess file; the registry aggregates the directory.
    let dir = temp_dir("dir");
    promtrack::multiprocess::dir(&dir).unwrap();
    let r = Registry::new();
    let jobs = Family::<[&str; 1], Counter>::new("pb_jobs_total", "Jobs.").label_names(["queue"]);
    let temp = Family::<[&str; 1], Gauge>::new("pb_temperature", "T.").label_names(["room"]);
    let lat = Family::<(), Histogram>::new("pb_latency_seconds", "L.").buckets(&[0.3, 1.0]);
    let size = Family::<(), Summary>::new("pb_size_bytes", "S.");
    let build = Family::<[&str; 1], Info>::new("pb_build_info", "B.").label_names(["version"]);
    r.register(&jobs).unwrap();
    r.register(&temp).unwrap();
    r.register(&lat).unwrap();
    r.register(&size).unwrap();
    r.register(&build).unwrap();
    jobs.with(&["email"]).inc_by(3.0);
    jobs.with(&["a\"b\\c\nd"]).inc();
    temp.with(&["x"]).set(-2.5);
    for v in [0.25, 0.5, 2.0] {
        lat.observe(v);
    }
    size.observe(10.0);
    size.observe(20.0);
    build.with(&["1.2.3"]);

    r.register_collector(Fixed);

    let legacy = prometheus::Registry::new();
    let counter = prometheus::IntCounter::new("pb_legacy_total", "rust-prometheus.").unwrap();
    counter.inc_by(9);
    legacy.register(Box::new(counter)).unwrap();
    r.register_collector(promtrack::interop::PrometheusRegistry::new(legacy));

    // Our families are in the directory too (every series of a multiprocess process is), but
    // the registry's own take precedence; this one is only in the directory.
    let mp = Family::<(), Counter>::new("pb_mp_requests_total", "Multiprocess.");
    promtrack::default_registry().register(&mp).unwrap();
    mp.inc_by(4.0);
    r.register_collector(DirCollector::new(&dir).unwrap());
    (r, dir)
}

fn write_exposition(r: &Registry, dir: &Path, name: &str) -> PathBuf {
    let mut body = Vec::new();
    encode(r, Format::Protobuf, &mut body);
    let path = dir.join(name);
    std::fs::write(&path, &body).unwrap();
    path
}

#[test]
#[cfg_attr(
    missing_protobuf_checker,
    ignore = "needs ../shared/tools/exposition-check and python3: apt-get install python3"
)]
fn every_type_and_source_decodes_with_exact_values() {
    let (r, dir) = every_source();
    let file = write_exposition(r, dir, "values.pb");
    let expects = [
        "pb_jobs_total{queue=\"email\"}=3",
        "pb_temperature{room=\"x\"}=-2.5",
        "pb_latency_seconds_bucket{le=\"0.3\"}=1",
        "pb_latency_seconds_bucket{le=\"1\"}=2",
        "pb_latency_seconds_count=3",
        "pb_latency_seconds_sum=2.75",
        "pb_size_bytes_count=2",
        "pb_size_bytes_sum=30",
        "pb_build_info{version=\"1.2.3\"}=1",
        "pb_collected_total=5",
        "pb_raw=7",
        "pb_legacy_total=9",
        "pb_mp_requests_total=4",
    ];
    let mut cmd = Command::new(checker());
    cmd.arg(&file).args(["--format", "protobuf"]);
    for e in expects {
        cmd.args(["--expect", e]);
    }
    let out = cmd.output().expect("the checker runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exposition-check rejects the protobuf exposition ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("ok protobuf"), "{stdout}");
}

/// Prints, per counter, histogram and summary series, its
/// family, its label values (JSON) and its `created_timestamp` as seconds and nanoseconds.
const CREATED_DUMP: &str = r#"
for f in families:
    for m in f.metric:
        for kind in ("counter", "histogram", "summary"):
            if m.HasField(kind):
                v = getattr(m, kind)
                ts = v.created_timestamp if v.HasField("created_timestamp") else None
                print(f.name, json.dumps([l.value for l in m.label]),
                      ts.seconds if ts else "none", ts.nanos if ts else "none")
"#;

/// Start timestamps (Prometheus 2.42 ignores them, so no scrape shows them): the collector's
/// exact time, and the registered families' creation times, read by Python's decoder.
#[test]
#[cfg_attr(
    missing_protobuf_checker,
    ignore = "needs ../shared/tools/exposition-check and python3: apt-get install python3"
)]
fn created_timestamps_decode_independently() {
    every_source();
    // Generous: the sources may have been built by another test, a while ago.
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 600;
    let (r, dir) = every_source();
    let file = write_exposition(r, dir, "created.pb");
    let stdout = python_pb(CREATED_DUMP, &file);
    let created = |family: &str, labels: &str| -> Option<(i64, i64)> {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{family} {labels} ")))
            .unwrap_or_else(|| panic!("no {family} {labels} in:\n{stdout}"));
        let mut f = line.rsplitn(3, ' ');
        let nanos = f.next()?.parse().ok()?;
        let seconds = f.next()?.parse().ok()?;
        Some((seconds, nanos))
    };
    assert_eq!(
        created("pb_collected_total", "[]"),
        Some((1_700_000_000, 125_000_000))
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (family, labels) in [
        ("pb_jobs_total", r#"["email"]"#),
        ("pb_jobs_total", r#"["a\"b\\c\nd"]"#),
        ("pb_latency_seconds", "[]"),
        ("pb_size_bytes", "[]"),
    ] {
        let (seconds, nanos) =
            created(family, labels).unwrap_or_else(|| panic!("{family} {labels}: no created"));
        assert!(
            (before..=now).contains(&seconds) && (0..1_000_000_000).contains(&nanos),
            "{family} {labels}: created {seconds}.{nanos} outside {before}..={now}"
        );
    }
    // rust-prometheus' counters carry no creation time through the interop.
    assert_eq!(created("pb_legacy_total", "[]"), None);
}

/// The HTTP-facing path: what `Scrape` answers to Prometheus 2.42's protobuf `Accept`, gzip
/// included, is the delimited stream the checker accepts.
#[test]
#[cfg_attr(
    missing_protobuf_checker,
    ignore = "needs ../shared/tools/exposition-check and python3: apt-get install python3"
)]
fn a_scrape_answer_in_protobuf_with_gzip() {
    use std::io::Read;
    let dir = &every_source().1;
    let r = Registry::new();
    let jobs = Family::<(), Counter>::new("pb_gz_total", "Jobs.");
    r.register(&jobs).unwrap();
    jobs.inc_by(11.0);
    let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
    let answer = Scrape {
        accept: Some(accept),
        accept_encoding: Some("gzip"),
        query: None,
    }
    .render(&r);
    assert_eq!(
        answer.content_type(),
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    );
    assert!(answer.gzip);
    let mut body = Vec::new();
    flate2::read::GzDecoder::new(&answer.body[..])
        .read_to_end(&mut body)
        .unwrap();
    let file = dir.join("scrape.pb");
    std::fs::write(&file, &body).unwrap();
    let out = Command::new(checker())
        .arg(&file)
        .args(["--format", "protobuf", "--expect", "pb_gz_total=11"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A multiprocess directory's scrape says what its scrapers negotiated: the process reading the
/// directory answers them, so its `promtrack_scrapes_total` is in the aggregate (Prometheus
/// 2.42 does not report what it negotiated), once — also where the default registry, which
/// writes it anyway, reads the directory.
#[test]
fn the_directory_scrape_counts_its_formats() {
    let (r, _) = every_source();
    let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
    let scrape = |accept| {
        Scrape {
            accept,
            accept_encoding: None,
            query: None,
        }
        .render(r)
    };
    assert_eq!(scrape(Some(accept)).format, Format::Protobuf);
    let text = String::from_utf8(scrape(None).body).unwrap();
    let protobuf_scrapes = text
        .lines()
        .find_map(|l| l.strip_prefix("promtrack_scrapes_total{format=\"protobuf\"} "))
        .unwrap_or_else(|| panic!("no protobuf scrape count in the directory's scrape:\n{text}"));
    assert!(protobuf_scrapes.parse::<f64>().unwrap() >= 1.0, "{text}");
    for registry in [r, promtrack::default_registry()] {
        let text = promtrack::expose::encode_to_string(registry, Format::Text);
        assert_eq!(
            text.matches("# TYPE promtrack_scrapes_total counter")
                .count(),
            1,
            "{text}"
        );
    }
}
