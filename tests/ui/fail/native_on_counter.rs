use promtrack as metrics;

#[metrics::counter("jobs_total", "Jobs.", native)]
fn run() {}

fn main() {}
