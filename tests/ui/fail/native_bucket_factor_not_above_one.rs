use promtrack as metrics;

#[metrics::histogram("job_seconds", "Job time.", native(bucket_factor = 0.9))]
fn run() {}

fn main() {}
