//! P2 middleware (`wasi:http` incoming/outgoing pair, wstd), named by its
//! `MW_NAME` env var: it exports `incoming-handler` and calls inward by
//! sending the request to the authority it was called on.
//!
//! - on the way in: appends its name to the request's `x-trail` header;
//! - on the way out: appends its name to the response's `x-trail` header;
//! - `x-block` equal to its name: answers 403 itself (short-circuit);
//! - `/outside?url=URL`: instead fetches URL, an ordinary outgoing request
//!   (502 with the error if it fails), to show only its own authority is
//!   routed inward.

use wstd::http::{Body, Client, Error, HeaderValue, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let name = std::env::var("MW_NAME").unwrap_or_else(|_| "p2mw".into());
    if request.uri().path() == "/outside" {
        let url = request
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("url="))
            .unwrap_or("")
            .to_string();
        let outgoing = Request::get(&url).body(Body::empty())?;
        return match Client::new().send(outgoing).await {
            Ok(response) => Ok(response),
            Err(e) => text(StatusCode::BAD_GATEWAY, format!("{name}: {e}\n")),
        };
    }
    if request
        .headers()
        .get("x-block")
        .is_some_and(|v| v.as_bytes() == name.as_bytes())
    {
        return text(StatusCode::FORBIDDEN, format!("blocked by {name}\n"));
    }
    append_trail(request.headers_mut(), &name)?;
    let mut response = Client::new().send(request).await?;
    append_trail(response.headers_mut(), &name)?;
    Ok(response)
}

fn append_trail(headers: &mut wstd::http::HeaderMap, name: &str) -> Result<(), Error> {
    let trail = match headers.get("x-trail").and_then(|v| v.to_str().ok()) {
        Some(trail) if !trail.is_empty() => format!("{trail},{name}"),
        _ => name.to_string(),
    };
    headers.insert("x-trail", HeaderValue::from_str(&trail)?);
    Ok(())
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(body))?)
}
