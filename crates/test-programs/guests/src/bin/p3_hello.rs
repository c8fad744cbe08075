//! `wasi:http/service@0.3.0` component (wasip3 0.9, exports
//! `wasi:http/handler@0.3.0`):
//!
//! - `/sleep?ms=N`: waits N ms on the WASI 0.3 monotonic clock (a real async
//!   wait, so other requests can run meanwhile), then answers `slept N`
//! - `/loop`: busy-loops forever (interruption tests)
//! - `/headers`: the request's headers, `name: value` per line, sorted
//!   (middleware tests read what reached the handler)
//! - anything else: 200 `text/plain`, the `GREETING` env var (default
//!   `hello from p3`) followed by a newline

use std::hint::black_box;

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

struct Service;

wasip3::http::service::export!(Service);

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path_and_query = request.get_path_with_query().unwrap_or_default();
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query.as_str(), ""));
        let body = match path {
            "/sleep" => {
                let ms: u64 = query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("ms="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                wasip3::clocks::monotonic_clock::wait_for(ms.saturating_mul(1_000_000)).await;
                format!("slept {ms}\n")
            }
            "/loop" => busy_loop(),
            "/headers" => {
                let mut lines: Vec<String> = request
                    .get_headers()
                    .copy_all()
                    .into_iter()
                    .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(&v)))
                    .collect();
                lines.sort();
                lines.concat()
            }
            _ => {
                let greeting = wasip3::cli::environment::get_environment()
                    .into_iter()
                    .find_map(|(k, v)| (k == "GREETING").then_some(v))
                    .unwrap_or_else(|| "hello from p3".to_string());
                format!("{greeting}\n")
            }
        };
        Ok(text_response(body.into_bytes()))
    }
}

/// A 200 `text/plain` response whose body is written by a spawned task once
/// the host starts reading it.
fn text_response(body: Vec<u8>) -> Response {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
        .expect("valid header");
    let (mut body_tx, body_rx) = wit_stream::new();
    // Dropping the writer resolves the trailers future to `Ok(None)`.
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _transmitted) = Response::new(headers, Some(body_rx), trailers_rx);
    drop(trailers_tx);
    wasip3::spawn_local(async move {
        let remaining = body_tx.write_all(body).await;
        debug_assert!(remaining.is_empty());
    });
    response
}

/// Spins forever without yielding to the host.
fn busy_loop() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn main() {
    unreachable!("HTTP service components are driven through `handle`, not `run`")
}
