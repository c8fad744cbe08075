//! Components in a real OCI registry (`docker-registry`, started on a free
//! loopback port): push then pull in the Wasm artifact layout, the pull
//! policies over the content-addressed cache, and the refusals (a tampered
//! layer, a pinned digest that does not match, a non-Wasm artifact, an
//! oversized layer), then a workload started from an image reference.
//! Registries written here cover what `docker-registry` cannot play: ones
//! that ask for a token (for a password or a docker identity token), and
//! hostile ones that never stop answering.

use crate::common;

use common::*;
use nimbus_host::oci::{OciError, PullPolicy, Registry, RegistrySettings};
use nimbus_host::{HostConfig, http::DynamicRouter};
use std::sync::Arc;
use test_programs::P2_HELLO;
use test_programs::servers::{Kind, Server};
use tokio::io::AsyncWriteExt as _;

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

/// What a [`hand_made_registry`] sends.
enum Answer {
    /// A status, header lines and a whole body.
    Whole(u16, Vec<String>, Vec<u8>),
    /// A status and header lines, then 16 MiB with no length said (far past
    /// every bound of a pull, short of filling the test's memory when a
    /// bound is missing).
    Flood(u16, Vec<String>),
}

/// A registry written for one test on a free loopback port (plain HTTP):
/// `answer` is given each request's target and its head, followed by the
/// body the head declares (a token exchange's form), if any.
/// Returns `127.0.0.1:PORT`.
async fn hand_made_registry(
    answer: impl Fn(&str, &str) -> Answer + Send + Sync + 'static,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let Some(mut head) = read_request_head(&mut socket).await else {
                    return;
                };
                if read_declared_body(&mut socket, &mut head).await.is_none() {
                    return;
                }
                let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, headers, body) = match answer(&target, &head) {
                    Answer::Whole(status, headers, body) => (status, headers, Some(body)),
                    Answer::Flood(status, headers) => (status, headers, None),
                };
                let mut response = format!("HTTP/1.1 {status} Hand-made\r\nconnection: close\r\n");
                for header in headers {
                    response.push_str(&header);
                    response.push_str("\r\n");
                }
                if let Some(body) = &body {
                    response.push_str(&format!("content-length: {}\r\n", body.len()));
                }
                response.push_str("\r\n");
                if socket.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
                match body {
                    Some(body) => {
                        let _ = socket.write_all(&body).await;
                    }
                    None => {
                        let chunk = vec![b'x'; 64 * 1024];
                        for _ in 0..256 {
                            if socket.write_all(&chunk).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    addr.to_string()
}

/// Reads the rest of the body `head` declares (`content-length`) onto it.
async fn read_declared_body(socket: &mut tokio::net::TcpStream, head: &mut String) -> Option<()> {
    use tokio::io::AsyncReadExt as _;
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let body_start = head.find("\r\n\r\n")? + 4;
    let mut buf = [0u8; 4096];
    while head.len() - body_start < length {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    Some(())
}

/// The image manifest of a Wasm artifact whose one layer is `component`.
fn wasm_manifest(component: &[u8]) -> Vec<u8> {
    let config = br#"{"architecture":"wasm","os":"wasip2","layerDigests":[]}"#;
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": nimbus_host::oci::WASM_CONFIG_MEDIA_TYPE,
            "digest": nimbus_host::artifact::Digest::of(config).to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/wasm",
            "digest": nimbus_host::artifact::Digest::of(component).to_string(),
            "size": component.len(),
        }],
    })
    .to_string()
    .into_bytes()
}

