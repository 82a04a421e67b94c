use promtrack as metrics;

#[metrics::histogram("job_seconds", "Job time.", buckets = [0.1, 0.1, 1.0])]
fn run() {}

fn main() {}
