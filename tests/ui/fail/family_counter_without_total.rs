use promtrack as metrics;

use promtrack::{Counter, Family};

metrics::family! {
    static JOBS: Family<(), Counter> = ("jobs", "Jobs run.");
}

fn main() {}
