//! {{project-name}}: a minimal HTTP component. Every request gets a greeting.

use wstd::http::{Body, Error, Request, Response};

#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from("Hello from {{project-name}}!\n"))?)
}
