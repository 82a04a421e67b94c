use promtrack as metrics;

#[metrics::counter("jobs_total", "Jobs run.", labels(queue = "email", queue = "sms"))]
fn run() {}

fn main() {}
