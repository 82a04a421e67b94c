use promtrack as metrics;

#[metrics::histogram("http-latency", "Latency.")]
fn run() {}

fn main() {}
