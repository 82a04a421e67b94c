//! A prefork server: a supervisor opens one listening socket, starts N worker processes that
//! all accept on it and serve the quickstart app (handler attributes, the default HTTP metrics
//! layer), restarts any worker that dies, and serves the aggregated `/metrics` of all of them
//! on a port of its own — what gunicorn plus
//! `GunicornPrometheusMetrics` gives a Python user, without a `child_exit` hook or an
//! environment variable.
//!
//! ```text
//! cargo run -p promtrack-examples --bin multiprocess
//! curl localhost:3000/users/7; curl localhost:9100/metrics
//! ```
//!
//! Settings (environment): `PORT` (app, default 3000), `METRICS_PORT` (default 9100),
//! `WORKERS` (default 2), `METRICS_DIR` (default `$RUNTIME_DIRECTORY/metrics` under systemd's
//! `RuntimeDirectory=`, else a private directory under the temporary directory). See
//! `examples/systemd/promtrack-multiprocess.service`.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use promtrack as metrics;

/// Set in a worker's environment: the descriptor of the inherited listening socket.
const LISTEN_FD: &str = "PROMTRACK_EXAMPLE_LISTEN_FD";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn metrics_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("METRICS_DIR") {
        return dir.into();
    }
    if let Some(runtime) = std::env::var_os("RUNTIME_DIRECTORY") {
        return PathBuf::from(runtime).join("metrics");
    }
    // SAFETY: `getuid` cannot fail.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("promtrack-multiprocess-{uid}"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::var(LISTEN_FD) {
        Ok(fd) => {
            // Before any metric is used: no `Environment=` line needed.
            promtrack::multiprocess::dir(metrics_dir())?;
            worker(fd.parse()?)
        }
        Err(_) => supervisor(),
    }
}

// --- the worker: the quickstart app on the inherited socket ---------------------------------

#[derive(serde::Serialize)]
struct User {
    id: u64,
    name: String,
    pid: u32,
}

async fn index() -> &'static str {
    "promtrack prefork example: try /users/42 and the metrics port\n"
}

/// Every tenth user is missing, so that both outcomes show. The lookup time is also a native
/// histogram of at most 20 buckets, so that the spread of real durations makes each worker
/// reduce it (scripts/load-with-faults.sh checks its merged buckets never go down).
#[metrics::histogram(
    "multiprocess_user_lookup_native_seconds",
    "Time spent looking a user up (a native histogram).",
    native(max_buckets = 20)
)]
#[metrics::histogram(
    "multiprocess_user_lookup_seconds",
    "Time spent looking a user up.",
    labels(source = "memory"),
    buckets = [0.0005, 0.001, 0.005, 0.01, 0.05]
)]
#[metrics::counter(
    "multiprocess_user_lookups_total",
    "User lookups, by whether the user was found.",
    labels(found = |ret: &Result<Json<User>, StatusCode>| ret.is_ok())
)]
async fn get_user(Path(id): Path<u64>) -> Result<Json<User>, StatusCode> {
    if id % 10 == 0 {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(Json(User {
        id,
        name: format!("user{id}"),
        pid: std::process::id(),
    }))
}

#[metrics::do_not_track]
async fn healthz() -> &'static str {
    "ok"
}

#[tokio::main(flavor = "current_thread")]
async fn worker(fd: i32) -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: the supervisor passed us this descriptor, a listening TCP socket, for our own.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = Router::new()
        .route("/", get(index))
        .route("/users/{id}", get(get_user))
        .route("/healthz", get(healthz))
        .layer(metrics::layer());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            term.recv().await;
        })
        .await?;
    // Returning from main runs promtrack's exit hook: this worker's file is folded into the
    // directory's archive at once.
    Ok(())
}

// --- the supervisor ---------------------------------------------------------------------------

fn spawn_worker(listener: &TcpListener) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .env(LISTEN_FD, listener.as_raw_fd().to_string())
        .spawn()
}

fn supervisor() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = env_or("PORT", 3000);
    let metrics_port: u16 = env_or("METRICS_PORT", 9100);
    let n: usize = env_or("WORKERS", 2);
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    // Workers inherit the socket: clear close-on-exec on it.
    // SAFETY: plain `fcntl` on a descriptor we own.
    unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_SETFD, 0) };
    // The supervisor only serves the aggregate: it reads the directory through a registry of
    // its own and never switches the mode on, so it creates no file (and declares nothing).
    let dir = metrics_dir();
    let registry = promtrack::Registry::new();
    registry.register_collector(promtrack::multiprocess::DirCollector::new(&dir)?);
    let running = Arc::new(AtomicUsize::new(0));
    {
        let running = running.clone();
        // A callback gauge, evaluated in the process that serves the scrape: this one.
        registry.register_gauge_fn(
            "multiprocess_workers",
            "Worker processes running.",
            move || running.load(Ordering::Relaxed) as f64,
        )?;
    }
    let mut workers: Vec<Child> = (0..n)
        .map(|_| spawn_worker(&listener))
        .collect::<Result<_, _>>()?;
    running.store(workers.len(), Ordering::Relaxed);
    eprintln!(
        "app on http://{}, aggregated metrics on http://127.0.0.1:{metrics_port}/metrics, {n} workers, files in {}",
        listener.local_addr()?,
        dir.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.spawn(async move {
        let metrics = tokio::net::TcpListener::bind(("127.0.0.1", metrics_port))
            .await
            .expect("the metrics port is free");
        let router = promtrack::MetricsRouter::new()
            .registry(&registry)
            .build::<()>();
        axum::serve(metrics, router)
            .await
            .expect("the metrics server runs");
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        rt.spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a signal handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    // Restart any worker that dies, however it died: its counts are already in the directory.
    while !stop.load(Ordering::Relaxed) {
        for w in workers.iter_mut() {
            if let Ok(Some(status)) = w.try_wait() {
                eprintln!("worker {} exited ({status}); restarting it", w.id());
                *w = spawn_worker(&listener)?;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for w in &workers {
        // SAFETY: signals our own children.
        unsafe { libc::kill(w.id() as i32, libc::SIGTERM) };
    }
    for mut w in workers {
        let _ = w.wait();
    }
    Ok(())
}
