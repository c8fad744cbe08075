//! `wasi:tls` (experimental): a guest talks TLS over its own socket to a
//! local server with a test CA. The outbound policy comes first (the
//! socket's address, then the server name against `allowedHosts`), then
//! validation (the CA, the name); each failure reaches the guest as an
//! error, and a workload that has not opted in does not start.

use crate::accounting::{sample, scrape};
use crate::common::*;
use nimbus_host::workload::{HostInterface, Workload};
use std::collections::BTreeMap;
use test_programs::P2_TLS;
use test_programs::tls_echo::TlsEcho;

/// The `p2_tls` guest as workload `name` at `name.test`, with `wasi:sockets`
/// and (when `tls` is given) a `wasi:tls` entry with that config.
fn tls_workload(name: &str, tls: Option<&[(&str, &str)]>, allowed: &[&str]) -> Workload {
    let mut workload = http_workload(name, P2_TLS, &format!("{name}.test"));
    grant_tcp_sockets(&mut workload);
    if let Some(config) = tls {
        workload.spec.host_interfaces.push(HostInterface {
            namespace: "wasi".into(),
            package: "tls".into(),
            interfaces: vec!["types".into()],
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ..Default::default()
        });
    }
    resources(&mut workload).allowed_hosts = allowed.iter().map(|h| h.to_string()).collect();
    workload
}

#[tokio::test]
pub(crate) async fn a_guest_talks_tls_to_a_server_it_trusts_and_each_failure_reaches_it() {
    let server = TlsEcho::start(&["tls.test"]).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &server.ca_pem).unwrap();
    let bundle = bundle.to_str().unwrap();
    let t = accounting_host().await;
    let port = server.addr.port();
    let start = async |workload| t.host.start_workload(workload).await;
    let ask = async |workload: &str, name: &str| {
        let path = format!("/tls?port={port}&name={name}");
        t.get(&format!("{workload}.test"), &path).await
    };

    let trusted = [("caBundle", bundle)];
    let allowed = ["127.0.0.1", "tls.test", "other.test"];
    start(tls_workload("good", Some(&trusted), &allowed))
        .await
        .unwrap();

    // Trusted CA, right name, allowed: the exchange goes through.
    assert_eq!(ask("good", "tls.test").await, (200, "reply: pong\n".into()));

    // A name the certificate does not carry: validation fails.
    let (status, body) = ask("good", "other.test").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.starts_with("error: handshake:"), "{body}");
    assert!(body.contains("certificate not valid for name"), "{body}");

    // A name not in allowedHosts: refused before any TLS.
    let (status, body) = ask("good", "elsewhere.test").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("not in the component's allowedHosts"),
        "{body}"
    );

    // Each handshake is a plugin call, counted by outcome.
    let metrics = scrape(&t.host.metrics().encode());
    let handshakes = |outcome: &'static str| {
        let labels = [
            ("workload", "good"),
            ("interface", "wasi:tls/types"),
            ("outcome", outcome),
        ];
        sample(&metrics, "nimbus_plugin_calls_total", &labels)
    };
    assert_eq!(handshakes("ok"), Some(1.0));
    assert_eq!(handshakes("error"), Some(2.0));

    // The system's roots only: the test CA is unknown.
    start(tls_workload("untrusting", Some(&[]), &allowed))
        .await
        .unwrap();
    let (status, body) = ask("untrusting", "tls.test").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("invalid peer certificate: UnknownIssuer"),
        "{body}"
    );

    // Loopback not named in allowedHosts: the socket never connects.
    start(tls_workload("unnamed", Some(&trusted), &["tls.test"]))
        .await
        .unwrap();
    let (status, body) = ask("unnamed", "tls.test").await;
    assert_eq!(
        (status, body.as_str()),
        (502, "error: connect: access-denied\n")
    );
}

#[tokio::test]
async fn wasi_tls_is_refused_without_opt_in_or_with_bad_settings() {
    let t = TestHost::dynamic().await;
    let error = async |workload| {
        t.host
            .start_workload(workload)
            .await
            .unwrap_err()
            .to_string()
    };

    let message = error(tls_workload("off", None, &["tls.test"])).await;
    assert!(message.contains("wasi:tls is experimental"), "{message}");

    let message = error(tls_workload("typo", Some(&[("caBundel", "x")]), &[])).await;
    assert!(message.contains("unknown setting `caBundel`"), "{message}");

    let message = error(tls_workload(
        "missing",
        Some(&[("caBundle", "/nonexistent/ca.pem")]),
        &[],
    ))
    .await;
    assert!(
        message.contains("caBundle `/nonexistent/ca.pem`"),
        "{message}"
    );

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let config = [("caBundle", garbage.to_str().unwrap())];
    let message = error(tls_workload("garbage", Some(&config), &[])).await;
    assert!(message.contains("no certificate in it"), "{message}");

    let config = [("systemRoots", "maybe")];
    let message = error(tls_workload("roots", Some(&config), &[])).await;
    assert!(message.contains("systemRoots: `maybe`"), "{message}");
}
