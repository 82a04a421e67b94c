use promtrack as metrics;

#[metrics::gauge("jobs_running", "Jobs running.", labels(ok = |r: &bool| *r))]
fn run() -> bool {
    true
}

fn main() {}
