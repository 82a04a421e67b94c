use promtrack as metrics;

#[metrics::histogram("job_seconds", "Job time.", native(buckets = 3))]
fn run() {}

fn main() {}
