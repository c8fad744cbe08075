//! `native-hello`: the native baseline of `bench/compare.sh`.
//!
//! A plain hyper 1 server with no WebAssembly in the path. It answers every
//! request the way the P2 hello guest
//! (`crates/test-programs/guests/src/bin/p2_hello.rs`) does: status 200, the
//! one header the guest sets (`content-type: text/plain`), and the body
//! `hello from p2\n` with no length given, so hyper sends it chunked as it
//! does the guest's: the response is `nimbus serve`'s, byte for byte, but for
//! the `date` header.
//! Connections speak HTTP/1.1 with keep-alive, have `TCP_NODELAY` set, and
//! run on tokio's multi-thread runtime (one worker per CPU the process may
//! run on, so pinning it with `taskset` pins the workers), or, pinned to one
//! CPU, on the main thread alone, as `nimbus serve` does.
//!
//! ```text
//! native-hello [--addr] 127.0.0.1:8000
//! ```
//!
//! Like `nimbus serve`, it prints `Serving on http://ADDR/` on stdout once it
//! listens, and stops on Ctrl-C or SIGTERM.

use bytes::Bytes;
use http_body::{Body, Frame};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll};
use tokio::net::TcpListener;

/// The P2 hello guest's body with no `GREETING` set.
const BODY: &[u8] = b"hello from p2\n";

/// Where to listen when no address is given (`nimbus serve`'s default).
const DEFAULT_ADDR: &str = "127.0.0.1:8000";

const USAGE: &str = "usage: native-hello [--addr] ADDR   (default 127.0.0.1:8000)";

fn main() -> ExitCode {
    let addr = match parse_args(std::env::args().skip(1)) {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // One CPU, one thread: what `nimbus serve` does too, so the ceiling
    // keeps whatever that is worth.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `--addr ADDR`, `--addr=ADDR` or a bare `ADDR`; `None` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<SocketAddr>, String> {
    let mut addr: Option<String> = None;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--addr" => args.next().ok_or("`--addr` needs a value")?,
            _ => match arg.strip_prefix("--addr=") {
                Some(value) => value.to_string(),
                None if !arg.starts_with('-') => arg,
                None => return Err(format!("unknown option `{arg}`")),
            },
        };
        if addr.replace(value).is_some() {
            return Err("more than one address given".to_string());
        }
    }
    let addr = addr.as_deref().unwrap_or(DEFAULT_ADDR);
    addr.parse()
        .map(Some)
        .map_err(|e| format!("invalid address `{addr}`: {e}"))
}

/// Accepts connections on `addr` until Ctrl-C or SIGTERM.
async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    println!("Serving on http://{}/", listener.local_addr()?);

    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                // Transient (e.g. out of file descriptors): back off.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            // Keep-alive is hyper's default for HTTP/1.1; errors here are a
            // client going away, nothing to report.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}

/// The response to every request.
async fn hello(_request: Request<Incoming>) -> Result<Response<UnsizedBody>, Infallible> {
    let mut response = Response::new(UnsizedBody(Some(Bytes::from_static(BODY))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// One chunk of bytes whose length is not announced (the default
/// `size_hint`), like a guest's response body: hyper then frames it with
/// `transfer-encoding: chunked` instead of adding `content-length`.
struct UnsizedBody(Option<Bytes>);

impl Body for UnsizedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|bytes| Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}
