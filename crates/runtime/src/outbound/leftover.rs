//! The rest of an outgoing request's body once its exchange stops reading
//! it.
//!
//! A server may answer before it has read the request body, then close the
//! connection (a hyper or axum server does when the body is not already in
//! its buffer). hyper then drops the body, and with it the channel the
//! guest writes into: the guest's next write fails with `closed` although
//! its answer arrived, and a client that joins the send with the body write
//! (wstd's `Client::send`) fails the whole request. So the host keeps
//! taking what the guest writes, and throws it away, up to
//! [`LEFTOVER_BYTES`] and for at most [`LEFTOVER_TIME`]; past either the
//! guest sees the closed stream it would have seen at once.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// The most of an unread request body the host takes and discards.
pub(crate) const LEFTOVER_BYTES: usize = 1 << 20;
/// How long the host keeps taking an unread request body.
pub(crate) const LEFTOVER_TIME: Duration = Duration::from_secs(30);

/// An outgoing request's body that, dropped before its end, drains the
/// rest in a task of its own.
pub(crate) struct RequestBody {
    inner: Option<WasiBody>,
    ended: bool,
}

impl RequestBody {
    pub(crate) fn new(inner: WasiBody) -> Self {
        Self {
            inner: Some(inner),
            ended: false,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if self.ended || body.is_end_stream() {
            return;
        }
        // Dropped outside a runtime (never, in the host): the guest sees
        // the stream closed, as without this type.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body, LEFTOVER_BYTES, LEFTOVER_TIME));
        }
    }
}

/// Reads and discards `body` until it ends, fails, passes `most` bytes or
/// `time` runs out; returns how many bytes it took.
async fn drain(mut body: WasiBody, most: usize, time: Duration) -> usize {
    let mut taken = 0usize;
    let _ = tokio::time::timeout(time, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                taken = taken.saturating_add(data.len());
                if taken > most {
                    break;
                }
            }
        }
    })
    .await;
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::SinkExt;
    use futures::channel::mpsc;

    /// A body fed through a channel, as the guest's writes feed one.
    fn channel_body() -> (mpsc::Sender<Result<Frame<Bytes>, HttpError>>, WasiBody) {
        let (sender, receiver) = mpsc::channel(4);
        (
            sender,
            http_body_util::StreamBody::new(receiver).boxed_unsync(),
        )
    }

    #[tokio::test]
    async fn a_body_dropped_unread_keeps_taking_writes_until_it_ends() {
        let (mut sender, body) = channel_body();
        drop(RequestBody::new(body));
        for _ in 0..10 {
            sender
                .send(Ok(Frame::data(Bytes::from_static(b"late"))))
                .await
                .expect("a write after the drop is taken");
        }
        drop(sender);
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_is_not_drained() {
        let (sender, body) = channel_body();
        let mut body = RequestBody::new(body);
        drop(sender);
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn draining_stops_past_its_byte_bound() {
        let (mut sender, body) = channel_body();
        let writer = tokio::spawn(async move {
            let mut sent = 0usize;
            while sender
                .send(Ok(Frame::data(Bytes::from(vec![0u8; 1000]))))
                .await
                .is_ok()
            {
                sent += 1000;
            }
            sent
        });
        let taken = drain(body, 10_000, Duration::from_secs(30)).await;
        assert!((10_000..=11_000).contains(&taken), "{taken}");
        let sent = writer.await.unwrap();
        assert!(
            sent <= taken + 5 * 1000,
            "writes fail once draining stops: {sent}"
        );
    }

    #[tokio::test]
    async fn draining_stops_when_its_time_is_up() {
        let (mut sender, body) = channel_body();
        let taken = drain(body, usize::MAX, Duration::from_millis(20)).await;
        assert_eq!(taken, 0);
        let write = sender.try_send(Ok(Frame::data(Bytes::from_static(b"late"))));
        assert!(
            write.is_err_and(|e| e.is_disconnected()),
            "the guest's writes fail from now on"
        );
    }
}
