use promtrack as metrics;

#[metrics::counter("jobs_total", "Jobs run.", labels("queue-name" = "email"))]
fn run() {}

fn main() {}
