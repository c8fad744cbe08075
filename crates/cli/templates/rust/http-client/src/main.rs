//! {{project-name}}: an HTTP component that calls another service.
//!
//! `GET /` fetches `UPSTREAM_URL` (an environment variable set in
//! `.nimbus/config.yaml`) with the standard WASI HTTP client and answers
//! with the upstream status and body. Nimbus denies outgoing requests by
//! default; the upstream's host must be listed in `workload.allowedHosts`.

use wstd::http::{Body, Client, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, Error> {
    let Ok(url) = std::env::var("UPSTREAM_URL") else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "UPSTREAM_URL is not set\n".into());
    };
    let outgoing = Request::get(&url).body(Body::empty())?;
    match Client::new().send(outgoing).await {
        Ok(response) => {
            let status = response.status();
            let body = response.into_body().contents().await?.to_vec();
            let mut text_body = format!("upstream {url} answered {}\n", status.as_u16());
            text_body.push_str(&String::from_utf8_lossy(&body));
            text(StatusCode::OK, text_body)
        }
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("upstream {url} failed: {e}\n")),
    }
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(body))?)
}
