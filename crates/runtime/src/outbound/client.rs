//! One outgoing request over a connection the policy already vetted: the
//! HTTP version, TLS, and the exchange itself.
//!
//! HTTP/1.1 is the default, as in `wasmtime serve`. A gRPC request
//! ([`is_grpc`]) goes over HTTP/2 with prior knowledge to `http://` (h2c,
//! how gRPC speaks in the clear); over `https://`, a gRPC request or one
//! that takes trailers (`te: trailers`) offers `h2` in ALPN and uses what the
//! server picks ([`offers_h2`]). A plain-text `te: trailers` request stays
//! HTTP/1.1, since an HTTP/1.1-only server cannot answer prior knowledge.
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

/// Whether `request` is gRPC (`application/grpc`, with or without a
/// `+proto`-style suffix; not `grpc-web`, which is made for HTTP/1.1).
pub(crate) fn is_grpc<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/grpc" || v.starts_with("application/grpc+")
        })
}

/// Whether `request` says it takes trailers (`te: trailers`).
fn takes_trailers<B>(request: &http::Request<B>) -> bool {
    request.headers().get_all(http::header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    })
}

/// Whether to offer `h2` in ALPN for `request`: gRPC, or trailers wanted
/// (which HTTP/1.1 servers rarely send).
pub(crate) fn offers_h2<B>(request: &http::Request<B>) -> bool {
    is_grpc(request) || takes_trailers(request)
}

/// Sends `request` over a plain TCP connection: h2c with prior knowledge
/// for gRPC, HTTP/1.1 otherwise.
pub(crate) async fn send_plain(
    stream: tokio::net::TcpStream,
    request: http::Request<WasiBody>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    slot: Slot,
) -> Result<http::Response<WasiBody>, HttpError> {
    let version = if is_grpc(&request) {
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
/// picks by ALPN (offered `h2` only when [`offers_h2`]).
pub(crate) async fn send_tls(
    stream: tokio::net::TcpStream,
    server_name: rustls::pki_types::ServerName<'static>,
    request: http::Request<WasiBody>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    slot: Slot,
) -> Result<http::Response<WasiBody>, HttpError> {
    let connector = tls_connector(offers_h2(&request));
    send_tls_with(
        connector,
        stream,
        server_name,
        request,
        connect_timeout,
        first_byte_timeout,
        slot,
    )
    .await
}

/// [`send_tls`] through `connector` (the tests' trusts a test CA).
async fn send_tls_with(
    connector: tokio_rustls::TlsConnector,
    stream: tokio::net::TcpStream,
    server_name: rustls::pki_types::ServerName<'static>,
    request: http::Request<WasiBody>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    slot: Slot,
) -> Result<http::Response<WasiBody>, HttpError> {
    let tls = tokio::time::timeout(connect_timeout, connector.connect(server_name, stream))
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
    request: http::Request<WasiBody>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    slot: Slot,
) -> Result<http::Response<WasiBody>, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    // An answer may come, and the connection end, before the guest has
    // written all of its body: what it writes after that is taken and
    // thrown away rather than failing its write.
    let mut request = request.map(super::leftover::RequestBody::new);
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
            // Credentials in the authority are not sent (HTTP/1.1 sends only
            // the path).
            strip_userinfo(request.uri_mut())?;
            // HTTP/2 allows `te` only as exactly `trailers` (hyper drops any
            // other value, and with it what gRPC servers look for).
            if takes_trailers(&request) {
                request
                    .headers_mut()
                    .insert(http::header::TE, http::HeaderValue::from_static("trailers"));
            }
            *request.version_mut() = http::Version::HTTP_2;
            let (mut sender, connection) = tokio::time::timeout(
                connect_timeout,
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io),
            )
            .await
            .map_err(|_| HttpError::ConnectionTimeout)??;
            // hyper drives an HTTP/2 connection in a task of its own; this
            // one ends with the sender, so the slot rides with the response
            // body instead: the connection counts against the caps until the
            // body is done or dropped.
            tokio::spawn(connection);
            let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
                .await
                .map_err(|_| HttpError::ConnectionReadTimeout)??;
            return Ok(response.map(|body| {
                body.map_err(HttpError::from)
                    .map_frame(move |f: http_body::Frame<Bytes>| {
                        let _held = &slot;
                        f
                    })
                    .boxed_unsync()
            }));
        }
    };
    Ok(response.map(|body| {
        body.map_err(HttpError::from)
            .map_frame(|f: http_body::Frame<Bytes>| f)
            .boxed_unsync()
    }))
}

