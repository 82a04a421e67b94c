use promtrack as metrics;

#[derive(metrics::LabelValue)]
#[label(rename_all = "snake")]
enum Queue {
    Email,
}

fn main() {}
