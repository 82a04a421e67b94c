use promtrack as metrics;

struct Queue;

#[metrics::counter("jobs_total", "Jobs run.", labels(queue = queue))]
fn run(queue: Queue) {
    let _ = queue;
}

fn main() {}
