use promtrack as metrics;

#[metrics::counter("jobs_total", "Jobs run.")]
struct Job;

fn main() {}
