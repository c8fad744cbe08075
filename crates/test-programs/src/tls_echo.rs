//! A TLS server for the `wasi:tls` tests: its own certificate authority
//! (rcgen), a server certificate for the names asked for, and a loopback
//! listener that answers each connection's first line with `pong`.

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A server certificate for some names, signed by a fresh certificate
/// authority of its own.
pub struct TestCertificate {
    /// The authority, PEM: what a client must trust.
    pub ca_pem: String,
    /// The server's certificate, PEM.
    pub cert_pem: String,
    /// The server's private key, PEM (PKCS #8).
    pub key_pem: String,
    cert_der: rustls::pki_types::CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestCertificate {
    /// A certificate naming `names`, signed by a new CA.
    pub fn issue(names: &[&str]) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "nimbus test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
            cert_der: leaf.der().clone(),
            key_der: leaf_key.serialize_der(),
        }
    }
}

/// A running TLS server; it stops when dropped.
pub struct TlsEcho {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    /// Its certificate authority, PEM: what a client must trust.
    pub ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl TlsEcho {
    /// Starts a server whose certificate names `names`, signed by a fresh CA.
    pub async fn start(names: &[&str]) -> Self {
        let issued = TestCertificate::issue(names);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![issued.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.key_der.clone())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A failed handshake is what some tests expect.
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut stream = BufReader::new(stream);
                    let mut line = String::new();
                    if stream.read_line(&mut line).await.is_ok() {
                        let _ = stream.get_mut().write_all(b"pong\n").await;
                        let _ = stream.get_mut().shutdown().await;
                    }
                });
            }
        });
        Self {
            addr,
            ca_pem: issued.ca_pem,
            task,
        }
    }
}

impl Drop for TlsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}
