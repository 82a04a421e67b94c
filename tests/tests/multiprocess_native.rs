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

/// A worker killed at each store of a real reduction (the failpoint aborts it there, no exit
/// hook runs): the dead file, read as it is and then folded into the archive, keeps every
/// observation the worker acknowledged — the count, and each count in the bucket its value
/// belongs to at the schema the merge shows (the native state's own sum is checked at every
/// store by `metric/native/tests.rs`). The reduction: six buckets around 1 at schema 3,
/// then 300 (key 66) far outside the 8-cell window, so the resolution halves four times and
/// every bucket moves.
#[test]
fn a_worker_killed_inside_a_reduction_loses_no_count() {
    // (value, times): schema-3 keys -1, 0, 0, 1, 2, 3, and a negative one and zeros.
    let observed = [
        (0.9, 1),
        (0.95, 2),
        (1.0, 3),
        (1.05, 1),
        (1.1, 2),
        (1.2, 1),
        (-1.0, 2),
        (0.0, 2),
    ];
    let count: u64 = observed.iter().map(|&(_, n)| n).sum();
    let sum: f64 = observed.iter().map(|&(v, n)| v * n as f64).sum();
    let at_schema = |schema: i8| {
        let mut b = NativeBuckets {
            schema: 3,
            zero_threshold: ZERO_THRESHOLD,
            ..NativeBuckets::default()
        };
        for &(v, n) in &observed {
            if v == 0.0 {
                b.zero_count += n;
                continue;
            }
            // Schema 3: bucket k is (2^((k-1)/8), 2^(k/8)].
            let k = (8.0 * f64::log2(f64::abs(v))).ceil() as i32;
            let side = if v > 0.0 {
                &mut b.positive
            } else {
                &mut b.negative
            };
            match side.binary_search_by_key(&k, |&(k, _)| k) {
                Ok(i) => side[i].1 += n,
                Err(i) => side.insert(i, (k, n)),
            }
        }
        b.reduce_to_schema(schema);
        b
    };
    let mut killed = 0;
    for step in 1.. {
        let dir = temp_dir(&format!("natkill{step}"));
        let mut w = Worker::start(&dir);
        for &(v, n) in &observed {
            w.ok(&format!("nat only {v} {n}"));
        }
        let reply = w.send_or_death(&format!("natkill {step} 300"));
        let check = |fams: &[promtrack::model::MetricFamily], when: &str| {
            let (counts, s, native) = native_of(fams, "native_seconds");
            let extra = u64::from(reply.is_some());
            assert_eq!(counts, [count + extra], "{when}");
            assert_eq!(native.count(), count + extra, "{when}");
            // The sum shown is the series record's classic cell, which takes an observation
            // after the native state does (`metric/histogram.rs`): a worker killed in the
            // reduction that 300 set off leaves 300 out of the sum as out of the count.
            // (The worker adds each observation in turn: equal to the product's sum within
            // rounding.)
            let want = sum + 300.0 * extra as f64;
            assert!((s - want).abs() < 1e-9, "{when}: sum {s}, want {want}");
            if reply.is_none() {
                assert_eq!(
                    native,
                    at_schema(native.schema),
                    "{when}: every count in its bucket"
                );
            } else {
                assert_eq!(native.schema, -1, "{when}: halved four times");
            }
        };
        if reply.is_none() {
            killed += 1;
            let when = format!("killed at store {step}");
            check(&scrape_no_compaction(&dir), &when);
            check(&scrape(&dir), &format!("{when}, folded into the archive"));
        } else {
            // Past the last store: the reduction finished, and this was every store of it.
            let stores: u64 = reply.as_deref().unwrap().parse().unwrap();
            assert_eq!(
                stores,
                step - 1,
                "every store but the last killed the worker"
            );
            check(&scrape_no_compaction(&dir), "not killed");
            w.exit();
            std::fs::remove_dir_all(&dir).unwrap();
            break;
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(killed > 30, "{killed} stores");
}
