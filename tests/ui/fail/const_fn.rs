use promtrack as metrics;

#[metrics::counter("jobs_total", "Jobs run.")]
const fn run() -> u32 {
    1
}

fn main() {}
