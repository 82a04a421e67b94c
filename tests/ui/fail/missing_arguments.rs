use promtrack as metrics;

#[metrics::counter]
fn run() {}

fn main() {}
