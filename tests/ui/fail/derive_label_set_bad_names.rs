use promtrack as metrics;

#[derive(metrics::LabelSet)]
struct Job {
    #[label(rename = "le")]
    bucket: String,
    #[label(rename = "kind")]
    queue: String,
    kind: String,
}

fn main() {}
