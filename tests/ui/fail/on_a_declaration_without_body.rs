use promtrack as metrics;

trait Jobs {
    #[metrics::counter("jobs_total", "Jobs run.")]
    fn run(&self);
}

fn main() {}
