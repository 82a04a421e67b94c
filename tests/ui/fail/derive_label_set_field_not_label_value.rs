use promtrack as metrics;

struct Queue;

#[derive(metrics::LabelSet)]
struct Job {
    queue: Queue,
    retried: bool,
}

fn main() {}
