//! A minimal HTTP component: answers `Hello from Nimbus!` on every path.

use wstd::http::{Body, Error, Request, Response};

#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from("Hello from Nimbus!\n"))?)
}
