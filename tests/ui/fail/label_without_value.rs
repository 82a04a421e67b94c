use promtrack as metrics;

#[metrics::counter("jobs_total", "Jobs run.", labels(queue))]
fn run() {}

fn main() {}
