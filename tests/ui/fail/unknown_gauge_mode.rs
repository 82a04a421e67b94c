use promtrack as metrics;

#[metrics::gauge("jobs_running", "Jobs running.", mode = "live_sum")]
fn run() {}

fn main() {}
