use promtrack as metrics;

#[derive(metrics::LabelSet)]
struct Job(String, bool);

fn main() {}
