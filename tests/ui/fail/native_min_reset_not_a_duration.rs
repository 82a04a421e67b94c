use promtrack as metrics;

#[metrics::histogram("job_seconds", "Job time.", native(min_reset = "1 hour"))]
fn run() {}

fn main() {}
