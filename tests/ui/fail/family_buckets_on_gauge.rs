use promtrack as metrics;

use promtrack::{Family, Gauge};

metrics::family! {
    static DEPTH: Family<(), Gauge> = ("queue_depth", "Jobs waiting.", buckets = [1.0]);
}

fn main() {}
