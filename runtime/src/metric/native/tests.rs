//! The native state's rules at their bounds, its exactness under threads, and the pure
//! functions on `NativeBuckets`, each checked against buckets computed directly from the
//! observed values.

use super::*;
use crate::exponential::key;

thread_local! {
    /// Set on a thread that rewrites: each rewrite there moves the windows by this much.
    pub(super) static SHIFT: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
    /// Set on a thread whose reductions are watched: a copy of the cells after each store.
    static COPIES: std::cell::RefCell<Option<Vec<Vec<u64>>>> = const { std::cell::RefCell::new(None) };
}

/// Called at each store of a reduction ([`Native::step`]): copies the cells, as a reader of a
/// writer killed right there would find them.
pub(super) fn at_step(n: &Native<'_>) {
    COPIES.with(|c| {
        if let Some(copies) = c.borrow_mut().as_mut() {
            let len = layout::len(n.window());
            copies.push((0..len).map(|i| n.at(i).load(Ordering::Relaxed)).collect());
        }
    });
}

/// The buckets `values` fall in at `schema` with zero threshold `zt`, computed directly.
fn direct(values: &[f64], schema: i8, zt: f64) -> NativeBuckets {
    let mut b = NativeBuckets {
        schema,
        zero_threshold: zt,
        ..NativeBuckets::default()
    };
    let mut pos = std::collections::BTreeMap::new();
    let mut neg = std::collections::BTreeMap::new();
    for &v in values {
        if v.abs() <= zt {
            b.zero_count += 1;
        } else if v > 0.0 {
            *pos.entry(key(v, schema)).or_insert(0u64) += 1;
        } else {
            *neg.entry(key(-v, schema)).or_insert(0u64) += 1;
        }
    }
    b.positive = pos.into_iter().collect();
    b.negative = neg.into_iter().collect();
    b
}

fn series(config: &NativeConfig) -> Cells {
    let cells = Cells::heap(layout::len(config.max_buckets as usize));
    assert!(Native::new(&cells, 0).init(config, true));
    cells
}

fn read(cells: &Cells) -> Snapshot {
    Native::new(cells, 0).snapshot(&mut Vec::new())
}

#[test]
fn observations_land_in_their_buckets() {
    let cells = series(&NativeConfig::default().bucket_factor(2.0));
    let n = Native::new(&cells, 0);
    let values = [1.5, 3.0, 3.5, 0.0, -2.0, 1e-300, 0.001, 1000.0];
    for v in values {
        n.observe(v);
    }
    let s = read(&cells);
    assert_eq!(s.buckets, direct(&values, 0, DEFAULT_ZERO_THRESHOLD));
    assert_eq!(s.buckets.zero_count, 2, "0 and 1e-300");
    assert_eq!(s.buckets.negative, [(1, 1)]);
    assert_eq!(s.buckets.positive, [(-9, 1), (1, 1), (2, 2), (10, 1)]);
    assert_eq!((s.count, s.sum), (values.len() as u64, values.iter().sum()));

    // Infinity goes one bucket past f64::MAX's.
    let cells = series(&NativeConfig::default().bucket_factor(2.0));
    Native::new(&cells, 0).observe(f64::MAX);
    Native::new(&cells, 0).observe(f64::INFINITY);
    let s = read(&cells);
    assert_eq!(s.buckets.positive, [(1024, 1), (1025, 1)]);
    assert_eq!(s.sum, f64::INFINITY);
}

#[test]
fn the_default_schema_is_three_and_the_window_moves_to_the_values() {
    let config = NativeConfig::default().max_buckets(8);
    assert_eq!(config.schema(), 3);
    let cells = series(&config);
    let n = Native::new(&cells, 0);
    // Eight adjacent buckets far from 1: the window moves there without reducing.
    let values: Vec<f64> = (0..8).map(|i| 1e6 * 1.0905f64.powi(i)).collect();
    for &v in &values {
        n.observe(v);
    }
    let s = read(&cells);
    assert_eq!(s.buckets.schema, 3, "nothing was reduced");
    assert_eq!(s.buckets, direct(&values, 3, DEFAULT_ZERO_THRESHOLD));
    assert_eq!(s.buckets.positive.len(), 8);
}

