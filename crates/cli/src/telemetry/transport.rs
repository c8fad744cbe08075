//! How each OpenTelemetry signal is sent: its protocol (OTLP over gRPC, the
//! default, or `http/protobuf`), its endpoint, and TLS, all from
//! `--otlp-endpoint` and the standard `OTEL_EXPORTER_OTLP_*` variables (a
//! signal's own variable wins over the general one).

use super::signal::Signal;
use anyhow::{Context as _, bail};
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use secrecy::{ExposeSecret as _, SecretSlice};
use std::time::Duration;

/// How a signal travels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// The TLS files the variables name, read.
struct TlsFiles {
    ca: Option<Vec<u8>>,
    /// Certificate chain and private key (PEM).
    identity: Option<(Vec<u8>, SecretSlice<u8>)>,
}

impl Signal {
    /// The protocol asked for; one Nimbus does not speak is refused.
    pub(super) fn protocol(self) -> anyhow::Result<Protocol> {
        match self.setting("PROTOCOL") {
            None => Ok(Protocol::Grpc),
            Some((_, protocol)) if protocol == "grpc" => Ok(Protocol::Grpc),
            Some((_, protocol)) if protocol == "http/protobuf" => Ok(Protocol::HttpProtobuf),
            Some((name, protocol)) => bail!(
                "{name}={protocol} is not supported: Nimbus exports OTLP as grpc \
                 (collector port 4317) or http/protobuf (port 4318)"
            ),
        }
    }

    /// The URL this signal is sent to, resolved as the OTLP exporter would
    /// (the flag wins; over HTTP a signal's own variable is used as it is, a
    /// general endpoint gets the signal's `/v1/…` path). The exporter is
    /// given this URL, so messages name the one it really uses.
    pub(super) fn endpoint(self, flag: Option<&str>, protocol: Protocol) -> String {
        let own = format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", self.name());
        let base = match (flag, self.setting("ENDPOINT")) {
            (Some(flag), _) => flag.to_string(),
            // A signal's own endpoint is the whole URL.
            (None, Some((name, value))) if name == own => return value,
            (None, Some((_, value))) => value,
            (None, None) if protocol == Protocol::Grpc => "http://localhost:4317".to_string(),
            (None, None) => "http://localhost:4318".to_string(),
        };
        match protocol {
            Protocol::Grpc => base,
            Protocol::HttpProtobuf => {
                format!("{}/v1/{}", base.trim_end_matches('/'), self.label())
            }
        }
    }

    /// `builder` set up for OTLP/gRPC to `endpoint`, with TLS for an
    /// `https://` one.
    pub(super) fn grpc<B>(self, builder: B, endpoint: &str) -> anyhow::Result<B>
    where
        B: WithExportConfig + WithTonicConfig,
    {
        Ok(builder
            .with_tls_config(self.grpc_tls()?)
            .with_endpoint(endpoint))
    }

    /// `builder` set up for OTLP/HTTP with protobuf bodies to `endpoint`,
    /// sent by [`HttpClient`].
    pub(super) fn http<B>(self, builder: B, endpoint: &str) -> anyhow::Result<B>
    where
        B: WithExportConfig + WithHttpConfig,
    {
        Ok(builder
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_http_client(self.http_client()?)
            .with_endpoint(endpoint))
    }

    /// The CA and client identity the variables name. The key stays in
    /// memory, redacted.
    fn tls_files(self) -> anyhow::Result<TlsFiles> {
        let read = |(name, path): (String, String)| {
            std::fs::read(&path).with_context(|| format!("cannot read {name}={path}"))
        };
        let ca = self.setting("CERTIFICATE").map(read).transpose()?;
        let identity = match (
            self.setting("CLIENT_CERTIFICATE"),
            self.setting("CLIENT_KEY"),
        ) {
            (Some(certificate), Some(key)) => {
                Some((read(certificate)?, SecretSlice::from(read(key)?)))
            }
            (None, None) => None,
            (Some((name, _)), None) | (None, Some((name, _))) => bail!(
                "{name} is set without its pair: a client identity needs both \
                 OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY"
            ),
        };
        Ok(TlsFiles { ca, identity })
    }

    /// TLS for an `https://` endpoint over gRPC (a plain `http://` one
    /// ignores it): the system's and the public web roots, plus the named
    /// CA and client identity.
    fn grpc_tls(self) -> anyhow::Result<ClientTlsConfig> {
        let files = self.tls_files()?;
        let mut tls = ClientTlsConfig::new().with_enabled_roots();
        if let Some(ca) = files.ca {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((certificate, key)) = files.identity {
            tls = tls.identity(Identity::from_pem(certificate, key.expose_secret()));
        }
        Ok(tls)
    }

    /// The OTLP/HTTP client: the system's roots plus the named CA, the
    /// client identity, and the export timeout
    /// (`OTEL_EXPORTER_OTLP_TIMEOUT`, milliseconds, default 10 s).
    fn http_client(self) -> anyhow::Result<HttpClient> {
        // reqwest is built without a default crypto provider (so is the
        // OCI client, which installs the same one).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeout = match self.setting("TIMEOUT") {
            Some((name, value)) => Duration::from_millis(
                value
                    .parse()
                    .with_context(|| format!("{name}={value} is not a number of milliseconds"))?,
            ),
            None => Duration::from_secs(10),
        };
        let files = self.tls_files()?;
        let mut builder = reqwest::Client::builder().timeout(timeout);
        if let Some(ca) = files.ca {
            let certificates = reqwest::Certificate::from_pem_bundle(&ca)
                .context("OTEL_EXPORTER_OTLP_CERTIFICATE holds no PEM certificate")?;
            builder = builder.tls_certs_merge(certificates);
        }
        if let Some((certificate, key)) = files.identity {
            let mut pem = key.expose_secret().to_vec();
            pem.push(b'\n');
            pem.extend_from_slice(&certificate);
            let identity = reqwest::Identity::from_pem(&pem)
                .context("the OTLP client certificate and key are not a PEM identity")?;
            builder = builder.identity(identity);
        }
        let client = builder
            .build()
            .context("cannot set up the OTLP/HTTP client")?;
        Ok(HttpClient(client))
    }
}

/// Sends OTLP/HTTP requests with reqwest (run on the telemetry runtime, like
/// every export).
#[derive(Debug)]
pub(super) struct HttpClient(reqwest::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for HttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let response = self.0.execute(request).await?.error_for_status()?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut answer = http::Response::builder()
            .status(status)
            .body(response.bytes().await?)?;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}
