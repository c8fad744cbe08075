//! In-memory byte pipes: one direction of a virtual TCP connection, seen by
//! the guest as a `wasi:io` input or output stream.
//!
//! A pipe holds at most [`CAPACITY`] unread bytes, so a writer that outruns
//! its reader waits (back-pressure) instead of growing memory. Dropping the
//! writer is end-of-stream for the reader; dropping the reader makes later
//! writes fail as a closed stream, like a reset peer.

use bytes::{Bytes, BytesMut};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{InputStream, OutputStream, StreamError, StreamResult};

/// Unread bytes one direction buffers before the writer has to wait.
pub(crate) const CAPACITY: usize = 64 * 1024;

#[derive(Default)]
struct PipeState {
    data: BytesMut,
    writer_closed: bool,
    reader_closed: bool,
}

#[derive(Default)]
struct Pipe {
    state: Mutex<PipeState>,
    // One waiter per side, so `notify_one`'s stored permit never loses a wake-up.
    readable: Notify,
    writable: Notify,
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, PipeState> {
        // The state is plain data; a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Creates one direction: what is written to the writer is read from the reader.
pub(crate) fn pipe() -> (PipeReader, PipeWriter) {
    let pipe = Arc::new(Pipe::default());
    (PipeReader(pipe.clone()), PipeWriter(pipe))
}

/// The reading end of a pipe.
pub(crate) struct PipeReader(Arc<Pipe>);

/// The writing end of a pipe.
pub(crate) struct PipeWriter(Arc<Pipe>);

/// Closes a pipe from either side without owning its end: what
/// `tcp-socket.shutdown` does to the streams the guest holds.
#[derive(Clone)]
pub(crate) struct PipeCloser(Arc<Pipe>);

impl PipeReader {
    pub(crate) fn closer(&self) -> PipeCloser {
        PipeCloser(self.0.clone())
    }
}

impl PipeWriter {
    pub(crate) fn closer(&self) -> PipeCloser {
        PipeCloser(self.0.clone())
    }
}

impl PipeCloser {
    /// No more bytes will be written: the reader sees end-of-stream once it
    /// has read what is buffered.
    pub(crate) fn close_write(&self) {
        self.0.lock().writer_closed = true;
        self.0.readable.notify_one();
    }

    /// No more bytes will be read: buffered bytes are dropped and the
    /// writer's next write fails.
    pub(crate) fn close_read(&self) {
        let mut state = self.0.lock();
        state.reader_closed = true;
        state.data.clear();
        drop(state);
        self.0.writable.notify_one();
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        PipeCloser(self.0.clone()).close_read();
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        PipeCloser(self.0.clone()).close_write();
    }
}

#[async_trait::async_trait]
impl Pollable for PipeReader {
    async fn ready(&mut self) {
        loop {
            {
                let state = self.0.lock();
                if !state.data.is_empty() || state.writer_closed || state.reader_closed {
                    return;
                }
            }
            self.0.readable.notified().await;
        }
    }
}

impl InputStream for PipeReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let mut state = self.0.lock();
        if state.reader_closed {
            return Err(StreamError::Closed);
        }
        if state.data.is_empty() {
            return if state.writer_closed {
                Err(StreamError::Closed)
            } else {
                Ok(Bytes::new())
            };
        }
        let n = size.min(state.data.len());
        let bytes = state.data.split_to(n).freeze();
        drop(state);
        self.0.writable.notify_one();
        Ok(bytes)
    }
}

#[async_trait::async_trait]
impl Pollable for PipeWriter {
    async fn ready(&mut self) {
        loop {
            {
                let state = self.0.lock();
                if state.reader_closed || state.writer_closed || state.data.len() < CAPACITY {
                    return;
                }
            }
            self.0.writable.notified().await;
        }
    }
}

impl OutputStream for PipeWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let mut state = self.0.lock();
        if state.reader_closed || state.writer_closed {
            return Err(StreamError::Closed);
        }
        if state.data.len() + bytes.len() > CAPACITY {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "write of {} bytes exceeds the permitted {} (call check-write first)",
                bytes.len(),
                CAPACITY - state.data.len()
            )));
        }
        state.data.extend_from_slice(&bytes);
        drop(state);
        self.0.readable.notify_one();
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Written bytes are visible to the reader at once.
        let state = self.0.lock();
        if state.reader_closed || state.writer_closed {
            return Err(StreamError::Closed);
        }
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let state = self.0.lock();
        if state.reader_closed || state.writer_closed {
            return Err(StreamError::Closed);
        }
        Ok(CAPACITY - state.data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_flow_in_order_and_close_is_end_of_stream() {
        let (mut reader, mut writer) = pipe();
        assert_eq!(reader.read(10).unwrap(), Bytes::new());
        writer.write(Bytes::from_static(b"hello ")).unwrap();
        writer.write(Bytes::from_static(b"world")).unwrap();
        reader.ready().await;
        assert_eq!(reader.read(8).unwrap(), Bytes::from_static(b"hello wo"));
        drop(writer);
        assert_eq!(reader.read(8).unwrap(), Bytes::from_static(b"rld"));
        assert!(matches!(reader.read(8), Err(StreamError::Closed)));
    }

    #[tokio::test]
    async fn a_full_pipe_waits_for_the_reader() {
        let (mut reader, mut writer) = pipe();
        writer.write(Bytes::from(vec![1u8; CAPACITY])).unwrap();
        assert_eq!(writer.check_write().unwrap(), 0);
        assert!(matches!(
            writer.write(Bytes::from_static(b"x")),
            Err(StreamError::Trap(_))
        ));
        let waiting = tokio::spawn(async move {
            writer.ready().await;
            writer.check_write().unwrap()
        });
        tokio::task::yield_now().await;
        assert_eq!(reader.read(100).unwrap().len(), 100);
        assert_eq!(waiting.await.unwrap(), 100);
    }

    #[tokio::test]
    async fn writes_after_the_reader_left_fail() {
        let (reader, mut writer) = pipe();
        drop(reader);
        writer.ready().await;
        assert!(matches!(writer.check_write(), Err(StreamError::Closed)));
    }
}
