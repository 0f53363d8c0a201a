//! Writing a file as one unit: the one atomic writer of the crate.
//!
//! [`write_atomically`] writes into a hidden sibling
//! `.<name>.rlora-file-<pid>-<nonce>`, created exclusively, syncs it, renames
//! it over the target and syncs the directory. A failure removes the
//! temporary file; a kill leaves it behind under that hidden name, which no
//! reader looks at, and the next write of the same file (or
//! [`remove_leftovers_in`] for a whole directory) removes the ones whose
//! process is gone (on Linux, where that can be told from `/proc`).
//!
//! Adapter-directory saves (`checkpoint`) use the same names, with `new-` and
//! `old-` in place of `file-`, and the same clean-up.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Write `bytes` to `path` so that `path` holds either its previous content
/// or all of `bytes`, never a part, even if the process is killed: a
/// temporary file in the same directory (created exclusively), synced, then
/// renamed over `path`, and the directory synced. Missing parent directories
/// are created; leftovers of earlier killed writes of the same file are
/// removed first.
///
/// # Errors
///
/// Any I/O error, with its kind kept and `path` in its message; the temporary
/// file is removed and `path` is untouched.
///
/// # Example
///
/// ```
/// let dir = std::env::temp_dir().join(format!("rlora-doc-atomic-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("result.json");
/// burn_rlora::write_atomically(&path, b"{}").unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"{}");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_atomically(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    let path = path.as_ref();
    write_with(path, |f| f.write_all(bytes))
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

/// [`write_atomically`] with the content produced by `write` into the open
/// temporary file; the error is the bare I/O error (callers name the path).
pub(crate) fn write_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let (parent, name) = split(path)?;
    std::fs::create_dir_all(&parent)?;
    clean_leftovers(&parent, Some(&name));
    let tmp = parent.join(format!("{}file-{}", leftover_prefix(&name), nonce()));
    in_progress(&tmp, true);
    let result = File::create_new(&tmp)
        .and_then(|mut f| {
            write(&mut f)?;
            f.sync_all()
        })
        .and_then(|_| std::fs::rename(&tmp, path));
    in_progress(&tmp, false);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Persist the rename; not every platform can sync a directory.
    let _ = sync_dir(&parent);
    Ok(())
}

/// Split `target` into its directory (`.` when it has none) and its name.
pub(crate) fn split(target: &Path) -> io::Result<(PathBuf, String)> {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path must end in a UTF-8 file or directory name",
            )
        })?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_string()))
}

/// Temporary paths of writes in progress in this process.
static IN_PROGRESS: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
static NONCE: AtomicU64 = AtomicU64::new(0);

/// Mark `path` as a temporary of a write in progress here (`add`), or not.
pub(crate) fn in_progress(path: &Path, add: bool) {
    if let Ok(mut set) = IN_PROGRESS.lock() {
        let set = set.get_or_insert_with(HashSet::new);
        if add {
            set.insert(path.to_path_buf());
        } else {
            set.remove(path);
        }
    }
}

fn is_in_progress(path: &Path) -> bool {
    IN_PROGRESS
        .lock()
        .map(|s| s.as_ref().is_some_and(|s| s.contains(path)))
        .unwrap_or(true)
}

/// A name part unique to this write: the process id, the time and a counter.
pub(crate) fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{:x}{:x}",
        std::process::id(),
        t,
        NONCE.fetch_add(1, Ordering::Relaxed)
    )
}

/// The start of the names of the temporaries of writes of `name`.
pub(crate) fn leftover_prefix(name: &str) -> String {
    format!(".{name}{MARK}")
}

const MARK: &str = ".rlora-";
/// The marker of the temporary files of earlier versions of the trainer's
/// checkpoint writer: `.<name>.partial-<pid>`.
const LEGACY_MARK: &str = ".partial-";

