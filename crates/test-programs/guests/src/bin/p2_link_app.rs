//! P2 HTTP component (wstd) importing `nimbus:link-test/greet` and
//! `nimbus:link-test/counters` from another component of its workload:
//!
//! - `/greet?name=N`: what the linked `greet` answers for N
//! - `/calls?n=N`: calls the linked `greet` N times (per-call cost benches)
//!   and answers `N calls`
//! - `/counters`: the counter round trip of `shared/link_counters.rs`

wit_bindgen::generate!({
    path: "wit/link",
    world: "nimbus:link-test/p2-app",
});

#[path = "../shared/link_counters.rs"]
mod link_counters;

use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let name = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("name=")))
        .unwrap_or("world")
        .to_string();
    let (status, body) = match request.uri().path() {
        "/greet" => (
            StatusCode::OK,
            format!("{}\n", nimbus::link_test::greet::greet(&name)),
        ),
        "/counters" => (StatusCode::OK, link_counters::report()),
        "/calls" => {
            let n: u32 = request
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("n=")))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            for _ in 0..n {
                std::hint::black_box(nimbus::link_test::greet::greet(&name));
            }
            (StatusCode::OK, format!("{n} calls\n"))
        }
        _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(body))?)
}
