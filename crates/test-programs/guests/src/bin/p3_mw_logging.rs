//! P3 request-logging middleware (`wasi:http/middleware` shape): imports and
//! exports `wasi:http/handler@0.3.0`. Named by its `MW_NAME` env var.
//!
//! - on the way in: appends its name to the request's `x-trail` header;
//! - on the way out: appends its name to the response's `x-trail` header,
//!   adds `server-timing: NAME;dur=MS` (time until the inner response
//!   headers), and prints `NAME: METHOD PATH -> STATUS (MS ms)` to stderr;
//! - a request whose `x-fail` header equals its name makes it trap.

#[path = "../shared/p3_middleware.rs"]
mod mw;

use mw::{
    Guest, HandlerResult, call_inward, env, header, with_request_headers, with_response_headers,
};
use wasip3::clocks::monotonic_clock;
use wasip3::http::types::{Method, Request};

struct Logging;

mw::export!(Logging with_types_in mw);

impl Guest for Logging {
    async fn handle(request: Request) -> HandlerResult {
        let name = env("MW_NAME").unwrap_or_else(|| "logging".into());
        let started = monotonic_clock::now();
        let method = method_name(&request.get_method());
        let path = request.get_path_with_query().unwrap_or_default();
        let headers = request.get_headers().clone();
        if header(&headers, "x-fail").as_deref() == Some(name.as_str()) {
            panic!("middleware `{name}` was asked to fail");
        }
        append_trail(&headers, &name);
        let response = call_inward(with_request_headers(request, headers)).await?;
        let elapsed_ms = (monotonic_clock::now() - started) as f64 / 1e6;
        let status = response.get_status_code();
        let headers = response.get_headers().clone();
        append_trail(&headers, &name);
        let _ = headers.append(
            "server-timing",
            format!("{name};dur={elapsed_ms:.3}").as_bytes(),
        );
        eprintln!("{name}: {method} {path} -> {status} ({elapsed_ms:.3} ms)");
        Ok(with_response_headers(response, headers))
    }
}

/// Adds `name` to the comma-separated `x-trail` header.
fn append_trail(headers: &wasip3::http::types::Fields, name: &str) {
    let trail = match header(headers, "x-trail") {
        Some(trail) if !trail.is_empty() => format!("{trail},{name}"),
        _ => name.to_string(),
    };
    let _ = headers.set("x-trail", &[trail.into_bytes()]);
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other.clone(),
    }
}

fn main() {}
