use promtrack as metrics;

#[metrics::counter("jobs_total", "Jobs run.", labels(ok = |r: &()| true))]
fn run() {}

fn main() {}
