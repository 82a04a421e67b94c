use promtrack as metrics;

#[metrics::histogram("job_seconds", "Job time.", native(max_buckets = 10, max_buckets = 20), native)]
fn run() {}

fn main() {}
