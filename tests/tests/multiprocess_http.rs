//! Real HTTP under load while workers die: N worker processes (this test binary run again)
//! serve a small axum app on one inherited listening socket, as a prefork server does; client
//! threads send requests over loopback while workers are killed with SIGKILL and restarted.
//! The aggregate must lie between what the clients saw complete and what they sent:
//! completed responses ≤ counted ≤ completed + failed, and every request counted by the
//! counter is in the histogram too.

mod multiprocess_support;
use multiprocess_support::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use promtrack::{Counter, Family, Histogram};

/// Set in a worker's environment: the inherited listening socket's descriptor.
const LISTEN_FD: &str = "PROMTRACK_TEST_HTTP_LISTEN_FD";
const BODY: &[u8] = b"done\n";

#[test]
fn http_worker() {
    let Ok(fd) = std::env::var(LISTEN_FD) else {
        return;
    };
    // The worker's families live as long as the process.
    let requests: &'static _ = Box::leak(Box::new(
        Family::<[&str; 1], Counter>::new("http_requests_total", "Requests.")
            .label_names(["route"]),
    ));
    let latency: &'static _ = Box::leak(Box::new(
        Family::<[&str; 1], Histogram>::new("http_request_seconds", "Latency.")
            .label_names(["route"])
            .buckets(&[0.001, 0.01]),
    ));
    let counted: &'static Counter = requests.with(&["/work"]);
    let observed: &'static Histogram = latency.with(&["/work"]);
    let app = axum::Router::new().route(
        "/work",
        axum::routing::get(move || {
            async move {
                // Counted when the request arrives, before the response is sent: a worker
                // killed after this line has counted a request whose client sees a failure.
                counted.inc();
                observed.observe(0.002);
                tokio::time::sleep(Duration::from_millis(2)).await;
                BODY
            }
        }),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // SAFETY: the parent passed this descriptor, a listening TCP socket, to us alone.
        let listener = unsafe { TcpListener::from_raw_fd(fd.parse().unwrap()) };
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        // Ready: the series exist in this process's file.
        println!("@ready");
        axum::serve(listener, app).await.unwrap();
    });
}

struct HttpWorker(Child);

impl HttpWorker {
    fn start(dir: &Path, listener: &TcpListener) -> HttpWorker {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "http_worker",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(LISTEN_FD, listener.as_raw_fd().to_string())
            .env("PROMETHEUS_MULTIPROC_DIR", dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while line.trim() != "@ready" {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "worker died at start"
            );
        }
        HttpWorker(child)
    }

    fn kill9(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

/// One request on a new connection: `Ok(true)` for a complete `200` with the whole body,
/// `Ok(false)` or `Err` for anything else (reset, cut short).
fn request(addr: SocketAddr) -> std::io::Result<bool> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /work HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)?;
    Ok(response.starts_with(b"HTTP/1.1 200") && response.ends_with(BODY))
}

#[test]
fn counts_stay_between_completed_and_sent_when_workers_are_killed_mid_load() {
    let dir = temp_dir("http");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Workers inherit the socket, as from a prefork supervisor.
    // SAFETY: plain `fcntl` on a descriptor we own.
    unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_SETFD, 0) };
    let mut workers: Vec<HttpWorker> = (0..4).map(|_| HttpWorker::start(&dir, &listener)).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (stop, completed, failed) = (stop.clone(), completed.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match request(addr) {
                        Ok(true) => completed.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    // Kill a worker every 150 ms while the clients run, restarting it each time.
    let started = Instant::now();
    let kills = 8;
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(150));
        let victim = workers.remove(k % workers.len());
        victim.kill9();
        workers.push(HttpWorker::start(&dir, &listener));
    }
    std::thread::sleep(Duration::from_millis(150));
    let sent_while_killing = completed.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (completed, failed) = (
        completed.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!(
        "{kills} kills in {:?}: {completed} completed, {failed} failed",
        started.elapsed()
    );
    assert!(sent_while_killing > 0, "the load ran during the kills");

    let check = |when: &str| {
        let fams = scrape(&dir);
        let counted = counter(&fams, "http_requests_total", &[("route", "/work")]);
        let (observed, sum) = histogram(&fams, "http_request_seconds");
        assert!(
            completed as f64 <= counted && counted <= (completed + failed) as f64,
            "{when}: completed {completed} <= counted {counted} <= completed + failed {}",
            completed + failed
        );
        assert_eq!(observed as f64, counted, "{when}: histogram count");
        assert!(
            (sum - 0.002 * counted).abs() < 1e-6 * counted.max(1.0),
            "{when}: sum {sum}"
        );
        counted
    };
    let live = check("live workers");
    // Dead workers were folded into the archive by the scrapes; the live ones go now.
    for w in workers {
        w.kill9();
    }
    assert_eq!(check("every worker dead"), live);
    assert_eq!(files(&dir), ["archive.db", "compact.lock"]);
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}