fn hand_made_settings(registry: &str, cache: &std::path::Path) -> RegistrySettings {
    RegistrySettings {
        insecure: vec![registry.to_string()],
        cache_dir: Some(cache.to_path_buf()),
        // Past this a pull that was not cut off by its bounds would fail
        // with `Timeout`, not the error the tests look for.
        timeout: std::time::Duration::from_secs(30),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_never_stops_answering_is_cut_off_at_a_bound() {
    let addr: Arc<std::sync::OnceLock<String>> = Arc::default();
    let realm = addr.clone();
    let registry = hand_made_registry(move |target, _| {
        if target.starts_with("/v2/nimbus/endless/manifests/") {
            Answer::Flood(
                200,
                vec!["content-type: application/vnd.oci.image.manifest.v1+json".into()],
            )
        } else if target.starts_with("/v2/nimbus/private/") {
            let realm = realm.get().unwrap();
            Answer::Whole(
                401,
                vec![format!(
                    r#"www-authenticate: Bearer realm="http://{realm}/token",service="hand-made""#
                )],
                Vec::new(),
            )
        } else if target.starts_with("/v2/nimbus/chatty/") {
            let document = serde_json::json!({"errors": [{
                "code": "DENIED",
                "message": format!("line one\nline two\u{1b}[31m{}", "z".repeat(2000)),
            }]});
            Answer::Whole(403, Vec::new(), document.to_string().into_bytes())
        } else if target.starts_with("/token") {
            Answer::Flood(200, vec!["content-type: application/json".into()])
        } else {
            Answer::Flood(404, vec!["content-type: text/plain".into()])
        }
    })
    .await;
    addr.set(registry.clone()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let client = Registry::new(hand_made_settings(&registry, cache.path()));
    for (image, expected) in [
        ("endless", "its manifest is larger than 4194304 bytes"),
        ("private", "its token answer is larger than 65536 bytes"),
        ("gone", "the registry answered 404 Not Found: xxxx"),
        ("chatty", "403 Forbidden: DENIED: line one line two [31mzzz"),
    ] {
        let reference = format!("{registry}/nimbus/{image}:1");
        let error = client
            .pull(&reference, PullPolicy::Always)
            .await
            .unwrap_err();
        assert!(matches!(error, OciError::Registry { .. }), "{error}");
        assert!(error.to_string().contains(expected), "{error}");
        // An error body is kept to one short line.
        let message = error.to_string();
        assert!(message.len() < 600, "{message}");
        assert!(!message.chars().any(char::is_control), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_asks_for_a_token_or_a_password_gets_one() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let component = hello();
    let layer_digest = nimbus_host::artifact::Digest::of(&component).to_string();
    let manifest = wasm_manifest(&component);
    let addr: Arc<std::sync::OnceLock<String>> = Arc::default();
    let realm = addr.clone();
    let tokens_given = Arc::new(AtomicUsize::new(0));
    let given = tokens_given.clone();
    let password_to_registry = Arc::new(AtomicBool::new(false));
    let password_seen = password_to_registry.clone();
    // `nimbus:secret` in base64, as a Basic authorization header carries it
    // (hyper writes header names in lower case).
    let basic = "authorization: Basic bmltYnVzOnNlY3JldA==";
    let content = {
        let (component, manifest) = (component.clone(), manifest.clone());
        move |target: &str, said_digest: Option<String>| {
            if target.contains("/manifests/") {
                let mut headers =
                    vec!["content-type: application/vnd.oci.image.manifest.v1+json".to_string()];
                headers.extend(said_digest.map(|d| format!("docker-content-digest: {d}")));
                Answer::Whole(200, headers, manifest.clone())
            } else {
                Answer::Whole(200, Vec::new(), component.clone())
            }
        }
    };
    let registry = hand_made_registry(move |target, head| {
        let bearer_challenge = || {
            let realm = realm.get().unwrap();
            Answer::Whole(
                401,
                vec![format!(
                    r#"www-authenticate: Bearer realm="http://{realm}/token",service="hand-made",scope="repository:nimbus/bearer:pull""#
                )],
                Vec::new(),
            )
        };
        if target.starts_with("/token?") {
            // The realm is asked with the user's password, for the pull
            // scope of the repository being pulled.
            let scoped = ["bearer", "rooted"].iter().any(|repo| {
                target.contains(&format!("scope=repository%3Animbus%2F{repo}%3Apull"))
            });
            if !head.contains(basic) || !scoped {
                return Answer::Whole(401, Vec::new(), b"{}".to_vec());
            }
            given.fetch_add(1, Ordering::Relaxed);
            return Answer::Whole(200, Vec::new(), br#"{"token":"t0ken","expires_in":300}"#.to_vec());
        }
        if target == "/v2/" {
            return bearer_challenge();
        }
        let authorized = head.contains("authorization: Bearer t0ken");
        if target.starts_with("/v2/nimbus/bearer/") || target.starts_with("/v2/nimbus/rooted/") {
            if head.contains(basic) {
                password_seen.store(true, Ordering::Relaxed);
            }
            if authorized {
                return content(target, None);
            }
            // `rooted` challenges only at the API's root, as some do.
            if target.starts_with("/v2/nimbus/rooted/") {
                return Answer::Whole(401, Vec::new(), Vec::new());
            }
            return bearer_challenge();
        }
        if target.starts_with("/v2/nimbus/basic/") {
            if !head.contains(basic) {
                return Answer::Whole(
                    401,
                    vec![r#"www-authenticate: Basic realm="hand-made""#.into()],
                    Vec::new(),
                );
            }
            return content(target, None);
        }
        if target.starts_with("/v2/nimbus/lying/") {
            return content(target, Some(format!("sha256:{}", "0".repeat(64))));
        }
        Answer::Whole(404, Vec::new(), Vec::new())
    })
    .await;
    addr.set(registry.clone()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut settings = hand_made_settings(&registry, cache.path());
    let anonymous = Registry::new(settings.clone());
    settings.credentials = Some(nimbus_host::oci::Credentials {
        username: "nimbus".into(),
        password: nimbus_host::secret::Secret::new("secret"),
    });
    let with_password = Registry::new(settings);
    for image in ["bearer", "basic", "rooted"] {
        let reference = format!("{registry}/nimbus/{image}:1");
        let pulled = with_password
            .pull(&reference, PullPolicy::Always)
            .await
            .unwrap_or_else(|e| panic!("{image}: {e}"));
        assert_eq!(pulled.bytes, component, "{image}");
        assert_eq!(pulled.digest, layer_digest, "{image}");
        // Without the password the refusal is the error.
        let error = anonymous
            .pull(&reference, PullPolicy::Always)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("401"), "{image}: {error}");
    }
    // One token per pull served its manifest and its layer, and the
    // password went to the token server, never to the registry itself.
    assert_eq!(tokens_given.load(Ordering::Relaxed), 2);
    assert!(!password_to_registry.load(Ordering::Relaxed));

    // A manifest whose `Docker-Content-Digest` is not its digest is refused.
    let lying = format!("{registry}/nimbus/lying:1");
    let error = anonymous
        .pull(&lying, PullPolicy::Always)
        .await
        .unwrap_err();
    assert!(matches!(error, OciError::Digest { .. }), "{error}");
}

/// A docker identity token (`docker login` to ACR or with SSO leaves one in
/// the docker config) is an OAuth2 refresh token: it is exchanged at the
/// challenge's realm for an access token (a POST form, as docker sends it),
/// and sent to the registry itself only when the challenge names no realm.
/// A token server that refuses the POST is asked with a GET (as containerd
/// does); one that refuses both says so with a hint. The registry offers
/// `Basic` and `Bearer` in headers of their own, `Basic` first: the
/// `Bearer` one is still found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_identity_token_is_exchanged_for_an_access_token() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let component = hello();
    let manifest = wasm_manifest(&component);
    let addr: Arc<std::sync::OnceLock<String>> = Arc::default();
    let realm = addr.clone();
    let exchanges = Arc::new(AtomicUsize::new(0));
    let exchanged = exchanges.clone();
    let identity_to_registry = Arc::new(AtomicBool::new(false));
    let identity_seen = identity_to_registry.clone();
    let served = component.clone();
    // `:refresh-me` in base64: the identity token as a Basic password.
    let identity_basic = "authorization: Basic OnJlZnJlc2gtbWU=";
    let registry = hand_made_registry(move |target, head| {
        let form = head.split("\r\n\r\n").nth(1).unwrap_or_default();
        let fields: Vec<&str> = form.split('&').collect();
        let posted = head.starts_with("POST ");
        let exchange = |repository: &str| {
            let scope = format!("scope=repository%3Animbus%2F{repository}%3Apull");
            let expected = [
                "grant_type=refresh_token",
                "refresh_token=refresh-me",
                "client_id=nimbus",
                "service=hand-made",
                scope.as_str(),
            ];
            posted && expected.iter().all(|f| fields.contains(f))
        };
        let access = || {
            exchanged.fetch_add(1, Ordering::Relaxed);
            Answer::Whole(200, Vec::new(), br#"{"access_token":"acc3ss"}"#.to_vec())
        };
        let invalid = |status| Answer::Whole(status, Vec::new(), br#"{"error":"invalid_grant"}"#.to_vec());
        match target {
            "/token" if exchange("identity") => return access(),
            "/token" => return invalid(400),
            // Takes no POST; a GET with the identity token as the password.
            t if t.starts_with("/get-only?") => {
                let scoped = t.contains("scope=repository%3Animbus%2Fget-only%3Apull");
                return if !posted && scoped && head.contains(identity_basic) {
                    access()
                } else {
                    invalid(404)
                };
            }
            "/get-only" => return invalid(404),
            // Refuses the token either way (it expired).
            t if t.starts_with("/expired") => return invalid(if posted { 400 } else { 401 }),
            _ => {}
        }
        let repository = target.split('/').nth(3).unwrap_or_default();
        let realm_path = match repository {
            "get-only" => "get-only",
            "expired" => "expired",
            _ => "token",
        };
        if head.contains("refresh-me") {
            identity_seen.store(true, Ordering::Relaxed);
        }
        // `no-realm` takes the identity token itself, as a registry with
        // no token server must.
        let authorized = head.contains("authorization: Bearer acc3ss")
            || (repository == "no-realm" && head.contains("authorization: Bearer refresh-me"));
        if !authorized {
            let realm = realm.get().unwrap();
            let bearer = if repository == "no-realm" {
                r#"www-authenticate: Bearer service="hand-made""#.to_string()
            } else {
                format!(r#"www-authenticate: Bearer realm="http://{realm}/{realm_path}",service="hand-made""#)
            };
            return Answer::Whole(
                401,
                vec![r#"www-authenticate: Basic realm="hand-made""#.to_string(), bearer],
                Vec::new(),
            );
        }
        if target.contains("/manifests/") {
            let headers = vec!["content-type: application/vnd.oci.image.manifest.v1+json".into()];
            return Answer::Whole(200, headers, manifest.clone());
        }
        Answer::Whole(200, Vec::new(), served.clone())
    })
    .await;
    addr.set(registry.clone()).unwrap();
    let docker = tempfile::tempdir().unwrap();
    std::fs::write(
        docker.path().join("config.json"),
        serde_json::json!({"auths": {registry.clone(): {"identitytoken": "refresh-me"}}})
            .to_string(),
    )
    .unwrap();
    // SAFETY: nextest runs each test in its own process, and this one sets
    // the variable before starting anything that reads it.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("DOCKER_CONFIG", docker.path());
    }
    let cache = tempfile::tempdir().unwrap();
    let pulls = Registry::new(hand_made_settings(&registry, cache.path()));
    for repository in ["identity", "get-only", "no-realm"] {
        let pulled = pulls
            .pull(
                &format!("{registry}/nimbus/{repository}:1"),
                PullPolicy::Always,
            )
            .await
            .unwrap_or_else(|e| panic!("{repository}: {e}"));
        assert_eq!(pulled.bytes, component, "{repository}");
        if repository != "no-realm" {
            assert!(
                !identity_to_registry.load(Ordering::Relaxed),
                "{repository}: the identity token reached the registry"
            );
        }
    }
    assert_eq!(
        exchanges.load(Ordering::Relaxed),
        2,
        "one exchange per pull"
    );
    let error = pulls
        .pull(&format!("{registry}/nimbus/expired:1"), PullPolicy::Always)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("401") && error.contains("`docker login` again"),
        "{error}"
    );
    assert!(!error.contains('\n'), "{error}");
}

/// A docker credential helper is a process the pull waits for off the
/// async threads: one that hangs is cut by the pull's own time bound, even
/// on a single-threaded runtime, and is still running when the pull gives
/// up (the helper writes `started`, sleeps 20 s, then writes `finished`).
#[tokio::test(flavor = "current_thread")]
async fn a_hung_credential_helper_does_not_hold_the_pull() {
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("docker-credential-nimbus-test-hang");
    let marks = dir.path().display().to_string();
    std::fs::write(
        &helper,
        format!("#!/bin/sh\ntouch '{marks}/started'\nsleep 20\ntouch '{marks}/finished'\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"credsStore": "nimbus-test-hang"}"#,
    )
    .unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    // SAFETY: nextest runs each test in its own process, and this one sets
    // the variables before starting anything that reads them.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("DOCKER_CONFIG", dir.path());
        std::env::set_var("PATH", format!("{marks}:{path}"));
    }
    let cache = tempfile::tempdir().unwrap();
    let registry = Registry::new(RegistrySettings {
        cache_dir: Some(cache.path().to_path_buf()),
        timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    });
    let error = registry
        .pull("127.0.0.1:9/nimbus/any:1", PullPolicy::Always)
        .await
        .unwrap_err();
    assert!(matches!(error, OciError::Timeout { .. }), "{error}");
    assert!(dir.path().join("started").exists(), "the helper was asked");
    assert!(
        !dir.path().join("finished").exists(),
        "the pull waited for the helper to finish"
    );
}