fn process_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// The writer's process id if `file_name` is a temporary of a write of
/// `name` (any name when `None`).
fn leftover_pid(file_name: &str, name: Option<&str>) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?;
    // The marker right after the name, or after any name.
    let after = |mark: &str| match name {
        Some(name) => rest.strip_prefix(name)?.strip_prefix(mark),
        None => rest.find(mark).map(|at| &rest[at + mark.len()..]),
    };
    if let Some(rest) = after(MARK) {
        return ["new-", "old-", "file-"]
            .iter()
            .find_map(|k| rest.strip_prefix(k))
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse().ok());
    }
    // No writer uses the legacy names any more: whatever the id, the
    // writer is gone (0 reads as a process that never exists).
    after(LEGACY_MARK)?.parse::<u32>().ok().map(|_| 0)
}

/// Remove the leftovers of killed writes of `parent/name` (of any file in
/// `parent` when `name` is `None`) whose process is gone (best effort).
pub(crate) fn clean_leftovers(parent: &Path, name: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|n| leftover_pid(n, name)) else {
            continue;
        };
        let path = entry.path();
        let dead = if pid == std::process::id() {
            !is_in_progress(&path)
        } else {
            !process_alive(pid)
        };
        if dead {
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Remove what killed writes left in `dir`, of any file (best effort).
#[cfg_attr(not(feature = "train"), allow(dead_code))]
pub(crate) fn remove_leftovers_in(dir: &Path) {
    clean_leftovers(dir, None);
}

/// Sync a directory, so that renames in it persist.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        // Not every platform can open or sync a directory.
        Err(_) if cfg!(not(unix)) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rlora-atomic-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn failed_write_leaves_previous_file_and_no_temp() {
        let dir = scratch("fail");
        let path = dir.join("file.bin");
        write_with(&path, |f| f.write_all(b"previous")).unwrap();
        let err = write_with(&path, |f| {
            f.write_all(b"half of the new con")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).unwrap(), b"previous");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "the temporary file was not removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_name_the_path_and_keep_the_kind() {
        let dir = scratch("kind");
        write_atomically(dir.join("new").join("file.bin"), b"x").unwrap();
        assert_eq!(std::fs::read(dir.join("new/file.bin")).unwrap(), b"x");
        let below = dir.join("new").join("file.bin").join("below");
        let err = write_atomically(&below, b"x").unwrap_err();
        assert!(err.to_string().contains("file.bin/below"), "{err}");
        let err = write_atomically(Path::new(".."), b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn leftovers_of_dead_writers_are_removed_and_others_kept() {
        let dir = scratch("left");
        // No process has the id u32::MAX - 1; this one's own temporaries that
        // are not in progress are dead too.
        let dead = u32::MAX - 1;
        let me = std::process::id();
        let names = [
            format!(".a.json.rlora-file-{dead}-1f"),
            // A legacy name: removed whatever its id (1 is always alive).
            ".a.json.partial-1".to_string(),
            format!(".a.json.rlora-file-{me}-2f"),
            format!(".b.json.rlora-file-{dead}-3f"),
            // Not temporaries: kept whatever happens.
            "a.json".to_string(),
            ".a.json.rlora-file-notapid".to_string(),
            "notes.partial-1".to_string(),
            format!(".a.json.bak.rlora-file-{dead}-4f"),
        ];
        for n in &names {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        write_atomically(dir.join("a.json"), b"new").unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let b = format!(".b.json.rlora-file-{dead}-3f");
        let bak = format!(".a.json.bak.rlora-file-{dead}-4f");
        let mut expected = vec![
            b.clone(),
            bak.clone(),
            ".a.json.rlora-file-notapid".to_string(),
            "a.json".to_string(),
            "notes.partial-1".to_string(),
        ];
        expected.sort();
        assert_eq!(
            left, expected,
            "writing a.json cleans only a.json's leftovers"
        );
        remove_leftovers_in(&dir);
        assert!(
            !dir.join(&b).exists(),
            "a whole-directory clean-up removes b's"
        );
        assert!(!dir.join(&bak).exists());
        assert_eq!(std::fs::read(dir.join("a.json")).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
