//! Response bodies the ingress sends, and the host's own error responses.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};

/// The body type of every response the ingress sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// A plain-text response from the host itself: `nimbus: MESSAGE`.
pub fn error_response(status: http::StatusCode, message: &str) -> http::Response<ResponseBody> {
    let mut response = http::Response::new(
        Full::new(Bytes::from(format!("nimbus: {message}\n")))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
