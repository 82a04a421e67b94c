use promtrack as metrics;

#[metrics::exclude_all_metrics]
const fn health() {}

fn main() {}
