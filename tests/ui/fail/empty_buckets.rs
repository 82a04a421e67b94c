use promtrack as metrics;

#[metrics::histogram("job_seconds", "Job time.", buckets = [])]
fn run() {}

fn main() {}
