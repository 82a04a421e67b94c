use promtrack as metrics;

struct Outcome;

#[metrics::counter("jobs_total", "Jobs run.", labels(outcome = |_r: &u32| Outcome))]
fn run() -> u32 {
    1
}

fn main() {}
