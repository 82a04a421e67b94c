use promtrack as metrics;

#[metrics::histogram("job_seconds", "Job time.", buckets = [0.1, 1e400])]
fn run() {}

fn main() {}
