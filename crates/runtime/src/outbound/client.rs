//! One outgoing request over a connection the policy already vetted: the
//! HTTP version, TLS, and the exchange itself.
//!
//! HTTP/1.1 is the default, as in `wasmtime serve`. A request that asks for
//! HTTP/2 ([`wants_http2`]: gRPC, or `te: trailers`) gets it: over `http://`
//! with prior knowledge (h2c, which is how gRPC speaks in the clear), over
//! `https://` by offering `h2` in ALPN and using what the server picks.
//! Trailers travel as body frames either way, so a guest reads a gRPC
//! server's `grpc-status` from the response's trailers.

use super::Slot;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// ALPN name of HTTP/2.
const H2: &[u8] = b"h2";
/// ALPN name of HTTP/1.1.
const HTTP_1_1: &[u8] = b"http/1.1";

/// Whether `request` asks for HTTP/2: a gRPC request (`application/grpc`,
/// with or without a `+proto`-style suffix) or one that says it takes
/// trailers (`te: trailers`), which HTTP/1.1 servers rarely send.
pub(crate) fn wants_http2<B>(request: &http::Request<B>) -> bool {
    let headers = request.headers();
    let grpc = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/grpc" || v.starts_with("application/grpc+")
        });
    let trailers = headers.get_all(http::header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    });
    grpc || trailers
}

/// Sends `request` over a plain TCP connection: h2c with prior knowledge
/// when it asks for HTTP/2, HTTP/1.1 otherwise.
pub(crate) async fn send_plain(
    stream: tokio::net::TcpStream,
    request: http::Request<WasiBody>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    slot: Slot,
) -> Result<http::Response<WasiBody>, HttpError> {
    let version = if wants_http2(&request) {
        Version::Http2
    } else {
        Version::Http1
    };
    exchange(
        stream,
        version,
        request,
        connect_timeout,
        first_byte_timeout,
        slot,
    )
    .await
}

/// Sends `request` over TLS to `server_name`, in the version the server
/// picks by ALPN (offered `h2` only when the request asks for HTTP/2).
pub(crate) async fn send_tls(
    stream: tokio::net::TcpStream,
    server_name: rustls::pki_types::ServerName<'static>,
    request: http::Request<WasiBody>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    slot: Slot,
) -> Result<http::Response<WasiBody>, HttpError> {
    let offer_h2 = wants_http2(&request);
    let tls = tokio::time::timeout(
        connect_timeout,
        tls_connector(offer_h2).connect(server_name, stream),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)?
    .map_err(HttpError::Tls)?;
    let version = if tls.get_ref().1.alpn_protocol() == Some(H2) {
        Version::Http2
    } else {
        Version::Http1
    };
    exchange(
        tls,
        version,
        request,
        connect_timeout,
        first_byte_timeout,
        slot,
    )
    .await
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Version {
    Http1,
    Http2,
}

async fn exchange<S>(
    stream: S,
    version: Version,
    mut request: http::Request<WasiBody>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    slot: Slot,
) -> Result<http::Response<WasiBody>, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let response = match version {
        Version::Http1 => {
            // HTTP/1.1 sends the path; the authority is in `host`.
            let path = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            *request.uri_mut() = http::Uri::builder()
                .path_and_query(path)
                .build()
                .map_err(|_| HttpError::HttpRequestUriInvalid)?;
            let (mut sender, connection) =
                tokio::time::timeout(connect_timeout, hyper::client::conn::http1::handshake(io))
                    .await
                    .map_err(|_| HttpError::ConnectionTimeout)??;
            // The connection task ends once the response body is consumed
            // or dropped; the connection counts against the caps until then.
            tokio::spawn(async move {
                let _slot = slot;
                let _ = connection.await;
            });
            tokio::time::timeout(first_byte_timeout, sender.send_request(request))
                .await
                .map_err(|_| HttpError::ConnectionReadTimeout)??
        }
        Version::Http2 => {
            // HTTP/2 carries the scheme and authority as pseudo-headers from
            // the absolute URI; a `host` beside `:authority` is redundant and
            // some servers refuse it.
            request.headers_mut().remove(http::header::HOST);
            *request.version_mut() = http::Version::HTTP_2;
            let (mut sender, connection) = tokio::time::timeout(
                connect_timeout,
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io),
            )
            .await
            .map_err(|_| HttpError::ConnectionTimeout)??;
            // One stream per connection: the connection closes once the
            // response body is done and the sender is dropped.
            tokio::spawn(async move {
                let _slot = slot;
                let _ = connection.await;
            });
            tokio::time::timeout(first_byte_timeout, sender.send_request(request))
                .await
                .map_err(|_| HttpError::ConnectionReadTimeout)??
        }
    };
    Ok(response.map(|body| {
        body.map_err(HttpError::from)
            .map_frame(|f: http_body::Frame<Bytes>| f)
            .boxed_unsync()
    }))
}

/// The TLS client configuration: the bundled web roots, and ALPN offering
/// `h2` first when `offer_h2`, HTTP/1.1 alone otherwise. Built once each.
fn tls_connector(offer_h2: bool) -> tokio_rustls::TlsConnector {
    static HTTP1_ONLY: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    static WITH_H2: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    let cell = if offer_h2 { &WITH_H2 } else { &HTTP1_ONLY };
    let config = cell.get_or_init(|| Arc::new(tls_config(offer_h2)));
    tokio_rustls::TlsConnector::from(config.clone())
}

fn tls_config(offer_h2: bool) -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = if offer_h2 {
        vec![H2.to_vec(), HTTP_1_1.to_vec()]
    } else {
        vec![HTTP_1_1.to_vec()]
    };
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> http::Request<()> {
        let mut builder = http::Request::post("http://example.com/svc/Method");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn grpc_and_trailers_ask_for_http2_and_nothing_else_does() {
        assert!(wants_http2(&request(&[(
            "content-type",
            "application/grpc"
        )])));
        assert!(wants_http2(&request(&[(
            "content-type",
            "Application/GRPC+proto"
        )])));
        assert!(wants_http2(&request(&[("te", "gzip, trailers")])));
        assert!(!wants_http2(&request(&[])));
        assert!(!wants_http2(&request(&[(
            "content-type",
            "application/json"
        )])));
        assert!(!wants_http2(&request(&[(
            "content-type",
            "application/grpc-web"
        )])));
        assert!(!wants_http2(&request(&[("te", "gzip")])));
    }

    #[test]
    fn alpn_offers_h2_only_when_asked() {
        assert_eq!(tls_config(true).alpn_protocols, [H2, HTTP_1_1]);
        assert_eq!(tls_config(false).alpn_protocols, [HTTP_1_1]);
    }
}
