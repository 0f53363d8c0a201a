//! Replacing a file or a whole adapter directory as one unit.
//!
//! A directory save writes a complete sibling directory
//! `.<name>.rlora-new-<pid>-<nonce>` (created exclusively), syncs its files
//! and itself, then swaps it in: on Linux with one
//! `renameat2(RENAME_EXCHANGE)` when the target exists (the old checkpoint
//! then sits under the temporary name and is removed), with one `rename`
//! when it does not. Where the exchange is not available (another OS, or a
//! file system without it), the old directory is first renamed aside to
//! `.<name>.rlora-old-<pid>-<nonce>` and the new one renamed in; there a
//! kill between the two renames leaves the previous checkpoint under that
//! hidden name rather than at the target.
//!
//! Leftovers of a killed save are hidden siblings that no load looks at
//! (named as the crate's single-file writer names its temporaries);
//! the next save into the same target removes those whose process is gone
//! (on Linux, where that can be told from `/proc`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::atomic::{self, clean_leftovers, in_progress, leftover_prefix, nonce, sync_dir};

use super::error::CheckpointError;

/// A failure to inject into a save, for tests: at step `n` (counted from 0
/// over every file-system operation of the save), either fail with an I/O
/// error (the save cleans up) or stop dead as if the process were killed
/// (nothing is cleaned up). Public with the feature `testing` only; without
/// it only `None` is ever built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub enum InjectFault {
    /// No fault.
    None,
    /// An I/O error at this step.
    Error(usize),
    /// A kill at this step.
    Kill(usize),
}

/// Counts steps and fires the injected fault.
pub(crate) struct Steps {
    n: usize,
    fault: InjectFault,
    /// True once the fault fired.
    pub(crate) fired: bool,
}

enum Stop {
    Fail(std::io::Error),
    Kill,
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Fail(e)
    }
}

impl Steps {
    pub(crate) fn new(fault: InjectFault) -> Self {
        Self {
            n: 0,
            fault,
            fired: false,
        }
    }

    /// Run one step `f`, unless the fault is due here.
    fn run<T>(&mut self, what: &str, f: impl FnOnce() -> std::io::Result<T>) -> Result<T, Stop> {
        let n = self.n;
        self.n += 1;
        match self.fault {
            InjectFault::Error(k) if k == n => {
                self.fired = true;
                return Err(Stop::Fail(std::io::Error::other(format!(
                    "{what}: injected failure"
                ))));
            }
            InjectFault::Kill(k) if k == n => {
                self.fired = true;
                return Err(Stop::Kill);
            }
            _ => {}
        }
        f().map_err(|e| Stop::Fail(std::io::Error::new(e.kind(), format!("{what}: {e}"))))
    }
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        // The file system or kernel cannot exchange: fall back to two renames.
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => Ok(false),
        _ => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<bool> {
    Ok(false)
}

fn split(target: &Path) -> Result<(PathBuf, String), CheckpointError> {
    atomic::split(target).map_err(|e| CheckpointError::io(target, e))
}

/// Check that replacing `target` loses nothing but the files `ours`.
fn check_replaceable(target: &Path, ours: &[&str]) -> Result<bool, CheckpointError> {
    let meta = match std::fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(CheckpointError::io(target, e)),
    };
    let lose = |reason: String| CheckpointError::WouldLoseData {
        action: format!("replace {}", target.display()),
        reason,
    };
    if !meta.is_dir() {
        return Err(lose(
            "it is not a directory (an adapter directory is replaced as a whole)".into(),
        ));
    }
    let entries = std::fs::read_dir(target).map_err(|e| CheckpointError::io(target, e))?;
    let mut others = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CheckpointError::io(target, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !ours.contains(&name.as_str()) {
            others.push(name);
        }
    }
    if !others.is_empty() {
        others.sort();
        return Err(lose(format!(
            "it holds files that are not part of an adapter checkpoint ({}), and an adapter \
             directory is replaced as a whole; save into an empty or new directory",
            others.join(", ")
        )));
    }
    Ok(true)
}

