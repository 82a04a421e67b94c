use promtrack as metrics;

#[metrics::gauge("jobs_running", "Jobs running.", exemplars = false)]
fn run() {}

fn main() {}
