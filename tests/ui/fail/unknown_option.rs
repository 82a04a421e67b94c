use promtrack as metrics;

#[metrics::counter("jobs_total", "Jobs run.", label(queue = "email"))]
fn run() {}

fn main() {}
