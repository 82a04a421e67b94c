use promtrack as metrics;

#[metrics::counter("jobs_total", "Jobs run.", buckets = [0.1])]
fn run() {}

fn main() {}
