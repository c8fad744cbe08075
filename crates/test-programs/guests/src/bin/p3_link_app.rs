//! P3 HTTP component (`wasi:http/service@0.3.0`) importing
//! `nimbus:link-test/async-greet` and `nimbus:link-test/counters` from
//! other components of its workload:
//!
//! - `/greet?name=N`: what the linked async `greet` answers for N
//! - `/counters`: the counter round trip of `shared/link_counters.rs`

wit_bindgen_p3::generate!({
    path: "wit/link",
    world: "nimbus:link-test/p3-app",
    runtime_path: "wit_bindgen_p3::rt",
});

#[path = "../shared/link_counters.rs"]
mod link_counters;

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

struct App;

wasip3::http::service::export!(App);

impl wasip3::exports::http::handler::Guest for App {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let target = request.get_path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
        let name = query
            .split('&')
            .find_map(|p| p.strip_prefix("name="))
            .unwrap_or("world")
            .to_string();
        let (status, body) = match path {
            "/greet" => (
                200,
                format!("{}\n", nimbus::link_test::async_greet::greet(name).await),
            ),
            "/counters" => (200, link_counters::report()),
            _ => (404, "not found\n".to_string()),
        };
        Ok(text_response(status, body))
    }
}

/// A `text/plain` response whose body a spawned task writes.
fn text_response(status: u16, body: String) -> Response {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
        .expect("valid header");
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    let _ = response.set_status_code(status);
    drop(trailers_tx);
    wasip3::spawn_local(async move {
        body_tx.write_all(body.into_bytes()).await;
    });
    response
}

fn main() {}