/// Removes `user:password@` from `uri`'s authority.
fn strip_userinfo(uri: &mut http::Uri) -> Result<(), HttpError> {
    let Some(authority) = uri.authority() else {
        return Ok(());
    };
    let Some((_, host)) = authority.as_str().rsplit_once('@') else {
        return Ok(());
    };
    let host = host.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let mut parts = uri.clone().into_parts();
    parts.authority = Some(host);
    *uri = http::Uri::from_parts(parts).map_err(|_| HttpError::HttpRequestUriInvalid)?;
    Ok(())
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
    tls_config_with(roots, offer_h2)
}

fn tls_config_with(roots: rustls::RootCertStore, offer_h2: bool) -> rustls::ClientConfig {
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
    fn grpc_goes_h2_and_trailers_only_offer_it() {
        let grpc = request(&[("content-type", "application/grpc")]);
        assert!(is_grpc(&grpc) && offers_h2(&grpc));
        assert!(is_grpc(&request(&[(
            "content-type",
            "Application/GRPC+proto"
        )])));
        let trailers = request(&[("te", "gzip, trailers")]);
        assert!(!is_grpc(&trailers) && offers_h2(&trailers));
        for plain in [
            request(&[]),
            request(&[("content-type", "application/json")]),
            request(&[("content-type", "application/grpc-web")]),
            request(&[("te", "gzip")]),
        ] {
            assert!(!is_grpc(&plain) && !offers_h2(&plain));
        }
    }

    #[test]
    fn credentials_leave_the_authority() {
        let mut uri: http::Uri = "http://user:pw@example.com:8080/a?b".parse().unwrap();
        strip_userinfo(&mut uri).unwrap();
        assert_eq!(uri, "http://example.com:8080/a?b");
    }

    #[test]
    fn alpn_offers_h2_only_when_asked() {
        assert_eq!(tls_config(true).alpn_protocols, [H2, HTTP_1_1]);
        assert_eq!(tls_config(false).alpn_protocols, [HTTP_1_1]);
    }

    /// A TLS server on loopback that speaks HTTP/2 only (ALPN `h2` alone,
    /// as gRPC servers do) and answers `ok` with a `grpc-status: 0`
    /// trailer; and a connector for a client that trusts its certificate
    /// and offers `h2` when `offer_h2`.
    async fn h2_only_tls_server(offer_h2: bool) -> (u16, tokio_rustls::TlsConnector) {
        use http_body_util::Full;
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("a test certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![certified.cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(
                    certified.signing_key.serialize_der().into(),
                ),
            )
            .unwrap();
        server.alpn_protocols = vec![H2.to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|_request| async {
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                        let body = Full::new(Bytes::from_static(b"ok"))
                            .with_trailers(async move { Some(Ok(trailers)) });
                        Ok::<_, std::convert::Infallible>(http::Response::new(body))
                    });
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).unwrap();
        let connector =
            tokio_rustls::TlsConnector::from(Arc::new(tls_config_with(roots, offer_h2)));
        (port, connector)
    }

    async fn send_to(
        port: u16,
        connector: tokio_rustls::TlsConnector,
        headers: &[(&str, &str)],
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut builder = http::Request::post(format!("https://localhost:{port}/svc/Method"))
            .header(http::header::HOST, format!("localhost:{port}"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let slot = super::super::OutboundSlots::standalone()
            .take_socket("w", "c")
            .unwrap();
        let timeout = Duration::from_secs(10);
        send_tls_with(
            connector,
            stream,
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            builder.body(body).unwrap(),
            timeout,
            timeout,
            slot,
        )
        .await
    }

    #[tokio::test]
    async fn a_grpc_request_over_tls_negotiates_h2_and_reads_the_trailers() {
        let (port, connector) = h2_only_tls_server(true).await;
        let response = send_to(port, connector, &[("content-type", "application/grpc")])
            .await
            .expect("the h2-only server answers");
        assert_eq!(response.version(), http::Version::HTTP_2);
        let collected = response.into_body().collect().await.unwrap();
        assert_eq!(
            collected.trailers().and_then(|t| t.get("grpc-status")),
            Some(&http::HeaderValue::from_static("0"))
        );
        assert_eq!(collected.to_bytes(), "ok");
    }

    #[tokio::test]
    async fn a_plain_request_offers_http1_only_so_an_h2_only_server_refuses_it() {
        let (port, connector) = h2_only_tls_server(false).await;
        let result = send_to(port, connector, &[]).await;
        assert!(matches!(result, Err(HttpError::Tls(_))), "{result:?}");
    }
}
