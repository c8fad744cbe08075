//! {{project-name}}: HTTP middleware. It serves requests like any HTTP
//! component and passes them inward by sending them, unchanged or edited, to
//! the address it was called on: Nimbus delivers that request to the next
//! layer of the workload (another middleware or the handler) in memory.
//! Requests to anywhere else are ordinary outgoing HTTP.
//!
//! - `x-block: yes`: answered here with 403 (the inner layers never see it);
//! - otherwise: forwarded with `x-forwarded-by: {{project-name}}`; the
//!   response comes back with `x-middleware: {{project-name}}` and a
//!   `server-timing` entry for the time the inner layers took.

use std::time::Instant;
use wstd::http::{Body, Client, Error, HeaderValue, Request, Response, StatusCode};

const NAME: &str = "{{project-name}}";

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let blocked = request
        .headers()
        .get("x-block")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"yes"));
    if blocked {
        return Ok(Response::builder()
            .status(StatusCode::FORBIDDEN)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from(format!("blocked by {NAME}\n")))?);
    }
    request
        .headers_mut()
        .insert("x-forwarded-by", HeaderValue::from_static(NAME));
    let started = Instant::now();
    let mut response = Client::new().send(request).await?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let headers = response.headers_mut();
    headers.insert("x-middleware", HeaderValue::from_static(NAME));
    headers.append(
        "server-timing",
        HeaderValue::from_str(&format!("{NAME};dur={elapsed_ms:.3}"))?,
    );
    Ok(response)
}
