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

#[path = "../shared/p3_response.rs"]
mod response;

use response::text_response;
use wasip3::http::types::{ErrorCode, Request, Response};

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
        Ok(text_response(status, body.into_bytes()))
    }
}

fn main() {}
