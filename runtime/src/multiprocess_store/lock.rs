//! Advisory locks: how a process's liveness is told without any hook.
//!
//! A writer holds an exclusive `flock` on its own file for its whole life. `flock` locks belong
//! to the *open file description*, not to the process or its pid, and the kernel releases them
//! when the last descriptor closes — on any death, `SIGKILL` included. So a reader that can take
//! a *shared* lock on a file knows that its writer is gone, whatever became of its pid (reused,
//! or a pid in another container's namespace that means nothing here). Readers take the shared
//! lock only for the instant of the test, and shared locks do not exclude each other, so two
//! concurrent scrapes never make a dead file look alive to one another.
//!
//! The descriptors are opened with `O_CLOEXEC`, so a child that `exec`s does not inherit (and
//! keep alive) its parent's lock; a child that forks without `exec` drops the inherited
//! descriptor when it moves to a file of its own (see `Writer::reopen_after_fork`).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

fn flock(file: &File, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: plain system call on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(err),
        }
    }
}

/// Takes the writer's lock on its own file (never contended: the file is new).
pub(crate) fn lock_exclusive(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_EX | libc::LOCK_NB).and_then(|got| {
        if got {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "file already locked",
            ))
        }
    })
}

/// Takes an exclusive lock, waiting for it (the compaction lock at exit).
pub(crate) fn lock_exclusive_wait(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_EX).map(|_| ())
}

/// Tries an exclusive lock without waiting (the compaction lock at scrape time).
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    flock(file, libc::LOCK_EX | libc::LOCK_NB)
}

/// Whether the process that wrote `file` is still alive: it is if it still holds its lock.
pub(crate) fn is_live(file: &File) -> bool {
    match flock(file, libc::LOCK_SH | libc::LOCK_NB) {
        Ok(true) => {
            let _ = flock(file, libc::LOCK_UN);
            false
        }
        Ok(false) => true,
        // Cannot tell: treat as live, which never folds a running writer's file.
        Err(_) => true,
    }
}
