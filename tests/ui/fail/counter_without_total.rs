use promtrack as metrics;

#[metrics::counter("jobs", "Jobs run.")]
fn run() {}

fn main() {}