/// Replace the directory `target` by one holding exactly `files`, as one
/// unit (see the [module docs](self)). Returns whether the injected fault fired.
pub(crate) fn replace_dir(
    target: &Path,
    files: &[(&str, &[u8])],
    fault: InjectFault,
) -> (Result<(), CheckpointError>, bool) {
    let mut steps = Steps::new(fault);
    let result = replace_dir_steps(target, files, &mut steps);
    (result, steps.fired)
}

fn replace_dir_steps(
    target: &Path,
    files: &[(&str, &[u8])],
    steps: &mut Steps,
) -> Result<(), CheckpointError> {
    let (parent, name) = split(target)?;
    let fail = |e: std::io::Error| CheckpointError::io(target, e);
    let killed = || fail(std::io::Error::other("save stopped (injected kill)"));
    let stop = |s: Stop| match s {
        Stop::Fail(e) => fail(e),
        Stop::Kill => killed(),
    };
    steps
        .run("create the parent directory", || {
            std::fs::create_dir_all(&parent)
        })
        .map_err(stop)?;
    let ours: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    let exists = check_replaceable(target, &ours)?;
    clean_leftovers(&parent, Some(&name));
    let tmp = parent.join(format!("{}new-{}", leftover_prefix(&name), nonce()));
    in_progress(&tmp, true);
    let result = swap_in(target, &parent, &name, &tmp, files, exists, steps);
    in_progress(&tmp, false);
    match result {
        Ok(()) => Ok(()),
        Err(Stop::Kill) => Err(killed()),
        Err(Stop::Fail(e)) => {
            if tmp.exists() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            Err(fail(e))
        }
    }
}

fn swap_in(
    target: &Path,
    parent: &Path,
    name: &str,
    tmp: &Path,
    files: &[(&str, &[u8])],
    exists: bool,
    steps: &mut Steps,
) -> Result<(), Stop> {
    steps.run("create a temporary directory", || std::fs::create_dir(tmp))?;
    for (file, bytes) in files {
        let path = tmp.join(file);
        let mut f = steps.run("create a file", || File::create_new(&path))?;
        steps.run("write a file", || f.write_all(bytes))?;
        steps.run("sync a file", || f.sync_all())?;
    }
    steps.run("sync the temporary directory", || sync_dir(tmp))?;
    if !exists {
        steps.run("rename the new directory into place", || {
            std::fs::rename(tmp, target)
        })?;
        return steps.run("sync the parent directory", || sync_dir(parent));
    }
    let exchanged = steps.run("exchange the new and the old directory", || {
        exchange(tmp, target)
    })?;
    let old = if exchanged {
        tmp.to_path_buf()
    } else {
        let old = parent.join(format!("{}old-{}", leftover_prefix(name), nonce()));
        in_progress(&old, true);
        let moved = steps
            .run("move the old directory aside", || {
                std::fs::rename(target, &old)
            })
            .and_then(|_| {
                steps
                    .run("rename the new directory into place", || {
                        std::fs::rename(tmp, target)
                    })
                    .inspect_err(|_| {
                        // Put the old checkpoint back.
                        let _ = std::fs::rename(&old, target);
                    })
            });
        in_progress(&old, false);
        moved?;
        old
    };
    steps.run("sync the parent directory", || sync_dir(parent))?;
    // The new checkpoint is in place: failing to remove the old one only leaves a leftover.
    match steps.run("remove the old directory", || std::fs::remove_dir_all(&old)) {
        Err(Stop::Kill) => Err(Stop::Kill),
        _ => Ok(()),
    }
}

/// Write a single file atomically (the crate's one writer,
/// `crate::write_atomically`); errors name `path`.
pub(crate) fn write_file(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), CheckpointError> {
    atomic::write_with(path, write).map_err(|e| CheckpointError::io(path, e))
}
