//! Responses for the `wasi:http@0.3.0` test guests (wasip3 0.9).

// Each guest uses what it needs.
#![allow(dead_code)]

use wasip3::http::types::{Fields, Response};
use wasip3::wit_bindgen::StreamReader;

/// A `text/plain` response of `status` whose body is `body`.
pub fn text_response(status: u16, body: Vec<u8>) -> Response {
    let (mut writer, reader) = wasip3::wit_stream::new();
    wasip3::spawn_local(async move {
        writer.write_all(body).await;
    });
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
        .expect("a valid header");
    stream_response(status, headers, Some(reader))
}

/// A response of `status` with `headers` whose body is whatever `body`
/// yields (none: no body), without trailers.
pub fn stream_response(status: u16, headers: Fields, body: Option<StreamReader<u8>>) -> Response {
    // Dropping the writer resolves the trailers future to `Ok(None)`.
    let (trailers_tx, trailers_rx) = wasip3::wit_future::new(|| Ok(None));
    let (response, _transmitted) = Response::new(headers, body, trailers_rx);
    drop(trailers_tx);
    response.set_status_code(status).expect("a valid status");
    response
}
