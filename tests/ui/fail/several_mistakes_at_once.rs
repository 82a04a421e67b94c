use promtrack as metrics;

#[metrics::histogram("job-seconds", "", labels(le = "x", a = "1", a = "2"), buckets = [2.0, 1.0], color = "red")]
fn run() {}

fn main() {}
