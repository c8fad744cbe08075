//! Bounded reads of user-named files ([`nimbus_model::files`]), and the
//! async form the host uses: off the async threads, with a timeout.

use nimbus_model::files;
use std::path::Path;

pub use nimbus_model::files::*;

/// [`read_bounded_blocking`](nimbus_model::files::read_bounded_blocking) off the async threads, given up after
/// [`READ_TIMEOUT`](nimbus_model::files::READ_TIMEOUT).
pub async fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, files::FileError> {
    let owned = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || files::read_bounded_blocking(&owned, limit));
    match tokio::time::timeout(files::READ_TIMEOUT, read).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(files::FileError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(join.to_string()),
        }),
        Err(_) => Err(files::FileError::TimedOut {
            path: path.to_path_buf(),
        }),
    }
}
