//! Exemplar slots in a process's file: the six cells one exemplar takes, how a process writes
//! one so that no reader ever takes a torn exemplar, and how a reader decodes one.
//!
//! A slot (cell indices below) is an [`EXT_EXEMPLARS`](super::file::EXT_EXEMPLARS) record's
//! run of 6 cells: one per classic bucket (`+Inf` included) of a histogram series, one for a
//! counter series. The record is appended at a series' first exemplar
//! ([`Writer::attach`](super::file::Writer::attach)), so series without exemplars pay nothing.
//!
//! Invariants:
//! - [`SEQ`] is a sequence lock: 0 while the slot never held an exemplar, odd while a write is
//!   in progress, even (and non-zero) once one is complete. A writer takes the slot by moving
//!   it from even to odd with a compare-exchange — a concurrent writer of the same slot finds
//!   it odd and gives its exemplar up (exemplars are samples: one lost is one of many) — and
//!   releases it with a release store of the next even number.
//! - A reader copies files with `pread` (`read.rs`), not through atomics: it takes a slot only
//!   from a copy whose sequence is even and non-zero and that two consecutive reads of the
//!   slot agree on byte for byte (`read.rs`'s agreement, with no word-at-a-time last resort
//!   for slots: a slot that never holds still is left out of that scrape).

use std::sync::atomic::{AtomicU64, Ordering, fence};

/// Cells per slot.
pub(crate) const LEN: usize = 6;
/// The sequence lock.
pub(crate) const SEQ: usize = 0;
/// The observed value (`f64`; 1 for a counter's increment by one).
pub(crate) const VALUE: usize = 1;
/// Unix time of the observation, in nanoseconds.
pub(crate) const TIME: usize = 2;
/// The trace id, 16 bytes in two cells.
pub(crate) const TRACE: usize = 3;
/// The span id, 8 bytes (all zero: none).
pub(crate) const SPAN: usize = 5;

/// One exemplar as a slot holds it. The model's exemplar type (the `exemplar` work) is made
/// from this: `trace_id` and `span_id` as lowercase hex labels, the value, the timestamp.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct SlotExemplar {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) value: f64,
    /// Unix time in nanoseconds.
    pub(crate) time_ns: u64,
}

/// Writes `ex` into `slot` (the first of its [`LEN`] cells, in this process's file); returns
/// `false` if another thread is writing the same slot (the exemplar is given up).
#[allow(dead_code)] // called by the exemplar recording path once it stores into files
pub(crate) fn write(slot: &[AtomicU64; LEN], ex: &SlotExemplar) -> bool {
    let seq = slot[SEQ].load(Ordering::Relaxed);
    if seq % 2 == 1
        || slot[SEQ]
            .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
    {
        return false;
    }
    // The odd sequence is ordered before the data stores for any reader that sees them.
    fence(Ordering::Release);
    let words = encode(ex);
    for (cell, w) in slot.iter().zip(words).skip(1) {
        cell.store(w, Ordering::Relaxed);
    }
    // Even again, 2 past the last complete write (never 0: 0 means empty).
    slot[SEQ].store(seq.wrapping_add(2).max(2), Ordering::Release);
    true
}

/// The cells of a slot holding `ex` (its sequence cell left 0).
pub(crate) fn encode(ex: &SlotExemplar) -> [u64; LEN] {
    let mut w = [0; LEN];
    w[VALUE] = ex.value.to_bits();
    w[TIME] = ex.time_ns;
    w[TRACE] = u64::from_ne_bytes(ex.trace_id[..8].try_into().expect("8 bytes"));
    w[TRACE + 1] = u64::from_ne_bytes(ex.trace_id[8..].try_into().expect("8 bytes"));
    w[SPAN] = u64::from_ne_bytes(ex.span_id);
    w
}

/// The exemplar a copied slot holds: `None` if it never held one or a write was in progress.
pub(crate) fn decode(cells: &[u64]) -> Option<SlotExemplar> {
    let &[seq, value, time_ns, t0, t1, span] = cells else {
        return None;
    };
    if seq == 0 || seq % 2 == 1 {
        return None;
    }
    let mut trace_id = [0; 16];
    trace_id[..8].copy_from_slice(&t0.to_ne_bytes());
    trace_id[8..].copy_from_slice(&t1.to_ne_bytes());
    Some(SlotExemplar {
        trace_id,
        span_id: span.to_ne_bytes(),
        value: f64::from_bits(value),
        time_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(n: u8) -> SlotExemplar {
        SlotExemplar {
            trace_id: [n; 16],
            span_id: [n + 1; 8],
            value: f64::from(n) / 8.0,
            time_ns: 1_000 + u64::from(n),
        }
    }

    #[test]
    fn a_written_slot_decodes_to_what_was_written_and_an_empty_or_busy_one_to_none() {
        let slot: [AtomicU64; LEN] = Default::default();
        let cells = |s: &[AtomicU64; LEN]| s.each_ref().map(|c| c.load(Ordering::Relaxed));
        assert_eq!(decode(&cells(&slot)), None);
        assert!(write(&slot, &ex(3)));
        assert_eq!(decode(&cells(&slot)), Some(ex(3)));
        assert!(write(&slot, &ex(4)));
        assert_eq!(cells(&slot)[SEQ], 4);
        assert_eq!(decode(&cells(&slot)), Some(ex(4)));
        // A write in progress elsewhere: this one gives up, the reader sees nothing.
        slot[SEQ].store(5, Ordering::Relaxed);
        assert!(!write(&slot, &ex(6)));
        assert_eq!(decode(&cells(&slot)), None);
        assert_eq!(decode(&[2, 0, 0]), None, "a short slot");
    }
}
