use promtrack as metrics;

#[metrics::summary("", "Latency.")]
fn run() {}

fn main() {}
