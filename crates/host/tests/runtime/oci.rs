//! Components in a real OCI registry (`docker-registry`, started on a free
//! loopback port): push then pull in the Wasm artifact layout, the pull
//! policies over the content-addressed cache, and the refusals (a tampered
//! layer, a pinned digest that does not match, a non-Wasm artifact, an
//! oversized layer), then a workload started from an image reference.

use crate::common;

use common::*;
use nimbus_host::oci::{OciError, PullPolicy, Registry, RegistrySettings};
use nimbus_host::{HostConfig, http::DynamicRouter};
use std::sync::Arc;
use test_programs::P2_HELLO;
use test_programs::servers::{Kind, Server};

fn registry(server: &Server, cache: &std::path::Path) -> Registry {
    Registry::new(RegistrySettings {
        insecure: vec![server.url()],
        cache_dir: Some(cache.to_path_buf()),
        ..Default::default()
    })
}

fn hello() -> Vec<u8> {
    std::fs::read(P2_HELLO).unwrap()
}

#[tokio::test]
async fn push_then_pull_by_tag_and_by_digest() {
    let Some(server) = Server::start(Kind::Registry) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let registry = registry(&server, cache.path());
    let reference = format!("{}/nimbus/hello:1.0", server.url());
    let pushed = registry.push(&reference, hello()).await.unwrap();
    assert_eq!(
        pushed.digest,
        nimbus_host::artifact::Digest::of(&hello()).to_string()
    );

    let pulled = registry.pull(&reference, PullPolicy::Always).await.unwrap();
    assert_eq!(pulled.bytes, hello());
    assert_eq!(pulled.digest, pushed.digest);
    assert!(!pulled.cached);

    // Pinned by the manifest digest.
    let pinned = format!("{}/nimbus/hello@{}", server.url(), pushed.manifest_digest);
    let by_digest = registry.pull(&pinned, PullPolicy::Always).await.unwrap();
    assert_eq!(by_digest.bytes, hello());

    // IfNotPresent and Never are served from the cache, even with the
    // registry gone.
    drop(server);
    for policy in [PullPolicy::IfNotPresent, PullPolicy::Never] {
        let again = registry.pull(&reference, policy).await.unwrap();
        assert!(again.cached, "{policy:?}");
        assert_eq!(again.bytes, hello());
    }
    let error = registry
        .pull(&reference, PullPolicy::Always)
        .await
        .unwrap_err();
    // A transport failure is typed and names its root cause.
    assert!(
        matches!(
            error,
            OciError::Unreachable {
                plain_http: false,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("Connection refused"), "{error}");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn a_tampered_layer_or_an_unknown_pinned_digest_is_refused() {
    let Some(server) = Server::start(Kind::Registry) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let registry = registry(&server, cache.path());
    let reference = format!("{}/nimbus/tampered:1", server.url());
    let pushed = registry.push(&reference, hello()).await.unwrap();

    let unknown = format!("{}/nimbus/tampered@sha256:{}", server.url(), "0".repeat(64));
    let error = registry
        .pull(&unknown, PullPolicy::Always)
        .await
        .unwrap_err();
    assert!(matches!(error, OciError::Registry { .. }), "{error}");

    // Flip one byte of the stored layer: the registry now serves content
    // that does not hash to the digest its manifest names.
    let hex = pushed.digest.strip_prefix("sha256:").unwrap();
    let blob = walk(server.data_dir())
        .into_iter()
        .find(|p| p.ends_with("data") && p.parent().is_some_and(|d| d.ends_with(hex)))
        .expect("the registry stored the layer");
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let error = registry
        .pull(&reference, PullPolicy::Always)
        .await
        .unwrap_err();
    assert!(
        error.to_string().to_lowercase().contains("digest"),
        "{error}"
    );
    assert!(
        registry.pull(&reference, PullPolicy::Never).await.is_err(),
        "nothing unverified is cached"
    );
}

#[tokio::test]
async fn only_wasm_artifacts_within_the_size_limit_are_pulled() {
    let Some(server) = Server::start(Kind::Registry) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    // Built first: it installs the process's TLS provider the raw client needs.
    let registry = registry(&server, cache.path());
    // A container-style artifact: right config, wrong layer type.
    let reference = format!("{}/nimbus/not-wasm:1", server.url());
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let layers = [oci_client::client::ImageLayer::new(
        b"#!/bin/sh\necho hi\n".to_vec(),
        "application/vnd.oci.image.layer.v1.tar".into(),
        None,
    )];
    let config = oci_client::client::Config::new(
        b"{}".to_vec(),
        nimbus_host::oci::WASM_CONFIG_MEDIA_TYPE.into(),
        None,
    );
    client
        .push(
            &reference.parse().unwrap(),
            &layers,
            config,
            &oci_client::secrets::RegistryAuth::Anonymous,
            None,
        )
        .await
        .unwrap();
    let error = registry
        .pull(&reference, PullPolicy::Always)
        .await
        .unwrap_err();
    assert!(matches!(error, OciError::MediaType { .. }), "{error}");
    assert!(error.to_string().contains("image.layer.v1.tar"), "{error}");

    // An oversized layer.
    let big = format!("{}/nimbus/big:1", server.url());
    registry.push(&big, hello()).await.unwrap();
    let small = Registry::new(RegistrySettings {
        insecure: vec![server.url()],
        cache_dir: Some(cache.path().to_path_buf()),
        max_layer_bytes: 1024,
        ..Default::default()
    });
    let error = small.pull(&big, PullPolicy::Always).await.unwrap_err();
    assert!(
        matches!(error, OciError::TooLarge { limit: 1024, .. }),
        "{error}"
    );

    // Pushing something that is not a component is refused before any upload.
    let error = registry.push(&big, b"not wasm".to_vec()).await.unwrap_err();
    assert!(matches!(error, OciError::NotAComponent(_)), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_runs_from_an_image_reference() {
    let Some(server) = Server::start(Kind::Registry) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let reference = format!("{}/nimbus/served:2", server.url());
    let pushed = registry(&server, cache.path())
        .push(&reference, hello())
        .await
        .unwrap();
    let host_cache = tempfile::tempdir().unwrap();
    let config = HostConfig {
        cache_dir: Some(shared_cache_dir()),
        registry: RegistrySettings {
            insecure: vec![server.url()],
            cache_dir: Some(host_cache.path().to_path_buf()),
            ..Default::default()
        },
        ..HostConfig::default()
    };
    let t = TestHost::start_with(config, Arc::new(DynamicRouter::new())).await;
    let mut workload = http_workload("served", P2_HELLO, "served.test");
    workload.spec.components[0].image = reference.clone();
    let status = t.host.start_workload(workload).await.unwrap();
    assert_eq!(status.components[0].digest, pushed.digest);
    let (code, body) = t.get("served.test", "/").await;
    assert_eq!(code, 200, "{body}");

    // The same image in a second workload comes from the cache: the
    // registry may be gone.
    drop(server);
    let mut again = http_workload("again", P2_HELLO, "again.test");
    again.spec.components[0].image = reference;
    t.host.start_workload(again).await.unwrap();
    assert_eq!(t.get("again.test", "/").await.0, 200);
}
