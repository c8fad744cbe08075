//! Host component plugins: a plugin component named in the host's config
//! exports an interface workloads import; it runs as one instance in a
//! store of its own (its environment and `allowedHosts`), serves the
//! workloads of the host, and is started afresh after it traps.

use crate::common;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use nimbus_host::HostConfig;
use nimbus_host::http::router::DynamicRouter;
use std::net::SocketAddr;
use std::sync::Arc;
use test_programs::{P2_VAULT_PLUGIN, P2_VAULT_USER};
use tokio::net::TcpListener;

const TOKEN: &str = "root-token";

/// A Vault-shaped API (KV version 2): `GET /v1/secret/data/NAME` with the
/// right `X-Vault-Token` answers `{"data":{"data":{"value":"value-of-NAME"}}}`;
/// a wrong token 403, the name `missing` 404.
async fn vault() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: http::Request<_>| async move {
                    let token = request
                        .headers()
                        .get("x-vault-token")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let name = request
                        .uri()
                        .path()
                        .strip_prefix("/v1/secret/data/")
                        .unwrap_or_default()
                        .to_string();
                    let (status, body) = if token != TOKEN {
                        (403, r#"{"errors":["permission denied"]}"#.to_string())
                    } else if name == "missing" || name.is_empty() {
                        (404, r#"{"errors":[]}"#.to_string())
                    } else {
                        (
                            200,
                            format!(
                                r#"{{"data":{{"data":{{"value":"value-of-{name}"}},"metadata":{{"version":1}}}}}}"#
                            ),
                        )
                    };
                    let response = http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A host with the vault plugin, its environment and allowed hosts as given.
async fn host_with_plugin(env: &[(&str, &str)], allowed: &[String]) -> TestHost {
    let mut plugin = component("vault", P2_VAULT_PLUGIN, env);
    plugin.local_resources.allowed_hosts = allowed.to_vec();
    let config = HostConfig {
        cache_dir: Some(shared_cache_dir()),
        component_plugins: vec![plugin],
        ..Default::default()
    };
    TestHost::start_with(config, Arc::new(DynamicRouter::new())).await
}

async fn get(t: &TestHost, host: &str, path: &str) -> (u16, String) {
    request(t.addr, Some(host), "GET", path, Bytes::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn workloads_import_a_host_component_plugin_that_restarts_after_a_trap() {
    let vault = vault().await;
    let addr = format!("http://{vault}");
    let t = host_with_plugin(
        &[("VAULT_ADDR", &addr), ("VAULT_TOKEN", TOKEN)],
        &[vault.to_string()],
    )
    .await;
    // Two workloads import the plugin's interface; neither lists it.
    for name in ["app-a", "app-b"] {
        t.host
            .start_workload(http_workload(name, P2_VAULT_USER, &format!("{name}.test")))
            .await
            .unwrap();
    }

    // The plugin calls the API with its own environment (the token never
    // reaches the workloads).
    assert_eq!(
        get(&t, "app-a.test", "/secret/db").await,
        (200, "value-of-db".into())
    );
    let (status, body) = get(&t, "app-b.test", "/secret/missing").await;
    assert_eq!(status, 502);
    assert!(body.contains("vault answered 404"), "{body}");

    // One instance serves both workloads: its count goes on across them.
    assert_eq!(get(&t, "app-a.test", "/calls").await, (200, "3".into()));
    assert_eq!(get(&t, "app-b.test", "/calls").await, (200, "4".into()));

    // A trap fails the call that caused it; the next call gets a fresh
    // instance (its count starts again), and the other workload is served.
    let (status, _) = get(&t, "app-a.test", "/crash").await;
    assert_eq!(status, 500);
    assert_eq!(get(&t, "app-b.test", "/calls").await, (200, "1".into()));
    assert_eq!(
        get(&t, "app-b.test", "/secret/api").await,
        (200, "value-of-api".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn a_host_component_plugin_reaches_only_its_own_allowed_hosts() {
    let vault = vault().await;
    let addr = format!("http://{vault}");
    // Its allowed hosts do not include the API.
    let t = host_with_plugin(
        &[("VAULT_ADDR", &addr), ("VAULT_TOKEN", TOKEN)],
        &["example.invalid".to_string()],
    )
    .await;
    t.host
        .start_workload(http_workload("app", P2_VAULT_USER, "app.test"))
        .await
        .unwrap();
    let (status, body) = get(&t, "app.test", "/secret/db").await;
    assert_eq!(status, 502);
    assert!(body.contains("HttpRequestDenied"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn a_plugin_that_cannot_load_fails_the_start_with_its_name() {
    let mut plugin = component("broken", "/nonexistent/plugin.wasm", &[]);
    plugin.image = "file:///nonexistent/plugin.wasm".into();
    let config = HostConfig {
        cache_dir: Some(shared_cache_dir()),
        component_plugins: vec![plugin],
        ..Default::default()
    };
    let t = TestHost::start_with(config, Arc::new(DynamicRouter::new())).await;
    let error = t
        .host
        .start_workload(http_workload("app", P2_VAULT_USER, "app.test"))
        .await
        .unwrap_err();
    let text = format!("{error:#}");
    assert!(text.contains("host component plugin `broken`"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn plugins_serve_plain_values_and_their_namespace_is_the_hosts() {
    // A plugin exporting a resource is refused: its handles would be shared
    // by every workload and lost at each restart.
    let config = HostConfig {
        cache_dir: Some(shared_cache_dir()),
        component_plugins: vec![component("counters", test_programs::P2_LINK_LIB, &[])],
        ..Default::default()
    };
    let t = TestHost::start_with(config, Arc::new(DynamicRouter::new())).await;
    let error = t
        .host
        .start_workload(http_workload("app", P2_VAULT_USER, "app.test"))
        .await
        .unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("host component plugin `counters`")
            && text.contains("exports resource `counter`"),
        "{text}"
    );

    // A workload cannot take the plugins' namespace.
    let t = host_with_plugin(&[], &[]).await;
    let mut squatter = http_workload("vault", P2_VAULT_USER, "squat.test");
    squatter.namespace = "host-plugins".into();
    let error = t.host.start_workload(squatter).await.unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("metadata.namespace") && text.contains("host's own"),
        "{text}"
    );
}
