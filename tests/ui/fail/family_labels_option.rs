use promtrack as metrics;

use promtrack::{Counter, Family};

metrics::family! {
    static JOBS: Family<[&str; 1], Counter> = ("jobs_total", "Jobs run.", labels(queue = "x"));
}

fn main() {}
