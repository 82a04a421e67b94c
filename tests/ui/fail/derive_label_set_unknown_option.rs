use promtrack as metrics;

#[derive(metrics::LabelSet)]
struct Job {
    #[label(name = "queue")]
    q: String,
}

fn main() {}
