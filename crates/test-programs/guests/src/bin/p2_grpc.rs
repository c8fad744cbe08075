//! `wasi:http/incoming-handler@0.2` component (wstd) that speaks gRPC as a
//! client and as a server, with the protocol's bytes written by hand (a
//! 5-byte frame header, protobuf fields), as a gRPC library would send them:
//!
//! - `GET /call?to=HOST:PORT&name=NAME`: calls the OTLP trace service's
//!   `Export` at `http://HOST:PORT` with one span named NAME, as gRPC does
//!   (`content-type: application/grpc`, `te: trailers`), and answers
//!   `http=STATUS grpc-status=S bytes=N`, where S is the `grpc-status` the
//!   server sent in its trailers (`none` if it sent none) and N the bytes of
//!   the response message; or 502 `error CODE` when the call fails.
//! - `POST /opentelemetry.proto.collector.trace.v1.TraceService/Export`:
//!   serves that method: answers an empty `ExportTraceServiceResponse` with
//!   `grpc-status: 0` and `x-request-bytes: N` (the request message's size)
//!   in the trailers, as gRPC servers do.

use wstd::http::body::Bytes;
use wstd::http::body::util::{BodyExt as _, Full};
use wstd::http::{
    Body, Client, Error, ErrorCode, HeaderMap, HeaderValue, Request, Response, StatusCode,
};

const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    match request.uri().path() {
        "/call" => call(request).await,
        EXPORT => serve_export(request).await,
        _ => Ok(Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("not found\n"))?),
    }
}

async fn call(request: Request<Body>) -> Result<Response<Body>, Error> {
    let query = request.uri().query().unwrap_or("").to_string();
    let to = param(&query, "to").unwrap_or_default();
    let name = param(&query, "name").unwrap_or_else(|| "from-guest".into());
    let outgoing = Request::post(format!("http://{to}{EXPORT}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::from(frame(&export_request(&name))))?;
    let response = match Client::new().send(outgoing).await {
        Ok(response) => response,
        Err(err) => {
            let code = match err.chain().find_map(|e| e.downcast_ref::<ErrorCode>()) {
                Some(code) => format!("{code:?}"),
                None => format!("{err:?}"),
            };
            return Ok(Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(format!("error {code}\n")))?);
        }
    };
    let status = response.status().as_u16();
    // A "trailers-only" answer (an error before any message) puts
    // `grpc-status` in the headers.
    let in_headers = header(response.headers(), "grpc-status");
    let collected = response.into_body().into_boxed_body().collect().await?;
    let in_trailers = collected
        .trailers()
        .and_then(|trailers| header(trailers, "grpc-status"));
    let message = collected.to_bytes();
    let grpc_status = in_trailers.or(in_headers).unwrap_or_else(|| "none".into());
    let bytes = message.len().saturating_sub(5);
    Ok(Response::new(Body::from(format!(
        "http={status} grpc-status={grpc_status} bytes={bytes}\n"
    ))))
}

async fn serve_export(request: Request<Body>) -> Result<Response<Body>, Error> {
    let received = request.into_body().into_boxed_body().collect().await?;
    let request_bytes = received.to_bytes().len().saturating_sub(5);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("x-request-bytes", HeaderValue::from(request_bytes));
    // An empty ExportTraceServiceResponse: a frame with no bytes.
    let body = Full::new(Bytes::from(frame(&[])))
        .with_trailers(async move { Some(Ok::<_, std::convert::Infallible>(trailers)) });
    Ok(Response::builder()
        .header("content-type", "application/grpc")
        .body(Body::from_http_body(body))?)
}

/// A gRPC message frame: not compressed, 4-byte big-endian length.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// `ExportTraceServiceRequest { resource_spans: [{ scope_spans: [{ spans:
/// [{ name }] }] }] }` in protobuf.
fn export_request(name: &str) -> Vec<u8> {
    let span = field(5, name.as_bytes());
    let scope_spans = field(2, &span);
    let resource_spans = field(2, &scope_spans);
    field(1, &resource_spans)
}

/// A length-delimited protobuf field.
fn field(number: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    let mut length = value.len();
    while length >= 0x80 {
        out.push((length as u8 & 0x7f) | 0x80);
        length >>= 7;
    }
    out.push(length as u8);
    out.extend_from_slice(value);
    out
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}
