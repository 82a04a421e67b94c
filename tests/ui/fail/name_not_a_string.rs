use promtrack as metrics;

#[metrics::counter(jobs_total, "Jobs run.")]
fn run() {}

fn main() {}
