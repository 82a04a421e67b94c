use promtrack as metrics;

#[metrics::histogram("job_seconds", "Job time.", native(max_buckets = 0, zero_threshold = -1.0))]
fn run() {}

fn main() {}
