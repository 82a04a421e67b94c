//! Native histograms across real worker processes: each worker's native state lives in its own
//! file (reduced there, never reset), and a scrape of the directory merges the workers' states
//! by Prometheus' rule — every one reduced to the lowest schema present and the widest zero
//! threshold, then added — exactly: counts, sums and buckets, with a dead worker's state folded
//! into the archive the same way.

mod multiprocess_support;
use multiprocess_support::*;

use promtrack::model::{NativeBuckets, Value};

#[test]
fn worker() {
    worker_if_asked();
}

/// client_golang's default zero threshold, 2^-128 (`NativeConfig`'s default).
const ZERO_THRESHOLD: f64 = 2.938735877055719e-39;

/// What the merge must show: every observation's bucket at schema 3 (a power of two 2^k is
/// the upper bound of bucket 8k there), reduced to `schema`.
fn expected(zero: u64, powers: &[(i32, u64)], schema: i8) -> NativeBuckets {
    let mut b = NativeBuckets {
        schema: 3,
        zero_threshold: ZERO_THRESHOLD,
        zero_count: zero,
        positive: Vec::new(),
        negative: Vec::new(),
    };
    let mut positive: Vec<(i32, u64)> = powers.iter().map(|&(k, c)| (8 * k, c)).collect();
    positive.sort();
    b.positive = positive;
    b.reduce_to_schema(schema);
    b
}

fn native_of(
    fams: &[promtrack::model::MetricFamily],
    name: &str,
) -> (Vec<u64>, f64, NativeBuckets) {
    match value(fams, name, &[]) {
        Some(Value::Histogram {
            counts,
            sum,
            native: Some(native),
            ..
        }) => (counts, sum, native),
        other => panic!("{name}: {other:?}"),
    }
}

/// Two live workers and a SIGKILLed one: worker B's spread of values makes its histogram
/// halve its resolution down to schema −2 (8 buckets at most), A and C stay finer; the merge
/// reduces them all to −2 and adds them exactly. Then the dead worker is folded into the
/// archive, and finally the live ones exit: the same histogram every time.
#[test]
fn two_live_workers_and_a_dead_one_merge_exactly() {
    let dir = temp_dir("native");
    let mut a = Worker::start(&dir);
    let mut b = Worker::start(&dir);
    let mut c = Worker::start(&dir);
    for which in ["only", "both"] {
        a.ok(&format!("nat {which} 0 2"));
        a.ok(&format!("nat {which} 1 3"));
        a.ok(&format!("nat {which} 2 1"));
        for k in 0..20 {
            b.ok(&format!("nat {which} {} 1", 2f64.powi(k)));
        }
        c.ok(&format!("nat {which} 0.5 4"));
    }
    c.kill9();
    // 2^k for k in 0..20 once each (B), 1 = 2^0 three times and 2 = 2^1 once (A), ½ = 2^-1
    // four times (C); two zeros (A).
    let mut powers: Vec<(i32, u64)> = (0..20).map(|k| (k, 1)).collect();
    powers[0].1 += 3;
    powers[1].1 += 1;
    powers.push((-1, 4));
    let want = expected(2, &powers, -2);
    assert_eq!(want.count(), 30);
    let sum = 5.0 + (2f64.powi(20) - 1.0) + 2.0;
    let check = |fams: &[promtrack::model::MetricFamily], when: &str| {
        let (counts, s, native) = native_of(fams, "native_seconds");
        assert_eq!(native, want, "{when}: merged native buckets");
        assert_eq!(counts, [30], "{when}: the count is the buckets'");
        assert_eq!(s, sum, "{when}");
        let (counts, s, native) = native_of(fams, "both_seconds");
        assert_eq!(
            native, want,
            "{when}: merged native buckets beside classic ones"
        );
        // Classic bound 1: two zeros, three 1s, four ½s and B's 1 → 10; the other 20 above.
        assert_eq!(counts, [10, 20], "{when}");
        assert_eq!(s, sum, "{when}");
    };
    let fams = scrape_no_compaction(&dir);
    check(&fams, "two live workers and a dead file");
    let fams = scrape(&dir);
    check(&fams, "the dead worker folded into the archive");
    let after = files(&dir);
    assert_eq!(after.len(), 2 + 2, "{after:?}: live + 2 files");
    assert!(after.iter().any(|f| f == "archive.db"), "{after:?}");
    a.exit();
    b.exit();
    let fams = scrape(&dir);
    check(&fams, "every worker gone, the archive alone");
    std::fs::remove_dir_all(&dir).unwrap();
}
