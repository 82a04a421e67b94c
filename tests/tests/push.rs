//! The Pushgateway client against a real Pushgateway process (Debian's
//! `prometheus-pushgateway`), each test on a gateway of its own on a free loopback port; and
//! against plain TCP listeners where the behaviour under test is a server that misbehaves
//! (never answers, redirects) or where the exact request must be seen.
//!
//! The tests that start a gateway use the one `tests/build.rs` found on `PATH`
//! (`prometheus-pushgateway` or `pushgateway`). Without one they show in `cargo test`'s output
//! as `ignored, needs prometheus-pushgateway: apt-get install prometheus-pushgateway`; under
//! `CI=true` they run anyway and fail with that message: a test that passes without having run
//! would hide a missing install step in CI.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use promtrack::model::{MetricFamily, MetricKind, Series, Value};
use promtrack::push::Pusher;
use promtrack::{Collector, Counter, Error, Family, Gauge, Histogram, Registry};

/// User and password the basic-auth gateway accepts; the hash was made with
/// `htpasswd -nbBC 5 promtrack push-secret` (cost 5 keeps each checked request fast).
const USER: &str = "promtrack";
const PASSWORD: &str = "push-secret";
const PASSWORD_HASH: &str = "$2y$05$IAdXhGFJ5fklKRMz0AwxCO.dFfaocpdiK30lL40OwQq5tMSbYs6ke";

