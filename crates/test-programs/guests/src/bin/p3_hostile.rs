//! `wasi:http/service@0.3.0` component (wasip3 0.9) that tries to hold its
//! host's resources through the P3 paths, one attack per path:
//!
//! - `/stream?kb=N`: answers 200 and streams N KiB chunks forever from a
//!   spawned task (the response outlives `handle`);
//! - `/spin`: spins forever before answering, without yielding;
//! - anything else: 404.

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
        match path {
            "/stream" => {
                let kb: usize = query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("kb="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                Ok(endless_response(vec![b's'; kb.max(1) * 1024]))
            }
            "/spin" => {
                let mut counter: u64 = 0;
                loop {
                    counter = black_box(counter.wrapping_add(1));
                }
            }
            _ => {
                let (_, trailers) = wit_future::new(|| Ok(None));
                let (response, _) = Response::new(Fields::new(), None, trailers);
                response.set_status_code(404).expect("a valid status");
                Ok(response)
            }
        }
    }
}

/// A 200 response whose body repeats `chunk` until the host stops reading.
fn endless_response(chunk: Vec<u8>) -> Response {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
        .expect("valid header");
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _transmitted) = Response::new(headers, Some(body_rx), trailers_rx);
    drop(trailers_tx);
    wasip3::spawn_local(async move {
        loop {
            // What is left unwritten means the reader is gone.
            if !body_tx.write_all(chunk.clone()).await.is_empty() {
                return;
            }
        }
    });
    response
}

fn main() {
    unreachable!("HTTP service components are driven through `handle`, not `run`")
}
