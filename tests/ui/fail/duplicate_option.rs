use promtrack as metrics;

#[metrics::histogram("job_seconds", "Job time.", buckets = [0.1], buckets = [1.0])]
fn run() {}

fn main() {}
