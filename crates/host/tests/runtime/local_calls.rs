//! Same-host workload-to-workload HTTP (`HostConfig::local_workload_calls`):
//! a request addressed to another workload of the host is delivered in
//! memory, under the sender's `allowedHosts`; anything else still goes over
//! the network; with the setting off nothing changes.
//!
//! The target answers on `*.test` names, which never resolve in DNS, so a
//! successful call to one cannot have gone over the network.

use crate::common;

use common::*;
use nimbus_host::HostConfig;
use nimbus_host::http::DynamicRouter;
use std::sync::Arc;
use test_programs::{P2_MW_FORWARD, P3_HELLO};

async fn host(local_workload_calls: bool) -> TestHost {
    let config = HostConfig {
        cache_dir: Some(shared_cache_dir()),
        local_workload_calls,
        ..HostConfig::default()
    };
    TestHost::start_with(config, Arc::new(DynamicRouter::new())).await
}

/// A caller on `caller.test` that fetches `?url=` (P2, `wasi:http`
/// outgoing-handler) and a P3 target on `target.test`.
async fn start_pair(t: &TestHost, allowed_hosts: &[&str]) {
    let mut caller = http_workload("caller", P2_MW_FORWARD, "caller.test");
    resources(&mut caller).allowed_hosts = allowed_hosts.iter().map(|h| h.to_string()).collect();
    t.host.start_workload(caller).await.unwrap();
    let mut target = http_workload("target", P3_HELLO, "target.test");
    resources(&mut target)
        .environment
        .config
        .insert("GREETING".into(), "hello from the target".into());
    t.host.start_workload(target).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_to_a_workload_of_the_same_host_is_delivered_in_memory() {
    let t = host(true).await;
    start_pair(&t, &["target.test"]).await;
    let (status, body) = t
        .get("caller.test", "/outside?url=http://target.test/")
        .await;
    assert_eq!((status, body.as_str()), (200, "hello from the target\n"));
    // The target sees the request as sent, path and query intact, whatever
    // port the sender named.
    let (status, body) = t
        .get(
            "caller.test",
            "/outside?url=http://target.test:8080/sleep?ms=1",
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "slept 1\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_senders_allowed_hosts_still_decide() {
    let t = host(true).await;
    start_pair(&t, &["elsewhere.test"]).await;
    let (status, body) = t
        .get("caller.test", "/outside?url=http://target.test/")
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_destination_that_is_not_a_local_workload_goes_over_the_network() {
    let upstream = upstream().await;
    let t = host(true).await;
    let allowed = format!("127.0.0.1:{}", upstream.port());
    start_pair(&t, &[allowed.as_str(), "target.test"]).await;
    let (status, body) = t
        .get("caller.test", &format!("/outside?url=http://{allowed}/"))
        .await;
    assert_eq!((status, body.as_str()), (200, "upstream ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_setting_off_a_local_host_name_goes_to_dns() {
    let t = host(false).await;
    start_pair(&t, &["target.test"]).await;
    let (status, body) = t
        .get("caller.test", "/outside?url=http://target.test/")
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains("hello from the target"), "{body}");
}
