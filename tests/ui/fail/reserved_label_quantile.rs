use promtrack as metrics;

#[metrics::summary("job_seconds", "Job time.", labels(quantile = "0.5"))]
fn run() {}

fn main() {}
