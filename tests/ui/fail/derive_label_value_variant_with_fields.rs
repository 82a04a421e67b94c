use promtrack as metrics;

#[derive(metrics::LabelValue)]
enum Queue {
    Email,
    Custom(String),
}

fn main() {}
