//! Reading files a user or a manifest names: bounded in size, regular files
//! only, never blocking forever.
//!
//! A path in a manifest is input like any other: `/dev/zero` would grow the
//! host without end, a FIFO would block the reading thread until a writer
//! comes, and a socket or device has no size to check. Every read of a
//! user-named file (component images, manifests, config and secret files)
//! goes through [`read_bounded_blocking`] (the runtime has an async form), which opens without blocking, refuses
//! anything but a regular file, checks the size before reading, counts what
//! it reads (a file can grow after the check) and gives up after a timeout.
//! [`is_wasm_file`] only sniffs a file's first four bytes, opened the same
//! way and regular files only.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long reading one user-named file may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a user-named file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening or reading failed.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A device, FIFO, socket or directory was named.
    #[error("`{}` is not a regular file (it is a {kind})", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The file is larger than the limit.
    #[error("`{}` is larger than the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
    /// Reading took longer than [`READ_TIMEOUT`].
    #[error("reading `{}` did not finish within {}s", path.display(), READ_TIMEOUT.as_secs())]
    TimedOut {
        /// The file.
        path: PathBuf,
    },
}

impl FileError {
    /// Whether the file's content (its kind or size), rather than a passing
    /// condition, is what failed: reading it again elsewhere fails the same.
    pub fn is_content_error(&self) -> bool {
        matches!(self, Self::NotRegular { .. } | Self::TooLarge { .. })
    }
}

/// Reads the regular file at `path`, at most `limit` bytes, blocking the
/// calling thread (bounded by the kernel's own read of a regular file).
pub fn read_bounded_blocking(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = open_nonblocking(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    let file_type = metadata.file_type();
    if !file_type.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&file_type),
        });
    }
    let too_large = || FileError::TooLarge {
        path: path.to_path_buf(),
        limit,
    };
    if metadata.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // Read one byte past the limit: a file that grew after the check shows.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Reads a UTF-8 text file with [`read_bounded_blocking`].
pub fn read_text_bounded(path: &Path, limit: u64) -> Result<String, FileError> {
    let bytes = read_bounded_blocking(path, limit)?;
    String::from_utf8(bytes).map_err(|_| FileError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"),
    })
}

/// Whether `path` is a regular file starting with WebAssembly's `\0asm`
/// magic bytes (a component or a core module); `false` when it cannot be
/// read, which the caller's own read then reports.
pub fn is_wasm_file(path: &Path) -> bool {
    let Ok(file) = open_nonblocking(path) else {
        return false;
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; 4];
    (&file).read_exact(&mut head).is_ok() && &head == crate::component::WASM_MAGIC
}

/// Opens for reading without waiting for a FIFO's writer (`O_NONBLOCK`);
/// the flag is harmless for regular files, the only kind read afterwards.
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    options.open(path)
}

fn kind_of(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if file_type.is_fifo() {
            return "FIFO";
        }
        if file_type.is_socket() {
            return "socket";
        }
        if file_type.is_char_device() {
            return "character device";
        }
        if file_type.is_block_device() {
            return "block device";
        }
    }
    if file_type.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::RUSR).unwrap();
        for (path, kind) in [
            (Path::new("/dev/zero"), "character device"),
            (fifo.as_path(), "FIFO"),
            (dir.path(), "directory"),
        ] {
            match read_bounded_blocking(path, 1 << 20) {
                Err(error @ FileError::NotRegular { .. }) => {
                    assert!(error.to_string().contains(kind), "{error}");
                    assert!(error.is_content_error());
                }
                other => panic!("{}: {other:?}", path.display()),
            }
        }
    }

    #[test]
    fn the_size_limit_holds_and_exact_sizes_pass() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 1000]).unwrap();
        assert_eq!(read_bounded_blocking(&path, 1000).unwrap().len(), 1000);
        let error = read_bounded_blocking(&path, 999).unwrap_err();
        assert!(
            matches!(error, FileError::TooLarge { limit: 999, .. }),
            "{error}"
        );
        assert!(matches!(
            read_bounded_blocking(&dir.path().join("missing"), 10),
            Err(FileError::Io { .. })
        ));
    }
}
