use promtrack as metrics;

#[derive(metrics::LabelValue)]
struct Queue {
    name: String,
}

fn main() {}
