use promtrack as metrics;

#[metrics::counter("jobs_total", "Jobs run.", labels(ok = |a: &bool, b: &bool| *a && *b))]
fn run() -> bool {
    true
}

fn main() {}
