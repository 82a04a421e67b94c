use promtrack as metrics;

use promtrack::Family;

metrics::family! {
    static JOBS: Family<(), Meter> = ("jobs_total", "Jobs run.");
}

fn main() {}
