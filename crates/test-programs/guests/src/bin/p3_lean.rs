//! The leanest `wasi:http/service@0.3.0` hello (wasip3 0.9) for the
//! comparison harness (`bench/compare.sh`, workload `p3lean`): it reads
//! nothing of the request, looks up no environment, and answers every
//! request 200 `text/plain` `hello from p3\n` from a static body, so what is
//! measured is the host's per-request path, not the guest's work.

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

const BODY: &[u8] = b"hello from p3\n";

struct Service;

wasip3::http::service::export!(Service);

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
            .expect("valid header");
        let (mut body_tx, body_rx) = wit_stream::new();
        let (_, trailers) = wit_future::new(|| Ok(None));
        let (response, _transmitted) = Response::new(headers, Some(body_rx), trailers);
        wasip3::spawn_local(async move {
            body_tx.write_all(BODY.to_vec()).await;
        });
        Ok(response)
    }
}

fn main() {
    unreachable!("HTTP service components are driven through `handle`, not `run`")
}
