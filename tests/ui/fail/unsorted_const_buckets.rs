use promtrack as metrics;

const BUCKETS: &[f64] = &[1.0, 0.5];

#[metrics::histogram("job_seconds", "Job time.", buckets = BUCKETS)]
fn run() {}

fn main() {}
