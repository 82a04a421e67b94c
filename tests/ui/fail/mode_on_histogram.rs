use promtrack as metrics;

#[metrics::histogram("job_seconds", "Job time.", mode = "livesum")]
fn run() {}

fn main() {}
