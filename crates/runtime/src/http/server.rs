//! The HTTP server in front of the host.
//!
//! hyper 1 with hyper-util's auto builder: HTTP/1.1 and HTTP/2 cleartext
//! (prior knowledge) on one port, `TCP_NODELAY` on every connection. It takes
//! an already-bound listener and a shutdown future (so tests bind port 0);
//! on shutdown it stops accepting, lets in-flight requests finish for up to
//! the drain timeout, then returns.

use crate::host::Host;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `host` on `listener` until `shutdown` resolves, then drains
/// in-flight requests for at most `drain_timeout`. Returns whether every
/// connection finished in time.
pub async fn serve(
    listener: TcpListener,
    host: Host,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_timeout: Duration,
) -> std::io::Result<bool> {
    // Everything below is compiled (and optimised) in this crate: a generic
    // body would be monomorphized in the caller, pulling hyper's whole
    // connection path into e.g. an unoptimised CLI build.
    serve_boxed(listener, host, Box::pin(shutdown), drain_timeout).await
}

async fn serve_boxed(
    listener: TcpListener,
    host: Host,
    mut shutdown: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    drain_timeout: Duration,
) -> std::io::Result<bool> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that never finishes its headers must not hold a connection
    // (and a task) forever.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let graceful = GracefulShutdown::new();
    while let Some((stream, peer)) = next_connection(&listener, &mut shutdown, "ingress").await {
        let _ = stream.set_nodelay(true);
        let host = host.clone();
        let service = hyper::service::service_fn(move |request| {
            let host = host.clone();
            async move { Ok::<_, Infallible>(host.handle(request).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    Ok(tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_ok())
}

/// The next connection on `listener`, or `None` once `shutdown` resolves.
/// Failed accepts (running out of file descriptors and similar) are
/// transient: logged with the `endpoint`'s name and retried after a pause,
/// never spun on or returned.
pub(crate) async fn next_connection<F>(
    listener: &TcpListener,
    shutdown: &mut F,
    endpoint: &str,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)>
where
    F: Future<Output = ()> + Unpin,
{
    loop {
        tokio::select! {
            _ = &mut *shutdown => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(error) => {
                    tracing::warn!(%error, endpoint, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}
