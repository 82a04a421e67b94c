//! Two threads running the same loop at once, each on a CPU of its own: the harness of every
//! contended group (`counter_inc_contended`, `counter_lookup_index`'s `2_threads` cases in
//! `core.rs`, `histogram_observe_contended` in `contention.rs`).
//!
//! What a contended group measures is how a cache line moves between two cores. Left to the
//! scheduler, the two threads sometimes share a core for part of a sample (nothing moves then, and
//! the sample is fast) and sometimes migrate mid-sample (a cold cache and a slow sample), so on a
//! small machine the spread between rounds was larger than any difference between crates. Here
//! the measuring thread (criterion's own) is pinned to the first CPU this process may use and the
//! second thread to the second one, for the sample only: the measuring thread gets its old CPU set
//! back afterwards, so the groups that follow run as before. With fewer than two CPUs allowed, or
//! where pinning is refused, or with `PROMTRACK_BENCH_UNPINNED` set (to compare), both run
//! unpinned (as every group did before this harness), and `pinned()` says which it is.
//!
//! Invariant: the timed region starts after both threads have passed a barrier and ends when both
//! have finished their `iters` calls; spawning and pinning are outside it.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `work(0)` on the calling thread and `work(1)` on a second one, from a common start, and
/// returns the wall time until both have returned. Each call of `work(t)` is one thread's whole
/// loop.
pub fn run(work: impl Fn(usize) + Sync) -> Duration {
    let cpus = allowed_cpus();
    let pins = cpus.as_ref().filter(|cpus| cpus.cpus.len() >= 2);
    let restore = pins.and_then(|cpus| pin_to(cpus.cpus[0]).then_some(cpus));
    let barrier = Barrier::new(2);
    let elapsed = thread::scope(|s| {
        let other = s.spawn(|| {
            if let Some(cpus) = pins {
                pin_to(cpus.cpus[1]);
            }
            barrier.wait();
            work(1);
        });
        barrier.wait();
        let start = Instant::now();
        work(0);
        other.join().expect("the second bench thread panicked");
        start.elapsed()
    });
    if let Some(cpus) = restore {
        set_affinity(&cpus.mask);
    }
    elapsed
}

/// Whether `run` pins its two threads on this machine (printed by the groups once, so a reader of
/// the bench output knows which figures these are).
pub fn pinned() -> bool {
    allowed_cpus().is_some_and(|cpus| cpus.cpus.len() >= 2)
}

/// The calling thread's CPU set, as a mask to restore and as the list of CPUs in it.
struct Allowed {
    mask: libc::cpu_set_t,
    cpus: Vec<usize>,
}

fn allowed_cpus() -> Option<Allowed> {
    if std::env::var_os("PROMTRACK_BENCH_UNPINNED").is_some() {
        return None;
    }
    // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed; `sched_getaffinity` writes at
    // most `size_of::<cpu_set_t>()` bytes into it, and pid 0 means the calling thread.
    let mask = unsafe {
        let mut mask: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut mask) != 0 {
            return None;
        }
        mask
    };
    let cpus = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu < CPU_SETSIZE`, the number of CPUs a `cpu_set_t` holds.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &mask) })
        .collect();
    Some(Allowed { mask, cpus })
}

/// Pins the calling thread to `cpu`; false when the kernel refuses.
fn pin_to(cpu: usize) -> bool {
    // SAFETY: as in `allowed_cpus`; `cpu` came from this process's own CPU set, below CPU_SETSIZE.
    let mask = unsafe {
        let mut mask: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut mask);
        mask
    };
    set_affinity(&mask)
}

fn set_affinity(mask: &libc::cpu_set_t) -> bool {
    // SAFETY: `mask` is a whole `cpu_set_t`; pid 0 means the calling thread.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), mask) == 0 }
}