/// A Pushgateway process, killed when dropped (also when a test panics).
struct Gateway {
    child: Child,
    url: String,
    /// `Authorization` header for reading `/metrics` back, when the gateway requires one.
    authorization: Option<String>,
    config_dir: Option<PathBuf>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.config_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts a gateway: the one `build.rs` found on `PATH`. Without one the tests are ignored, unless
/// they were demanded (`CI=true`, or `--include-ignored`): then this fails saying what to install.
fn start_gateway(test: &str, basic_auth: bool) -> Gateway {
    let Some(binary) = option_env!("PROMTRACK_TESTS_PUSHGATEWAY") else {
        panic!(
            "{test}: needs prometheus-pushgateway (or upstream's pushgateway) on PATH: \
             apt-get install prometheus-pushgateway"
        )
    };
    let config_dir = basic_auth.then(|| {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "promtrack-push-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("web.yml"),
            format!("basic_auth_users:\n  {USER}: {PASSWORD_HASH}\n"),
        )
        .unwrap();
        dir
    });
    // A free port can be taken by someone else between our probe and the gateway's bind:
    // retry on a fresh one if the gateway exits.
    for _ in 0..3 {
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Debian's default persists to /var/lib/prometheus; each test wants a fresh gateway.
            .arg("--persistence.file=")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(dir) = &config_dir {
            command.arg(format!(
                "--web.config.file={}",
                dir.join("web.yml").display()
            ));
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{test}: cannot start {binary}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let authorization = basic_auth.then(|| basic(USER, PASSWORD));
                return Gateway {
                    child,
                    url: format!("http://127.0.0.1:{port}"),
                    authorization,
                    config_dir,
                };
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
                eprintln!("{test}: the gateway exited ({status}), retrying: {stderr}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{test}: the gateway did not listen on port {port} within 10 s"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("{test}: the gateway would not start; see the messages above")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn basic(user: &str, password: &str) -> String {
    // Written out, not through the code under test, so a wrong encoding there cannot hide.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

impl Gateway {
    /// The gateway's exposition: sample lines of `job`, as it serves them to Prometheus.
    fn samples(&self, job: &str) -> Vec<String> {
        let mut request = ureq::get(format!("{}/metrics", self.url));
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        let body = request
            .call()
            .expect("GET /metrics on the gateway")
            .body_mut()
            .read_to_string()
            .unwrap();
        let needle = format!("job=\"{job}\"");
        body.lines()
            .filter(|l| !l.starts_with('#') && l.contains(&needle))
            .map(str::to_owned)
            .collect()
    }

    /// The pushed samples of `job` (without the gateway's own `push_*` bookkeeping).
    fn pushed(&self, job: &str) -> Vec<String> {
        let mut lines: Vec<String> = self
            .samples(job)
            .into_iter()
            .filter(|l| !l.starts_with("push_time_seconds") && !l.starts_with("push_failure"))
            .collect();
        lines.sort();
        lines
    }
}

fn counter(registry: &Registry, name: &str, value: f64) {
    let family = Family::<(), Counter>::new(name, "A counter.");
    registry.register(&family).unwrap();
    family.inc_by(value);
}

fn gauge(registry: &Registry, name: &str, value: f64) {
    let family = Family::<(), Gauge>::new(name, "A gauge.");
    registry.register(&family).unwrap();
    family.set(value);
}

#[test]
#[cfg_attr(
    missing_pushgateway,
    ignore = "needs prometheus-pushgateway: apt-get install prometheus-pushgateway"
)]
fn push_shows_the_values_under_the_grouping_key() {
    let gw = start_gateway("push_shows_the_values", false);
    let registry = Registry::new();
    counter(&registry, "pt_jobs_total", 3.0);
    gauge(&registry, "pt_queue_depth", 1.5);
    let latency = Family::<[&str; 1], Histogram>::new("pt_latency_seconds", "Latency.")
        .label_names(["stage"])
        .buckets(&[0.1, 1.0]);
    registry.register(&latency).unwrap();
    latency.with(&["load"]).observe(0.05);
    latency.with(&["load"]).observe(0.5);

    let pusher = Pusher::new(&gw.url, "pt_push")
        .unwrap()
        .grouping("instance", "b1")
        .unwrap()
        .grouping("zone", "eu")
        .unwrap();
    pusher.push(&registry).unwrap();

    let g = r#"instance="b1",job="pt_push""#;
    assert_eq!(
        gw.pushed("pt_push"),
        [
            format!(r#"pt_jobs_total{{{g},zone="eu"}} 3"#),
            format!(r#"pt_latency_seconds_bucket{{{g},stage="load",zone="eu",le="+Inf"}} 2"#),
            format!(r#"pt_latency_seconds_bucket{{{g},stage="load",zone="eu",le="0.1"}} 1"#),
            format!(r#"pt_latency_seconds_bucket{{{g},stage="load",zone="eu",le="1"}} 2"#),
            format!(r#"pt_latency_seconds_count{{{g},stage="load",zone="eu"}} 2"#),
            format!(r#"pt_latency_seconds_sum{{{g},stage="load",zone="eu"}} 0.55"#),
            format!(r#"pt_queue_depth{{{g},zone="eu"}} 1.5"#),
        ]
    );
    // The gateway recorded a successful push for exactly this group.
    let pushed_at = gw
        .samples("pt_push")
        .into_iter()
        .find(|l| l.starts_with(&format!(r#"push_time_seconds{{{g},zone="eu"}} "#)))
        .expect("push_time_seconds for the group");
    let at: f64 = pushed_at.rsplit_once(' ').unwrap().1.parse().unwrap();
    assert!(at > 1.6e9, "{pushed_at}");
}

#[test]
#[cfg_attr(
    missing_pushgateway,
    ignore = "needs prometheus-pushgateway: apt-get install prometheus-pushgateway"
)]
fn push_replaces_the_group_and_push_add_keeps_its_other_families() {
    let gw = start_gateway("push_replaces_the_group", false);
    let job = "pt_replace";
    let pusher = Pusher::new(&gw.url, job)
        .unwrap()
        .grouping("instance", "a")
        .unwrap();
    let other = Pusher::new(&gw.url, job)
        .unwrap()
        .grouping("instance", "b")
        .unwrap();
    let untouched = r#"pt_other{instance="b",job="pt_replace"} 9"#;

    let both = Registry::new();
    counter(&both, "pt_a_total", 1.0);
    gauge(&both, "pt_b", 2.0);
    let only_b = Registry::new();
    gauge(&only_b, "pt_b", 7.0);
    let elsewhere = Registry::new();
    gauge(&elsewhere, "pt_other", 9.0);

    other.push(&elsewhere).unwrap();
    pusher.push(&both).unwrap();
    assert_eq!(
        gw.pushed(job),
        [
            r#"pt_a_total{instance="a",job="pt_replace"} 1"#,
            r#"pt_b{instance="a",job="pt_replace"} 2"#,
            untouched,
        ]
    );

    // POST replaces pt_b and keeps pt_a_total.
    pusher.push_add(&only_b).unwrap();
    assert_eq!(
        gw.pushed(job),
        [
            r#"pt_a_total{instance="a",job="pt_replace"} 1"#,
            r#"pt_b{instance="a",job="pt_replace"} 7"#,
            untouched,
        ]
    );

    // PUT replaces the whole group: pt_a_total goes; the other group stays.
    pusher.push(&only_b).unwrap();
    assert_eq!(
        gw.pushed(job),
        [r#"pt_b{instance="a",job="pt_replace"} 7"#, untouched]
    );
}

#[test]
#[cfg_attr(
    missing_pushgateway,
    ignore = "needs prometheus-pushgateway: apt-get install prometheus-pushgateway"
)]
fn delete_removes_only_its_group() {
    let gw = start_gateway("delete_removes_only_its_group", false);
    let registry = Registry::new();
    gauge(&registry, "pt_g", 1.0);
    let a = Pusher::new(&gw.url, "pt_delete")
        .unwrap()
        .grouping("instance", "a")
        .unwrap();
    let b = Pusher::new(&gw.url, "pt_delete")
        .unwrap()
        .grouping("instance", "b")
        .unwrap();
    a.push(&registry).unwrap();
    b.push(&registry).unwrap();
    assert_eq!(gw.pushed("pt_delete").len(), 2);

    a.delete().unwrap();
    assert_eq!(
        gw.pushed("pt_delete"),
        [r#"pt_g{instance="b",job="pt_delete"} 1"#]
    );
    // The gateway's bookkeeping for the group is gone too.
    assert!(
        gw.samples("pt_delete")
            .iter()
            .all(|l| !l.contains(r#"instance="a""#)),
        "{:?}",
        gw.samples("pt_delete")
    );
    // Deleting what is not there succeeds.
    a.delete().unwrap();
}

#[test]
#[cfg_attr(
    missing_pushgateway,
    ignore = "needs prometheus-pushgateway: apt-get install prometheus-pushgateway"
)]
fn awkward_job_names_and_grouping_values_round_trip() {
    let gw = start_gateway("awkward_values_round_trip", false);
    let job = "team/nightly etl";
    let values = ["a/b", "", ".", "..", "x y", "ü/ñ", "50%", "+1", "/", "a\\b"];
    let registry = Registry::new();
    gauge(&registry, "pt_awkward", 1.0);
    for value in values {
        Pusher::new(&gw.url, job)
            .unwrap()
            .grouping("part", value)
            .unwrap()
            .push(&registry)
            .unwrap_or_else(|e| panic!("push with part={value:?}: {e}"));
    }
    let shown = gw.pushed(job);
    for value in values {
        let escaped = value.replace('\\', "\\\\");
        let line = format!(r#"pt_awkward{{instance="",job="{job}",part="{escaped}"}} 1"#);
        assert!(shown.contains(&line), "{line} not in {shown:#?}");
    }
    assert_eq!(shown.len(), values.len(), "{shown:#?}");

    // The same URLs address the same groups for deletion.
    for value in values {
        Pusher::new(&gw.url, job)
            .unwrap()
            .grouping("part", value)
            .unwrap()
            .delete()
            .unwrap();
    }
    assert!(gw.samples(job).is_empty(), "{:#?}", gw.samples(job));
}

#[test]
#[cfg_attr(
    missing_pushgateway,
    ignore = "needs prometheus-pushgateway: apt-get install prometheus-pushgateway"
)]
fn basic_auth_is_sent_and_a_refusal_says_what_to_check() {
    let gw = start_gateway("basic_auth", true);
    let registry = Registry::new();
    gauge(&registry, "pt_secret", 4.0);
    let pusher = || {
        Pusher::new(&gw.url, "pt_auth")
            .unwrap()
            .grouping("instance", "i")
            .unwrap()
    };

    for (what, attempt) in [
        ("no credentials", pusher()),
        ("a wrong password", pusher().basic_auth(USER, "wrong")),
    ] {
        let err = attempt.push(&registry).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Push {
                    status: Some(401),
                    ..
                }
            ),
            "{what}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("401") && message.contains("basic_auth"),
            "{what}: {message}"
        );
    }
    assert!(gw.pushed("pt_auth").is_empty());

    let pusher = pusher().basic_auth(USER, PASSWORD);
    pusher.push(&registry).unwrap();
    assert_eq!(
        gw.pushed("pt_auth"),
        [r#"pt_secret{instance="i",job="pt_auth"} 4"#]
    );
    pusher.delete().unwrap();
    assert!(gw.pushed("pt_auth").is_empty());
}

#[test]
fn a_gateway_that_is_down_is_named_in_the_error() {
    // A port nobody listens on: bound, then released.
    let port = free_port();
    let pusher = Pusher::new(format!("127.0.0.1:{port}"), "pt_down").unwrap();
    let registry = Registry::new();
    gauge(&registry, "pt_g", 1.0);
    for err in [
        pusher.push(&registry).unwrap_err(),
        pusher.delete().unwrap_err(),
    ] {
        assert!(matches!(err, Error::Push { status: None, .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("http://127.0.0.1:{port}/metrics/job/pt_down"))
                && message.contains("not reachable")
                && message.contains("connection refused"),
            "{message}"
        );
    }
}

/// An untyped family, which the gateway will not accept under a name another group pushed as
/// a gauge.
struct Untyped(&'static str);

impl Collector for Untyped {
    fn collect(&self, out: &mut Vec<MetricFamily>) {
        out.push(
            MetricFamily::new(self.0, "Untyped.", MetricKind::Unknown)
                .with_series(Series::new(Value::Unknown(1.0))),
        );
    }
}

#[test]
#[cfg_attr(
    missing_pushgateway,
    ignore = "needs prometheus-pushgateway: apt-get install prometheus-pushgateway"
)]
fn a_refusing_gateway_s_message_is_in_the_error() {
    let gw = start_gateway("refusal_message", false);
    let as_gauge = Registry::new();
    gauge(&as_gauge, "pt_clash", 1.0);
    Pusher::new(&gw.url, "pt_first")
        .unwrap()
        .push(&as_gauge)
        .unwrap();

    let untyped = Registry::new();
    untyped.register_collector(Untyped("pt_clash"));
    let err = Pusher::new(&gw.url, "pt_second")
        .unwrap()
        .push(&untyped)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Push {
                status: Some(400),
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    // The gateway's own words, and the family they are about.
    assert!(
        message.contains("400")
            && message.contains("inconsistent with existing metrics")
            && message.contains("pt_clash"),
        "{message}"
    );
    assert!(gw.pushed("pt_second").is_empty());
}

#[test]
#[cfg_attr(
    missing_pushgateway,
    ignore = "needs prometheus-pushgateway: apt-get install prometheus-pushgateway"
)]
fn a_series_carrying_a_grouping_label_is_refused_before_sending() {
    let gw = start_gateway("grouping_label_clash", false);
    let registry = Registry::new();
    let by_instance = Family::<[&str; 1], Gauge>::new("pt_by_instance", "Per instance.")
        .label_names(["instance"]);
    registry.register(&by_instance).unwrap();
    by_instance.with(&["x"]).set(1.0);
    let err = Pusher::new(&gw.url, "pt_clash")
        .unwrap()
        .grouping("instance", "b1")
        .unwrap()
        .push(&registry)
        .unwrap_err();
    assert!(matches!(err, Error::Push { status: None, .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(r#"pt_by_instance{instance="x"}"#)
            && message.contains("`instance`")
            && message.contains("grouping key"),
        "{message}"
    );

    let with_job = Registry::new();
    let by_job = Family::<[&str; 1], Gauge>::new("pt_by_job", "Per job.").label_names(["job"]);
    with_job.register(&by_job).unwrap();
    by_job.with(&["x"]).set(1.0);
    let err = Pusher::new(&gw.url, "pt_clash")
        .unwrap()
        .push_add(&with_job)
        .unwrap_err();
    assert!(err.to_string().contains("label `job`"), "{err}");

    // Nothing reached the gateway.
    assert!(
        gw.samples("pt_clash").is_empty(),
        "{:?}",
        gw.samples("pt_clash")
    );
}

/// A TCP server that reads one request and answers `response`; the join handle returns the
/// request's head and body as received.
fn one_request_server(
    response: &'static str,
) -> (SocketAddr, thread::JoinHandle<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
            head.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        reader.get_mut().write_all(response.as_bytes()).unwrap();
        (head, body)
    });
    (addr, handle)
}

#[test]
fn headers_and_the_encoded_registry_are_what_is_sent() {
    let (addr, server) =
        one_request_server("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let registry = Registry::new();
    counter(&registry, "pt_sent_total", 2.0);
    Pusher::new(format!("http://{addr}/"), "pt_headers")
        .unwrap()
        .grouping("instance", "b1")
        .unwrap()
        .bearer_auth("t0ken")
        .header("X-Scope-OrgID", "team-a")
        .unwrap()
        .push_add(&registry)
        .unwrap();
    let (request, body) = server.join().unwrap();
    let lower = request.to_ascii_lowercase();
    assert!(
        request.starts_with("POST /metrics/job/pt_headers/instance/b1 HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        lower.contains("\r\nauthorization: bearer t0ken\r\n"),
        "{request}"
    );
    assert!(lower.contains("\r\nx-scope-orgid: team-a\r\n"), "{request}");
    assert!(
        lower.contains("\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{request}"
    );
    // The body is the text encoder's output, byte for byte.
    assert_eq!(
        String::from_utf8(body).unwrap(),
        promtrack::expose::encode_to_string(&registry, promtrack::expose::Format::Text)
    );
}

#[test]
fn a_redirect_is_reported_with_its_location() {
    let (addr, server) = one_request_server(
        "HTTP/1.1 308 Permanent Redirect\r\nlocation: http://elsewhere:9091/metrics/job/j\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n",
    );
    let err = Pusher::new(format!("http://{addr}"), "j")
        .unwrap()
        .push(&Registry::new())
        .unwrap_err();
    server.join().unwrap();
    assert!(
        matches!(
            err,
            Error::Push {
                status: Some(308),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("http://elsewhere:9091/metrics/job/j"),
        "{err}"
    );
}

#[test]
fn a_gateway_that_never_answers_times_out_with_the_limit_named() {
    // Accepts connections and reads, but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let err = Pusher::new(format!("http://{addr}"), "pt_slow")
        .unwrap()
        .timeout(Duration::from_millis(300))
        .push(&Registry::new())
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Push { status: None, .. }), "{err:?}");
    assert!(
        err.to_string().contains("did not answer within 300ms")
            && err.to_string().contains("Pusher::timeout"),
        "{err}"
    );
}

#[test]
#[cfg_attr(
    missing_pushgateway,
    ignore = "needs prometheus-pushgateway: apt-get install prometheus-pushgateway"
)]
fn gzip_bodies_reach_the_gateway() {
    let gw = start_gateway("gzip_bodies", false);
    let registry = Registry::new();
    let rows = Family::<[u32; 1], Counter>::new("pt_rows_total", "Rows.").label_names(["table"]);
    registry.register(&rows).unwrap();
    for table in 0..50 {
        rows.with(&[table]).inc_by(f64::from(table));
    }
    Pusher::new(&gw.url, "pt_gzip")
        .unwrap()
        .gzip(true)
        .push(&registry)
        .unwrap();
    let shown = gw.pushed("pt_gzip");
    assert_eq!(shown.len(), 50, "{shown:#?}");
    assert!(
        shown.contains(&r#"pt_rows_total{instance="",job="pt_gzip",table="49"} 49"#.to_owned())
    );

    // What went over the wire was compressed, and says so.
    let (addr, server) =
        one_request_server("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    Pusher::new(format!("http://{addr}"), "pt_gzip")
        .unwrap()
        .gzip(true)
        .push(&registry)
        .unwrap();
    let (request, body) = server.join().unwrap();
    assert!(
        request
            .to_ascii_lowercase()
            .contains("\r\ncontent-encoding: gzip\r\n"),
        "{request}"
    );
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(
        plain,
        promtrack::expose::encode_to_string(&registry, promtrack::expose::Format::Text)
    );
    assert!(
        body.len() < plain.len() / 2,
        "{} of {}",
        body.len(),
        plain.len()
    );
}
