//! Component-model `stream<u8>` bodies for plugins whose interfaces carry
//! them (`wasmcloud:blobstore@0.1.0`, `wasmcloud:messaging@0.3.0`).
//!
//! Two adapters, one per direction, so no plugin touches wasmtime's stream
//! machinery itself:
//! - [`receive`]: a stream the guest writes (an argument) becomes a bounded
//!   channel of chunks the host function drains; the guest is held back
//!   while the channel is full, so a body never piles up in host memory.
//! - [`ReadProducer`]: any `AsyncRead` (a blob range, a spooled file)
//!   becomes a stream the guest reads (a result), read only as fast as the
//!   guest asks.

use bytes::Bytes;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Accessor, Destination, HasData, Source, StreamConsumer, StreamProducer, StreamReader,
    StreamResult, VecBuffer,
};

/// The largest chunk taken from the guest in one go.
const CHUNK: usize = 64 * 1024;
/// Chunks that may wait in the channel before the guest is held back.
const QUEUED_CHUNKS: usize = 4;

/// Takes over `stream` from the guest: its bytes arrive on the returned
/// channel in chunks of at most 64 KiB; the channel closes when the guest
/// closes its end. Dropping the receiver early ends the transfer (the
/// guest's next write sees the stream dropped).
pub fn receive<T, D: HasData>(
    accessor: &Accessor<T, D>,
    stream: StreamReader<u8>,
) -> wasmtime::Result<mpsc::Receiver<Bytes>> {
    let (sender, receiver) = mpsc::channel(QUEUED_CHUNKS);
    accessor.with(|mut access| {
        stream.pipe(
            &mut access,
            ChunkConsumer {
                sender: PollSender::new(sender),
            },
        )
    })?;
    Ok(receiver)
}

/// Drains `chunks` into one buffer of at most `limit` bytes; `Err` carries
/// the number of bytes seen once the limit is passed (the rest is not
/// read).
pub async fn collect(chunks: &mut mpsc::Receiver<Bytes>, limit: usize) -> Result<Bytes, usize> {
    let mut body = Vec::new();
    while let Some(chunk) = chunks.recv().await {
        if body.len() + chunk.len() > limit {
            return Err(body.len() + chunk.len());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// Closes a stream argument the host function will not read (it failed
/// before the transfer), so the guest's writer sees it dropped rather than
/// waiting forever.
pub fn discard<T, D: HasData>(
    accessor: &Accessor<T, D>,
    mut stream: StreamReader<u8>,
) -> wasmtime::Result<()> {
    stream.close_with(accessor)
}

/// Forwards what the guest writes to a bounded channel.
struct ChunkConsumer {
    sender: PollSender<Bytes>,
}

impl<D> StreamConsumer<D> for ChunkConsumer {
    type Item = u8;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        store: StoreContextMut<D>,
        source: Source<Self::Item>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        // Room first: items taken from the source cannot be put back.
        match self.sender.poll_reserve(cx) {
            Poll::Ready(Ok(())) => {}
            // The host stopped reading (an error, a size limit): the guest
            // sees the stream dropped.
            Poll::Ready(Err(_)) => return Poll::Ready(Ok(StreamResult::Dropped)),
            Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => return Poll::Pending,
        }
        let mut source = source.as_direct(store);
        let available = source.remaining();
        let taken = available.len().min(CHUNK);
        if taken == 0 {
            // A zero-length write: ready for the next one. The reserved
            // slot is given back.
            self.sender.abort_send();
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let chunk = Bytes::copy_from_slice(&available[..taken]);
        source.mark_read(taken);
        match self.sender.send_item(chunk) {
            Ok(()) => Poll::Ready(Ok(StreamResult::Completed)),
            Err(_) => Poll::Ready(Ok(StreamResult::Dropped)),
        }
    }
}

/// Serves a stream the guest reads from an `AsyncRead`.
pub struct ReadProducer<R> {
    reader: R,
}

impl<R> ReadProducer<R> {
    /// The producer reading from `reader` until it ends.
    pub fn new(reader: R) -> Self {
        Self { reader }
    }
}

impl<R, D> StreamProducer<D> for ReadProducer<R>
where
    R: AsyncRead + Send + Unpin + 'static,
{
    type Item = u8;
    type Buffer = VecBuffer<u8>;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        store: StoreContextMut<'a, D>,
        destination: Destination<'a, Self::Item, Self::Buffer>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let mut destination = destination.as_direct(store, CHUNK);
        let (result, read) = {
            let room = destination.remaining();
            if room.is_empty() {
                // A zero-length read asks whether data is coming; say yes
                // and let the next read wait for it.
                return Poll::Ready(Ok(StreamResult::Completed));
            }
            let mut buffer = ReadBuf::new(room);
            let polled = Pin::new(&mut self.reader).poll_read(cx, &mut buffer);
            let result = match polled {
                Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
                other => ready!(other),
            };
            (result, buffer.filled().len())
        };
        match result {
            Ok(()) if read > 0 => {
                destination.mark_written(read);
                Poll::Ready(Ok(StreamResult::Completed))
            }
            // End of data.
            Ok(()) => Poll::Ready(Ok(StreamResult::Dropped)),
            Err(error) => {
                // The guest sees the stream end early; a byte count it was
                // told of (object size) shows the difference.
                tracing::warn!(%error, "a stream to a component ended early");
                Poll::Ready(Ok(StreamResult::Dropped))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn collect_stops_at_its_limit() {
        let (sender, mut receiver) = mpsc::channel(8);
        for part in ["abc", "def", "gh"] {
            sender.send(Bytes::from(part)).await.unwrap();
        }
        drop(sender);
        assert_eq!(collect(&mut receiver, 7).await, Err(8));

        let (sender, mut receiver) = mpsc::channel(8);
        for part in ["abc", "def"] {
            sender.send(Bytes::from(part)).await.unwrap();
        }
        drop(sender);
        assert_eq!(collect(&mut receiver, 6).await, Ok(Bytes::from("abcdef")));
    }
}
