use promtrack as metrics;

#[derive(metrics::LabelSet)]
struct Job {
    queue: String,
    retried: bool,
}

// Already the name of `Job`'s borrowed form.
struct JobRef;

// The fix: another name, or none.
#[derive(metrics::LabelSet)]
#[label(borrowed = "TaskKey")]
struct Task {
    queue: String,
}
struct TaskRef;

#[derive(metrics::LabelSet)]
#[label(borrowed = false)]
struct Step {
    queue: String,
}
struct StepRef;

fn main() {}