#[test]
fn past_max_buckets_the_resolution_halves() {
    let cells = series(&NativeConfig::default().bucket_factor(2.0).max_buckets(4));
    let n = Native::new(&cells, 0);
    let values = [1.5, 3.0, 6.0, 12.0];
    for v in values {
        n.observe(v);
    }
    assert_eq!(read(&cells).buckets.schema, 0, "four buckets fit");
    n.observe(24.0); // a fifth bucket: keys 1..=5 at schema 0 become 1..=3 at schema -1
    let s = read(&cells);
    let all = [1.5, 3.0, 6.0, 12.0, 24.0];
    assert_eq!(s.buckets, direct(&all, -1, DEFAULT_ZERO_THRESHOLD));
    assert_eq!(s.count, 5);
}

#[test]
fn the_zero_bucket_widens_first_up_to_its_maximum() {
    let config = NativeConfig::default()
        .bucket_factor(2.0)
        .max_buckets(4)
        .max_zero_threshold(2.0);
    let cells = series(&config);
    let n = Native::new(&cells, 0);
    for v in [1.5, 3.0, 6.0, 12.0, 24.0] {
        n.observe(v);
    }
    // The smallest bucket, (1, 2], joins the zero bucket: the threshold becomes 2.
    let s = read(&cells);
    assert_eq!(s.buckets.schema, 0);
    assert_eq!(s.buckets.zero_threshold, 2.0);
    assert_eq!(s.buckets, direct(&[1.5, 3.0, 6.0, 12.0, 24.0], 0, 2.0));
    // The next widening would pass 2: now the resolution halves.
    n.observe(48.0);
    let s = read(&cells);
    assert_eq!((s.buckets.schema, s.buckets.zero_threshold), (-1, 2.0));
    assert_eq!(s.count, 6);
}

#[test]
fn after_min_reset_a_reduction_resets_instead() {
    let config = NativeConfig::default()
        .bucket_factor(2.0)
        .max_buckets(2)
        .min_reset(Duration::from_nanos(1));
    let cells = series(&config);
    let n = Native::new(&cells, 0);
    for v in [1.5, 3.0] {
        n.observe(v);
    }
    std::thread::sleep(Duration::from_millis(2));
    n.observe(6.0);
    let s = read(&cells);
    // Reset to the configured schema, then 6.0 counted alone.
    assert_eq!(s.buckets, direct(&[6.0], 0, DEFAULT_ZERO_THRESHOLD));
    assert_eq!((s.count, s.sum), (1, 6.0));

    // With classic buckets kept, or when forbidden, no reset.
    let kept = series(&config.clone().classic(true));
    let forbidden = series(&config);
    Native::new(&forbidden, 0).forbid_reset();
    for cells in [&kept, &forbidden] {
        for v in [1.5, 3.0, 6.0] {
            Native::new(cells, 0).observe(v);
        }
        assert_eq!(read(cells).count, 3);
    }
}

#[test]
fn values_too_far_apart_for_the_window_reduce_until_they_fit() {
    let cells = series(&NativeConfig::default().max_buckets(3));
    let n = Native::new(&cells, 0);
    let values = [1e-200, 1.0, 1e200, -1e100, 5e-324, f64::MAX];
    for v in values {
        n.observe(v);
    }
    let s = read(&cells);
    assert_eq!(s.count, values.len() as u64);
    assert!(s.buckets.bucket_count() <= 3, "{:?}", s.buckets);
    assert_eq!(
        s.buckets,
        direct(&values, s.buckets.schema, s.buckets.zero_threshold)
    );
}

