use promtrack as metrics;

#[metrics::counter("jobs_total", "  ")]
fn run() {}

fn main() {}
