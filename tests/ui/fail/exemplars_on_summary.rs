use promtrack as metrics;

#[metrics::summary("job_seconds", "Job time.", exemplars = true)]
fn run() {}

fn main() {}
