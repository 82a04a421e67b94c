//! Exact sums of floating-point totals (a counter's fractional part, a histogram's or a
//! summary's sum), so that a float total never goes backwards when a file changes group.
//!
//! A scrape adds every file's value, the archive's included; a compaction replaces some files
//! by their sum inside the archive. Added one rounding at a time, the same values grouped
//! another way can give a result one ulp lower, and Prometheus takes any decrease of a counter
//! (or of a histogram's `_sum`) for a reset: `rate()` then jumps by the whole total. So:
//! - aggregation keeps the exact sum, as Shewchuk's non-overlapping partials (the algorithm of
//!   Python's `math.fsum`), and a scrape exposes it rounded once, to nearest: the same exact
//!   sum gives the same value however it was grouped, and a larger one never a smaller value;
//! - a compaction stores the archive's sum rounded *up*, so that the archive is never below
//!   the exact sum of what it absorbed and no later scrape can fall below an earlier one. The
//!   price is at most one ulp per compaction, upwards.
//!
//! Invariant: `Partials` holds non-overlapping finite values in increasing magnitude, none
//! zero, whose exact sum is the sum of everything added — or, once a non-finite value was
//! added or an intermediate sum overflowed, one non-finite value (plain float semantics).

/// The exact sum of the values added so far.
#[derive(Clone, Debug, Default)]
pub(crate) struct Partials(Vec<f64>);

impl Partials {
    /// Whether nothing (or only zeros) was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `x` exactly (Shewchuk's grow-expansion).
    pub(crate) fn add(&mut self, mut x: f64) {
        if x == 0.0 {
            return;
        }
        let p = &mut self.0;
        if p.len() == 1 && !p[0].is_finite() {
            p[0] += x;
            return;
        }
        if !x.is_finite() {
            p.clear();
            p.push(x);
            return;
        }
        let mut kept = 0;
        for j in 0..p.len() {
            let mut y = p[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            if !hi.is_finite() {
                // Overflow: no finite sum to keep exact.
                p.clear();
                p.push(hi);
                return;
            }
            let lo = y - (hi - x);
            if lo != 0.0 {
                p[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        p.truncate(kept);
        if x != 0.0 {
            p.push(x);
        }
    }

    /// The sum rounded to nearest, ties to even (CPython's `math.fsum`, final step).
    pub(crate) fn round_nearest(&self) -> f64 {
        let p = &self.0;
        let Some((&top, rest)) = p.split_last() else {
            return 0.0;
        };
        let mut hi = top;
        let mut lo = 0.0;
        let mut n = rest.len();
        // From the top, until the sum becomes inexact.
        while n > 0 {
            let x = hi;
            let y = p[n - 1];
            n -= 1;
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        // Half-way between two floats, with more below of the same sign: not a tie after all.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        hi
    }

    /// The smallest float not below the sum.
    pub(crate) fn round_up(&self) -> f64 {
        let near = self.round_nearest();
        if !near.is_finite() {
            return near;
        }
        let mut rest = self.clone();
        rest.add(-near);
        // Non-overlapping partials: the largest one carries the sign of their sum.
        match rest.0.last() {
            Some(&r) if r > 0.0 => next_up(near),
            _ => near,
        }
    }
}

/// The next float above a finite `x` (`f64::next_up`, stable only since Rust 1.86).
fn next_up(x: f64) -> f64 {
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let bits = x.to_bits();
    f64::from_bits(if x > 0.0 { bits + 1 } else { bits - 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(values: &[f64]) -> Partials {
        let mut p = Partials::default();
        for &v in values {
            p.add(v);
        }
        p
    }

    #[test]
    fn grouping_does_not_change_the_rounded_sum() {
        let half_ulp = 2f64.powi(-53);
        // One rounding at a time: (1 + h) + h == 1.0, but h + h + 1 == 1 + 2h.
        assert_eq!(1.0 + half_ulp + half_ulp, 1.0);
        assert_eq!(
            sum(&[1.0, half_ulp, half_ulp]).round_nearest(),
            1.0 + 2.0 * half_ulp
        );
        assert_eq!(
            sum(&[half_ulp, 1.0, half_ulp]).round_nearest(),
            1.0 + 2.0 * half_ulp
        );
        let values = [0.1, 0.2, 0.3, 1e16, -1e16, 7e-17, 3.5, 1e-300];
        let expect = sum(&values).round_nearest();
        let mut rotated = values;
        for _ in 0..values.len() {
            rotated.rotate_left(1);
            assert_eq!(sum(&rotated).round_nearest(), expect);
        }
        assert_eq!(sum(&[0.1, 0.2]).round_nearest(), 0.30000000000000004);
        assert_eq!(sum(&[1e16, 1.0, -1e16]).round_nearest(), 1.0);
    }

    #[test]
    fn ties_round_to_even_across_partials() {
        let ulp = f64::EPSILON; // of 1.0
        // 1 + ulp/2 is a tie (to 1.0); a little more above it is not.
        assert_eq!(sum(&[1.0, ulp / 2.0]).round_nearest(), 1.0);
        assert_eq!(sum(&[1.0, ulp / 2.0, 1e-30]).round_nearest(), 1.0 + ulp);
        assert_eq!(sum(&[1.0, ulp / 2.0, -1e-30]).round_nearest(), 1.0);
    }

    #[test]
    fn round_up_is_never_below_the_exact_sum_and_exact_when_representable() {
        let ulp = f64::EPSILON;
        assert_eq!(sum(&[1.0, ulp / 2.0]).round_up(), 1.0 + ulp);
        assert_eq!(sum(&[1.0, ulp]).round_up(), 1.0 + ulp);
        assert_eq!(sum(&[1.0, -ulp / 4.0]).round_up(), 1.0);
        assert_eq!(sum(&[0.1, 0.2]).round_up(), 0.30000000000000004);
        assert_eq!(sum(&[-1.0, -ulp / 4.0]).round_up(), -1.0);
        assert_eq!(sum(&[]).round_up(), 0.0);
        assert_eq!(
            sum(&[f64::MIN_POSITIVE / 4.0]).round_up(),
            f64::MIN_POSITIVE / 4.0
        );
    }

    #[test]
    fn non_finite_values_keep_float_semantics() {
        assert_eq!(
            sum(&[1.0, f64::INFINITY, 2.0]).round_nearest(),
            f64::INFINITY
        );
        assert!(sum(&[f64::INFINITY, f64::NEG_INFINITY]).round_up().is_nan());
        assert_eq!(sum(&[f64::MAX, f64::MAX]).round_nearest(), f64::INFINITY);
        assert!(sum(&[1.0, f64::NAN]).round_nearest().is_nan());
    }
}
