use promtrack as metrics;

#[metrics::histogram("job_seconds", "Job time.", labels(le = "1"))]
fn run() {}

fn main() {}
