use promtrack as metrics;

#[derive(metrics::LabelSet)]
#[label(borrowed = "JobKey")]
struct Job {
    retried: bool,
}

#[derive(metrics::LabelSet)]
#[label(borrowed = "RequestKey")]
struct Request<'a> {
    path: std::borrow::Cow<'a, str>,
}

#[derive(metrics::LabelSet)]
#[label(borrowed = "not a name")]
struct Task {
    queue: String,
}

#[derive(metrics::LabelSet)]
#[label(borrowed = 3)]
struct Step {
    queue: String,
}

mod shadowed {
    struct String;
    impl promtrack::LabelValue for String {
        fn write_value(&self, out: &mut promtrack::labels::ValueWriter<'_>) {
            out.write_str("?")
        }
    }

    #[derive(promtrack::LabelSet)]
    struct Job {
        queue: String,
    }
}

fn main() {}
