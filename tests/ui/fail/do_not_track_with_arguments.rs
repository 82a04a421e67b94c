use promtrack as metrics;

#[metrics::do_not_track(paths = "/health")]
async fn health() {}

fn main() {}
