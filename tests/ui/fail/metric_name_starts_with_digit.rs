use promtrack as metrics;

#[metrics::gauge("1st_jobs", "Jobs.")]
fn run() {}

fn main() {}