/// Threads observe while others force rewrites: no count is lost and every count is in the
/// bucket its value belongs to at the final schema and zero threshold.
#[test]
fn concurrent_observations_across_reductions_are_exact() {
    let per_thread = if cfg!(miri) { 200 } else { 100_000 };
    let config = NativeConfig::default()
        .bucket_factor(1.0001)
        .max_buckets(40)
        .max_zero_threshold(1e-3);
    let cells = series(&config);
    let value = |t: usize, i: usize| {
        let x = ((t * 7919 + i * 104_729) % 100_000) as f64;
        let v = (x / 1000.0 - 20.0).exp2() * if i % 5 == 0 { -1.0 } else { 1.0 };
        // Sums of these stay exact: multiples of 2^-40, well within 53 bits.
        (v * 2f64.powi(40)).round() / 2f64.powi(40)
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let rewrites = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        // Rewrites the layout (re-tagging every cell) over and over while the others observe.
        s.spawn(|| {
            let n = Native::new(&cells, 0);
            let mut shift = 0;
            // Under Miri, which interprets each rewrite's every store, a few rewrites suffice.
            let most = if cfg!(miri) { 8 } else { u64::MAX };
            while !done.load(Ordering::Relaxed) && rewrites.load(Ordering::Relaxed) < most {
                shift += 7;
                SHIFT.with(|s| s.set(Some(shift)));
                let _lock = Lock::take(n.at(layout::LOCK));
                n.rewrite(None);
                rewrites.fetch_add(1, Ordering::Relaxed);
                drop(_lock);
                std::thread::yield_now();
            }
        });
        let observers: Vec<_> = (0..4)
            .map(|t| {
                let cells = &cells;
                s.spawn(move || {
                    let n = Native::new(cells, 0);
                    for i in 0..per_thread {
                        n.observe(value(t, i));
                        if i % 1000 == 0 {
                            // A reader in the middle never sees a torn state.
                            let s = read(cells);
                            assert_eq!(s.count, s.buckets.count());
                        }
                    }
                })
            })
            .collect();
        for o in observers {
            o.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    assert!(rewrites.load(Ordering::Relaxed) > 0);
    let all: Vec<f64> = (0..4)
        .flat_map(|t| (0..per_thread).map(move |i| value(t, i)))
        .collect();
    let s = read(&cells);
    assert_eq!(s.count, all.len() as u64);
    assert!(s.buckets.schema < 8, "reductions happened");
    assert!(s.buckets.bucket_count() <= 40);
    assert_eq!(
        s.buckets,
        direct(&all, s.buckets.schema, s.buckets.zero_threshold)
    );
    let exact: f64 = all.iter().sum();
    assert!(
        (s.sum - exact).abs() <= exact.abs() * 1e-12,
        "{} vs {exact}",
        s.sum
    );
}

#[test]
fn decode_refuses_torn_and_foreign_copies() {
    let cells = series(&NativeConfig::default().max_buckets(4));
    Native::new(&cells, 0).observe(1.5);
    let mut copy: Vec<u64> = (0..cells.len())
        .map(|i| cells.at(i).load(Ordering::Relaxed))
        .collect();
    assert_eq!(decode(&copy).map(|s| s.count), Ok(1));
    let mut odd = copy.clone();
    odd[layout::GENERATION] += 1;
    assert_eq!(decode(&odd), Err(DecodeError::Torn));
    let mut stale = copy.clone();
    stale[layout::GENERATION] += 2;
    assert_eq!(decode(&stale), Err(DecodeError::Torn));
    assert_eq!(decode(&copy[..10]), Err(DecodeError::Invalid));
    assert_eq!(decode(&copy[..copy.len() - 1]), Err(DecodeError::Invalid));
    copy[layout::SCHEMA] = 9;
    assert_eq!(decode(&copy), Err(DecodeError::Invalid));
    copy[layout::SCHEMA] = 0;
    copy[layout::WINDOW] = u64::MAX;
    assert_eq!(decode(&copy), Err(DecodeError::Invalid));
    assert_eq!(decode(&[]), Err(DecodeError::Invalid));
}

#[test]
fn settings_are_validated_with_their_names() {
    assert!(NativeConfig::default().validate().is_ok());
    let err = |c: NativeConfig| c.validate().unwrap_err();
    assert!(err(NativeConfig::default().bucket_factor(1.0)).contains("bucket_factor"));
    assert!(err(NativeConfig::default().bucket_factor(f64::NAN)).contains("bucket_factor"));
    assert!(err(NativeConfig::default().max_buckets(0)).contains("max_buckets"));
    assert!(err(NativeConfig::default().max_buckets(5000)).contains("max_buckets"));
    assert!(err(NativeConfig::default().zero_threshold(-1.0)).contains("zero_threshold"));
    assert!(err(NativeConfig::default().max_zero_threshold(f64::INFINITY)).contains("max_zero"));
    assert!(
        NativeConfig::default()
            .zero_threshold(0.0)
            .validate()
            .is_ok()
    );
}

/// Merging equals bucketing the union directly at the merged schema and threshold.
#[test]
fn merge_is_exact() {
    let a: Vec<f64> = (1..200).map(|i| f64::from(i) * 0.37 - 20.0).collect();
    let b: Vec<f64> = (1..150).map(|i| f64::from(i).powi(3) * 1e-4).collect();
    for (sa, za, sb, zb) in [
        (3, 0.01, 1, 0.5),
        (8, 0.0, -2, 1e-3),
        (0, 0.3, 0, 0.3),
        (-4, 0.0, 8, 2.5),
    ] {
        let mut m = direct(&a, sa, za);
        m.merge(&direct(&b, sb, zb));
        let all: Vec<f64> = a.iter().chain(&b).copied().collect();
        assert_eq!(m.schema, sa.min(sb));
        assert!(m.zero_threshold >= za.max(zb));
        assert_eq!(
            m,
            direct(&all, m.schema, m.zero_threshold),
            "{sa} {za} {sb} {zb}"
        );
        assert_eq!(m.count(), all.len() as u64);
    }
}

#[test]
fn widening_inside_a_bucket_takes_the_whole_bucket() {
    let values = [0.3, 0.6, 1.5, 3.0, -0.7];
    let mut b = direct(&values, 0, 0.0);
    // 0.8 cuts (0.5, 1]: the threshold becomes 1 and 0.6 and -0.7 move too.
    assert_eq!(b.widen_zero_threshold(0.8), 1.0);
    assert_eq!(b, direct(&values, 0, 1.0));
    assert_eq!(b.widen_zero_threshold(0.5), 1.0, "never narrows");
    assert_eq!(b.widen_zero_threshold(f64::NAN), 1.0);
    let mut r = direct(&values, 0, 0.0);
    r.reduce_to_schema(-9);
    assert_eq!(r.schema, -4);
    assert_eq!(r, direct(&values, -4, 0.0));
}

/// An older writer (the twin form, no journal) killed inside a rewrite: while it was taking
/// the counts out (old tags left, the header unchanged) and after it wrote them back (new tags
/// under the new header), the copy reads as the counts under the header as it is; only the
/// counts it held are missing. (This build's writers keep them: see the next test.)
#[test]
fn a_dead_writers_copy_taken_inside_a_rewrite_keeps_the_counts_in_the_cells() {
    let values = [1.5, 3.0, 3.0, 0.0, -2.0];
    let b = direct(&values, 0, DEFAULT_ZERO_THRESHOLD);
    let copy = twin_state_of(&b, 7.5, 8, false).unwrap();
    let twin = |cells: &[u64], dead| decode_cells(cells, Form::Twin, dead);
    assert_eq!(twin(&copy, false).unwrap().buckets, b);
    let generation = copy[layout::GENERATION];
    // Killed while taking: the generation odd, bucket 2 (the two 3.0s) already taken.
    let mut taking = copy.clone();
    taking[layout::GENERATION] = generation + 1;
    let i = layout::first([8, 8], 0) + (2 - taking[layout::POSITIVE_OFFSET] as i64) as usize;
    taking[i] = tag(generation + 2);
    assert_eq!(twin(&taking, false), Err(DecodeError::Torn));
    let s = twin(&taking, true).unwrap();
    assert_eq!(
        s.buckets,
        direct(&[1.5, 0.0, -2.0], 0, DEFAULT_ZERO_THRESHOLD)
    );
    // Killed after writing back, before the generation turned even: every count there.
    let mut written: Vec<u64> = copy.clone();
    written[layout::GENERATION] = generation + 1;
    for c in &mut written[layout::ZERO_COUNT..] {
        *c = tag(generation + 2) | (*c & COUNT_MASK);
    }
    assert_eq!(twin(&written, false), Err(DecodeError::Torn));
    assert_eq!(twin(&written, true).unwrap(), twin(&copy, false).unwrap());
    // The same cells are no state of this release's form.
    assert_eq!(decode(&copy), Err(DecodeError::Invalid));
}

/// A forked child's copy: the layout kept, no count, no sum, the lock free; it observes on.
#[test]
fn clearing_counts_keeps_the_layout() {
    let config = NativeConfig::default().max_buckets(8);
    let cells = series(&config);
    let n = Native::new(&cells, 0);
    for v in [1.0, 1e6, 1e-6, 42.0] {
        n.observe(v); // spread: reduced below the initial schema
    }
    let before = decode(
        &(0..cells.len())
            .map(|i| cells.at(i).load(Ordering::Relaxed))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut copy: Vec<u64> = (0..cells.len())
        .map(|i| cells.at(i).load(Ordering::Relaxed))
        .collect();
    copy[layout::LOCK] = 1;
    let journal = copy.len() - layout::JOURNAL;
    copy[journal + layout::MOVE] = encode_move(layout::HEADER, 5, 1); // a parent's move
    clear_counts(&mut copy);
    assert_eq!(copy[journal..], [0; layout::JOURNAL], "the journal idle");
    let s = decode(&copy).unwrap();
    assert_eq!((s.count, s.sum), (0, 0.0));
    assert_eq!(s.buckets.schema, before.buckets.schema);
    assert!(s.buckets.schema < 3, "the spread reduced it");
    assert_eq!(copy[layout::LOCK], 0);
    let child = Cells::heap(copy.len());
    for (i, &c) in copy.iter().enumerate() {
        child.at(i).store(c, Ordering::Relaxed);
    }
    Native::new(&child, 0).observe(1.0);
    assert_eq!(read(&child).count, 1);
    let mut junk = vec![7u64; 5];
    clear_counts(&mut junk);
    assert_eq!(junk, [0; 5]);
}

/// A reduction stopped after any one of its stores, as a writer killed there leaves it: the
/// dead copy holds every count and the sum, each count in the bucket its value belongs to at
/// the copy's schema and zero threshold; a live reader calls every such copy torn. Halving
/// with the windows moved both ways and the split between them moved down and up, widening
/// the zero bucket, both signs and the zero bucket.
#[test]
fn a_reduction_killed_at_any_store_keeps_every_count_in_its_bucket() {
    let halve = NativeConfig::default().max_buckets(8);
    let widen = NativeConfig::default()
        .max_buckets(6)
        .max_zero_threshold(1.3);
    let spread: Vec<f64> = [1.0, 1.1, 1.2, 1.3, 1.31, 0.0, -1.0, -1.2, -1.25]
        .into_iter()
        .chain((0..6).map(|i| 1.0 + 0.09 * f64::from(i)))
        .collect();
    /// The config, the pending value, the shift of the reduction watched and of one before it.
    type Case<'a> = (&'a NativeConfig, Option<f64>, Option<i64>, Option<i64>);
    let mut cases: Vec<Case> = vec![
        (&halve, Some(9.0), None, None),
        (&halve, Some(9.0), Some(3), None),
        (&halve, Some(-40.0), Some(5), None),
        (&widen, Some(2.0), None, None),
    ];
    // The tests' shift also places the split: a reduction before the one watched puts it
    // elsewhere, so that the one watched moves it down or up.
    cases.extend((0..6).map(|shift| (&halve, None, Some(shift), Some(5 - shift))));
    // Miri interprets every decode of every copy: one case there (windows moved, halved).
    let cases = if cfg!(miri) { &cases[1..2] } else { &cases[..] };
    let mut splits_moved = [false; 2];
    for (case, &(config, pending, shift, prep)) in cases.iter().enumerate() {
        let cells = series(config);
        let n = Native::new(&cells, 0);
        for &v in &spread {
            n.observe(v);
        }
        if prep.is_some() {
            SHIFT.with(|s| s.set(prep));
            let _lock = Lock::take(n.at(layout::LOCK));
            n.rewrite(None);
        }
        let before = read(&cells);
        let split_before = n.windows()[0];
        assert_eq!(before.count, spread.len() as u64);
        COPIES.with(|c| *c.borrow_mut() = Some(Vec::new()));
        SHIFT.with(|s| s.set(shift));
        {
            let _lock = Lock::take(n.at(layout::LOCK));
            n.rewrite(pending);
        }
        SHIFT.with(|s| s.set(None));
        let copies = COPIES.with(|c| c.borrow_mut().take()).unwrap();
        let after = read(&cells);
        let split_after = n.windows()[0];
        if split_after != split_before {
            splits_moved[usize::from(split_after > split_before)] = true;
        }
        assert_eq!(
            after.buckets,
            direct(&spread, after.buckets.schema, after.buckets.zero_threshold)
        );
        assert!(copies.len() > 20, "case {case}: {} stores", copies.len());
        let mut moved = 0;
        for (step, copy) in copies.iter().enumerate() {
            let at = format!("case {case}, after store {}", step + 1);
            if step + 1 < copies.len() {
                assert_eq!(decode(copy), Err(DecodeError::Torn), "{at}");
            }
            let s = decode_dead(copy).unwrap_or_else(|e| panic!("{at}: {e:?}"));
            assert_eq!((s.count, s.sum), (before.count, before.sum), "{at}");
            let (schema, zt) = (s.buckets.schema, s.buckets.zero_threshold);
            assert_eq!(s.buckets, direct(&spread, schema, zt), "{at}");
            moved +=
                usize::from(schema != before.buckets.schema || zt != before.buckets.zero_threshold);
        }
        if pending.is_some() {
            assert!(
                after.buckets.schema < before.buckets.schema
                    || after.buckets.zero_threshold > before.buckets.zero_threshold,
                "case {case} reduced"
            );
            assert!(moved > 0, "case {case}: copies under the new layout");
        }
        // The state goes on after the reduction.
        n.observe(1.0);
        n.observe(-1.0);
        assert_eq!(read(&cells).count, before.count + 2);
    }
    if !cfg!(miri) {
        assert_eq!(splits_moved, [true; 2], "the split moved down and up");
    }
}

/// Both signs share the window: keys spanning `max_buckets` cells in all fit without a
/// reduction, one more cell of either sign halves the resolution; a histogram of one sign has
/// the whole window.
#[test]
fn both_signs_share_the_window() {
    let config = NativeConfig::default().bucket_factor(2.0).max_buckets(8);
    let cells = series(&config);
    let n = Native::new(&cells, 0);
    // Keys 1..=5 positive, 1..=3 negative: 8 cells.
    let values = [1.5, 3.0, 6.0, 12.0, 24.0, -1.5, -3.0, -6.0];
    for v in values {
        n.observe(v);
    }
    let s = read(&cells);
    assert_eq!(s.buckets, direct(&values, 0, DEFAULT_ZERO_THRESHOLD));
    assert_eq!(n.windows(), [5, 3]);
    n.observe(-12.0); // a ninth cell
    let all = [&values[..], &[-12.0]].concat();
    let s = read(&cells);
    assert_eq!(s.buckets, direct(&all, -1, DEFAULT_ZERO_THRESHOLD));
    assert_eq!(n.windows().iter().sum::<usize>(), 8);
    // One sign: eight cells of negative keys fit, as eight positive ones do.
    let cells = series(&config);
    let n = Native::new(&cells, 0);
    let negative: Vec<f64> = (0..8).map(|i| -(1.5 * 2f64.powi(i))).collect();
    for &v in &negative {
        n.observe(v);
    }
    assert_eq!(
        read(&cells).buckets,
        direct(&negative, 0, DEFAULT_ZERO_THRESHOLD)
    );
    assert_eq!(n.windows(), [0, 8]);
}

/// The journal's packed cells give back what was packed (a held count past 48 bits is capped).
#[test]
fn the_journal_cells_round_trip() {
    for (target, held, toggle) in [(14, 1, 0), (8206, COUNT_MASK, 1), (20, 0, 1)] {
        assert_eq!(
            decode_move(encode_move(target, held, toggle)),
            Some((target, held, toggle))
        );
    }
    assert_eq!(decode_move(0), None);
    assert_eq!(
        decode_move(encode_move(3, COUNT_MASK + 5, 0)).unwrap().1,
        COUNT_MASK
    );
    for o in [[0, 0], [-80, 7], [i64::from(i32::MIN), i64::from(i32::MAX)]] {
        assert_eq!(unpack_offsets(pack_offsets(o)), o);
    }
}

/// The bytes of a copy decode as its cells do, wherever the one populated cell is, in either
/// form and wherever the split is: the scan compares blocks of empty cells a pair at a time,
/// and windows that are not a whole number of blocks end in cells compared one by one.
#[test]
fn a_copys_bytes_decode_as_its_cells_with_a_bucket_at_any_cell() {
    // Miri runs the small windows only: every cell of 160 is minutes there.
    let windows: &[usize] = if cfg!(miri) {
        &[1, 7, 8, 13]
    } else {
        &[1, 7, 8, 13, 16, 160]
    };
    for &window in windows {
        let empty = NativeBuckets::default();
        let forms = [
            (Form::Shared, [window, 0]),
            (Form::Shared, [0, window]),
            (Form::Shared, [window / 2, window - window / 2]),
            (Form::Twin, [window, window]),
        ];
        for (form, split) in forms {
            let mut cells = match form {
                Form::Shared => state_of(&empty, 0.0, window).unwrap(),
                Form::Twin => twin_state_of(&empty, 0.0, window, true).unwrap(),
            };
            if form == Form::Shared {
                cells[layout::WINDOW] = layout::split(split[0], split[1]);
            }
            // Empty cells carry the generation's tag: the scan compares against it.
            cells[layout::GENERATION] = 8;
            let t = tag(8);
            cells[layout::ZERO_COUNT] = t;
            for c in &mut cells[layout::HEADER..layout::journal(split)] {
                *c = t;
            }
            for i in layout::HEADER..layout::journal(split) {
                let mut cells = cells.clone();
                cells[i] = t | 3;
                let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_ne_bytes()).collect();
                let want = decode_cells(&cells, form, false).unwrap();
                let at = format!("{form:?} {split:?}, cell {i}");
                assert_eq!(want.count, 3, "{at}");
                let negative = i >= layout::first(split, 1);
                assert_eq!(want.buckets.negative.len(), usize::from(negative), "{at}");
                assert_eq!(decode_bytes(&bytes, form, false).unwrap(), want, "{at}");
                assert_eq!(decode_bytes(&bytes, form, true).unwrap(), want, "{at}");
            }
        }
    }
}
