//! A batch job that reports to a Prometheus Pushgateway when it is done.
//!
//! `cargo run -p promtrack-examples --bin batch_job`
//!
//! - `PUSHGATEWAY_URL`: the gateway (default `http://127.0.0.1:9091`).
//! - `RECORDS`: how many records to "process" (default 100).
//!
//! It pushes, with `PUT` (replacing what the last run pushed), job `promtrack_batch` and
//! grouping label `instance="batch-1"`:
//! - `batch_records_processed_total`: incremented once per record;
//! - `batch_last_success_timestamp_seconds`: when the run finished, in Unix time;
//! - `batch_duration_seconds`: how long the run took.
//!
//! It prints one line saying what it pushed where, and exits with status 1 and the client's
//! error (which names the URL and the problem) when the push fails.

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use promtrack::push::Pusher;
use promtrack::{Counter, Family, Gauge, Registry};

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("batch_job: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, String> {
    let started = Instant::now();
    let gateway =
        std::env::var("PUSHGATEWAY_URL").unwrap_or_else(|_| "http://127.0.0.1:9091".to_owned());
    let records: u64 = match std::env::var("RECORDS") {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("RECORDS={text:?} is not a whole number; set e.g. RECORDS=100"))?,
        Err(_) => 100,
    };

    // Configuration mistakes (a bad URL, a bad label name) fail here, before the work.
    let pusher = Pusher::new(&gateway, "promtrack_batch")
        .and_then(|p| p.grouping("instance", "batch-1"))
        .map_err(|e| e.to_string())?;

    // A registry of the job's own: the push carries these three families and nothing else.
    let registry = Registry::new();
    let processed = Family::<(), Counter>::new(
        "batch_records_processed_total",
        "Records the batch job processed in its last run.",
    );
    let last_success = Family::<(), Gauge>::new(
        "batch_last_success_timestamp_seconds",
        "When the batch job last finished successfully, in Unix time.",
    );
    let duration = Family::<(), Gauge>::new(
        "batch_duration_seconds",
        "How long the batch job's last run took.",
    );
    registry.register(&processed).map_err(|e| e.to_string())?;
    registry
        .register(&last_success)
        .map_err(|e| e.to_string())?;
    registry.register(&duration).map_err(|e| e.to_string())?;

    for _ in 0..records {
        // The real work would go here.
        processed.inc();
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| format!("the system clock is before 1970: {e}"))?;
    last_success.set(now.as_secs_f64());
    duration.set(started.elapsed().as_secs_f64());

    pusher.push(&registry).map_err(|e| e.to_string())?;
    Ok(format!(
        "pushed batch_records_processed_total={records}, batch_last_success_timestamp_seconds \
         and batch_duration_seconds (job=\"promtrack_batch\", instance=\"batch-1\") to {}",
        pusher.url()
    ))
}
