#![allow(dead_code)] // each fixture uses part of it
//! What the P3 middleware fixtures share: bindings for the
//! `wasi:http/middleware` shape (import and export `wasi:http/handler@0.3.0`,
//! every type from `wasip3`) and rebuilding a request or response with new
//! headers while its body streams through untouched.

wit_bindgen_p3::generate!({
    path: "wit/p3-middleware",
    world: "nimbus:test-middleware/middleware",
    runtime_path: "wit_bindgen_p3::rt",
    with: {
        "wasi:http/types@0.3.0": wasip3::http::types,
        "wasi:clocks/types@0.3.0": wasip3::clocks::types,
        "wasi:http/handler@0.3.0": generate,
    },
    pub_export_macro: true,
});

pub use exports::wasi::http::handler::Guest;
pub use wasi::http::handler::handle as call_inward;

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::wit_future;

/// `request` with `headers` in place of its own; method, target, scheme,
/// authority, options and the body stream carry over.
pub fn with_request_headers(request: Request, headers: Fields) -> Request {
    let method = request.get_method();
    let path = request.get_path_with_query();
    let scheme = request.get_scheme();
    let authority = request.get_authority();
    let options = request.get_options();
    let (done_tx, done_rx) = wit_future::new(|| Ok(()));
    let (body, trailers) = Request::consume_body(request, done_rx);
    let (inner, sent) = Request::new(headers, Some(body), trailers, options);
    // Field values copied from a valid request are valid.
    let _ = inner.set_method(&method);
    let _ = inner.set_path_with_query(path.as_deref());
    let _ = inner.set_scheme(scheme.as_ref());
    let _ = inner.set_authority(authority.as_deref());
    wasip3::spawn_local(async move {
        let _ = done_tx.write(sent.await).await;
    });
    inner
}

/// `response` with `headers` in place of its own; status and body carry over.
pub fn with_response_headers(response: Response, headers: Fields) -> Response {
    let status = response.get_status_code();
    let (done_tx, done_rx) = wit_future::new(|| Ok(()));
    let (body, trailers) = Response::consume_body(response, done_rx);
    let (outer, sent) = Response::new(headers, Some(body), trailers);
    let _ = outer.set_status_code(status);
    wasip3::spawn_local(async move {
        let _ = done_tx.write(sent.await).await;
    });
    outer
}

/// A plain-text response with `status`, written by a spawned task.
pub fn text_response(status: u16, extra: &[(&str, &str)], text: String) -> Response {
    let mut list = vec![("content-type".to_string(), b"text/plain".to_vec())];
    list.extend(
        extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
    );
    let headers = Fields::from_list(&list).expect("valid headers");
    let (mut body_tx, body_rx) = wasip3::wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    let _ = response.set_status_code(status);
    drop(trailers_tx);
    wasip3::spawn_local(async move {
        body_tx.write_all(text.into_bytes()).await;
    });
    response
}

/// An environment variable of this component.
pub fn env(name: &str) -> Option<String> {
    wasip3::cli::environment::get_environment()
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// The first value of header `name`, as text.
pub fn header(fields: &Fields, name: &str) -> Option<String> {
    fields
        .get(name)
        .into_iter()
        .next()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// What the exported `handle` returns.
pub type HandlerResult = Result<Response, ErrorCode>;
