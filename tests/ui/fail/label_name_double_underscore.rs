use promtrack as metrics;

#[metrics::counter("jobs_total", "Jobs run.", labels(__queue = "email"))]
fn run() {}

fn main() {}
