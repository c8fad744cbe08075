//! Minimal `wasi:http/incoming-handler@0.2` component (wstd): answers every
//! path with 200 `text/plain`, the `GREETING` env var (default
//! `hello from p2`) followed by a newline.

use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, Error> {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello from p2".to_string());
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(Body::from(format!("{greeting}\n")))?)
}
