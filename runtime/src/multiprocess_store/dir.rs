//! The directory's security checks, and opening files in it without following symlinks.
//!
//! Threat model: another local user who can write into the directory could plant files
//! (hostile content, symlinks to files of ours, FIFOs) or replace ours. So the directory must be
//! ours and writable only by us — or carry the sticky bit, which stops others from removing or
//! renaming our files. Files are created `0600` with `O_EXCL | O_NOFOLLOW`, opened for reading
//! with `O_NOFOLLOW | O_NONBLOCK` and skipped unless they are regular files owned by us. What
//! remains possible — hostile *content* in a file we read — is the reader's job (`read.rs`).
//! Concurrent truncation of a mapped file by another user is excluded by these permissions.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Error;

/// The environment variable that opts in to a private subdirectory on a shared volume.
pub const SHARED_ENV: &str = "PROMTRACK_MULTIPROC_SHARED";

fn euid() -> u32 {
    // SAFETY: `geteuid` cannot fail.
    unsafe { libc::geteuid() }
}

/// The error refusing the directory `path`: what is wrong with it, and how to fix that.
pub(crate) fn refuse(path: &Path, problem: impl Into<String>, fix: impl Into<String>) -> Error {
    refuse_owned(path, problem.into(), fix.into())
}

/// [`refuse`] past the conversions: the formatting of the path is compiled once, not once per
/// pair of argument types.
#[inline(never)]
fn refuse_owned(path: &Path, problem: String, fix: String) -> Error {
    Error::Multiprocess {
        path: path.display().to_string(),
        problem,
        fix,
    }
}

/// Checks (and, if missing, creates) the directory; returns the directory to use: `path`, or
/// with `shared_volume` a private subdirectory `promtrack-<uid>` inside it.
pub(crate) fn prepare(path: &Path, shared_volume: bool) -> Result<PathBuf, Error> {
    if path.as_os_str().is_empty() {
        return Err(refuse(
            path,
            "the path is empty",
            "set PROMETHEUS_MULTIPROC_DIR or call promtrack::multiprocess::dir() with a directory such as /run/<app>/metrics",
        ));
    }
    if shared_volume {
        ensure_exists(path)?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| io_refuse(path, e))?;
        if !meta.is_dir() {
            return Err(refuse(
                path,
                "is not a directory (or is a symlink)",
                "point at the real directory",
            ));
        }
        let private = path.join(format!("promtrack-{}", euid()));
        ensure_exists(&private)?;
        check(&private, false)?;
        return Ok(private);
    }
    ensure_exists(path)?;
    check(path, true)?;
    Ok(path.to_path_buf())
}

fn io_refuse(path: &Path, e: io::Error) -> Error {
    refuse(
        path,
        format!("cannot be read ({e})"),
        "check that the path exists and that this user may read it",
    )
}

fn ensure_exists(path: &Path) -> Result<(), Error> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| {
                refuse(
                    path,
                    format!("does not exist and cannot be created ({e})"),
                    "create it (mode 0700) or give this user write access to its parent; under systemd use RuntimeDirectory=",
                )
            }),
        Err(e) => Err(io_refuse(path, e)),
    }
}

/// Refuses a directory that is a symlink, not ours, or writable by others without the sticky
/// bit. `may_share` says whether the shared-volume opt-in is worth mentioning.
fn check(path: &Path, may_share: bool) -> Result<(), Error> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| io_refuse(path, e))?;
    let share_hint = if may_share {
        format!(
            "; on a shared volume such as a Kubernetes emptyDir (0777 without the sticky bit) opt in to a private 0700 subdirectory with Options::shared_volume(true) or {SHARED_ENV}=1"
        )
    } else {
        String::new()
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(
            path,
            "is a symlink, which another user could redirect",
            format!("point at the real directory{share_hint}"),
        ));
    }
    if !meta.is_dir() {
        return Err(refuse(path, "is not a directory", "point at a directory"));
    }
    if meta.uid() != euid() {
        return Err(refuse(
            path,
            format!(
                "is owned by uid {} but this process runs as uid {}, so its owner could tamper with the metrics files",
                meta.uid(),
                euid()
            ),
            format!("chown it to this user or use a directory of your own{share_hint}"),
        ));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(refuse(
            path,
            format!(
                "is writable by {} (mode {:o}) without the sticky bit, so others could replace the metrics files",
                if mode & 0o002 != 0 {
                    "everyone"
                } else {
                    "its group"
                },
                mode & 0o7777
            ),
            format!("chmod 0700 it (or chmod +t){share_hint}"),
        ));
    }
    Ok(())
}

/// Creates a new file, `0600`, failing if anything (a symlink included) is at `path`.
pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Opens a file for reading, without following a symlink or blocking on a FIFO, and returns it
/// only if it is a regular file owned by us.
pub(crate) fn open_for_read(path: &Path) -> io::Result<Option<File>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.uid() != euid() {
        return Ok(None);
    }
    Ok(Some(file))
}
