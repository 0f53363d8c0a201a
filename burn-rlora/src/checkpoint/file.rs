//! Reading files from untrusted places: regular files only, with a size cap.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::error::CheckpointError;

/// The default cap on the size of any file an adapter load reads (4 GiB).
///
/// A file above it is refused before it is read
/// ([`CheckpointError::FileTooLarge`]); raise it with
/// [`LoadOptions::with_max_file_bytes`](super::LoadOptions::with_max_file_bytes).
/// Loading holds the file, then every value as f64: about `1 + 8 / element
/// size` times the tensor file's size, and at most about 10 times for a
/// `.bin` whose tensors share storages (decoded elements are capped at the
/// file's size in bytes).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 << 30;

#[cfg(unix)]
fn open(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking, so that opening a FIFO returns at once (it is then refused).
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Read the whole of `path`, which must be a regular file (symlinks are
/// followed; the check is made on the opened file, which is opened without
/// blocking, so that a FIFO is refused instead of waited on) of at most
/// `max_bytes` bytes: for the files a command reads that are not adapter
/// files (a base model to merge into, say).
///
/// # Errors
///
/// [`CheckpointError::Io`], [`CheckpointError::NotRegularFile`] or
/// [`CheckpointError::FileTooLarge`], each naming `path`.
pub fn read_regular_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, CheckpointError> {
    read_file_limited(path, max_bytes)
}

/// Read the whole of `path`, which must be a regular file (symlinks are
/// followed; the check is made on the opened file, not the path) of at most
/// `max` bytes.
///
/// # Errors
///
/// [`CheckpointError::Io`], [`CheckpointError::NotRegularFile`] or
/// [`CheckpointError::FileTooLarge`], each naming `path`.
pub(crate) fn read_file_limited(path: &Path, max: u64) -> Result<Vec<u8>, CheckpointError> {
    let io = |e| CheckpointError::io(path, e);
    let file = open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(CheckpointError::NotRegularFile {
            path: path.to_path_buf(),
            kind: kind(&meta),
        });
    }
    let too_large = |size| CheckpointError::FileTooLarge {
        path: path.to_path_buf(),
        size,
        limit: max,
    };
    if meta.len() > max {
        return Err(too_large(meta.len()));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(io)?;
    if out.len() as u64 > max {
        return Err(too_large(out.len() as u64));
    }
    Ok(out)
}
