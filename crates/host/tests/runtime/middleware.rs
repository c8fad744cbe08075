//! HTTP middleware chains over real TCP: onion order, short-circuit, header
//! changes both ways, P2 and P3 layers mixed, failures inside a layer, and
//! the start-time checks.

use crate::common;

use common::*;
use nimbus_host::WorkloadError;
use nimbus_host::workload::{ComponentSpec, Workload};
use test_programs::{P2_MW_FORWARD, P3_HELLO, P3_MW_AUTH, P3_MW_LOGGING};

/// A workload on `host` whose handler is P3 hello (it echoes request
/// headers on `/headers`), with `layers` listed as middleware in order.
fn chain(name: &str, host: &str, layers: Vec<ComponentSpec>) -> Workload {
    let mut workload = http_workload(name, P3_HELLO, host);
    workload.spec.components[0].name = "handler".into();
    workload.spec.middleware = layers.iter().map(|c| c.name.clone()).collect();
    workload.spec.components.extend(layers);
    workload
}

fn logging(name: &str) -> ComponentSpec {
    component(name, P3_MW_LOGGING, &[("MW_NAME", name)])
}

fn header(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn three_middlewares_wrap_the_handler_in_onion_order() {
    let t = TestHost::dynamic().await;
    let workload = chain(
        "onion",
        "onion.test",
        vec![logging("a"), logging("b"), logging("c")],
    );
    t.host.start_workload(workload).await.unwrap();
    for _ in 0..3 {
        let (status, headers, body) = get_with_headers(t.addr, "onion.test", "/headers", &[]).await;
        assert_eq!(status, 200, "{body}");
        // In: a, b, c, then the handler sees the trail they built.
        assert!(body.contains("x-trail: a,b,c\n"), "{body}");
        // Out: c, b, a.
        assert_eq!(header(&headers, "x-trail").as_deref(), Some("c,b,a"));
        let timings: Vec<String> = headers
            .get_all("server-timing")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .collect();
        assert_eq!(timings, ["c", "b", "a"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn auth_middleware_short_circuits_and_edits_headers_inward() {
    let t = TestHost::dynamic().await;
    let auth = component("auth", P3_MW_AUTH, &[("AUTH_TOKEN", "s3cret")]);
    let workload = chain("auth", "auth.test", vec![auth, logging("log")]);
    t.host.start_workload(workload).await.unwrap();

    for presented in [None, Some("Bearer wrong"), Some("Basic s3cret")] {
        let headers: Vec<(&str, &str)> = presented
            .map(|p| ("authorization", p))
            .into_iter()
            .collect();
        let (status, response_headers, body) =
            get_with_headers(t.addr, "auth.test", "/headers", &headers).await;
        assert_eq!(status, 401, "{presented:?}: {body}");
        assert_eq!(
            header(&response_headers, "www-authenticate").as_deref(),
            Some("Bearer")
        );
        // Answered by the outer layer: the inner one never ran.
        assert_eq!(header(&response_headers, "x-trail"), None);
    }

    let (status, headers, body) = get_with_headers(
        t.addr,
        "auth.test",
        "/headers",
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("x-authenticated: yes\n"), "{body}");
    assert!(
        !body.contains("authorization"),
        "the token went inward: {body}"
    );
    assert!(body.contains("x-trail: log\n"), "{body}");
    assert_eq!(header(&headers, "x-trail").as_deref(), Some("log"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn p2_and_p3_middleware_mix_in_one_chain() {
    let t = TestHost::dynamic().await;
    let p2 = |name: &str| component(name, P2_MW_FORWARD, &[("MW_NAME", name)]);
    let workload = chain("mixed", "mixed.test", vec![p2("a"), logging("b"), p2("c")]);
    t.host.start_workload(workload).await.unwrap();
    let (status, headers, body) = get_with_headers(t.addr, "mixed.test", "/headers", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("x-trail: a,b,c\n"), "{body}");
    assert_eq!(header(&headers, "x-trail").as_deref(), Some("c,b,a"));

    // A P2 layer short-circuits: the layers inside it never run.
    let (status, headers, body) =
        get_with_headers(t.addr, "mixed.test", "/headers", &[("x-block", "c")]).await;
    assert_eq!((status, body.as_str()), (403, "blocked by c\n"));
    assert_eq!(header(&headers, "x-trail").as_deref(), Some("b,a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_middleware_request_elsewhere_is_ordinary_outbound_http() {
    let t = TestHost::dynamic().await;
    let upstream = upstream().await;
    let mut outer = component("outer", P2_MW_FORWARD, &[("MW_NAME", "outer")]);
    let workload = chain("out", "out.test", vec![outer.clone()]);
    t.host.start_workload(workload).await.unwrap();
    let path = format!("/outside?url=http://{upstream}/");
    // Not its own authority: the outbound policy applies (deny by default).
    let (status, _, body) = get_with_headers(t.addr, "out.test", &path, &[]).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("denied") || body.contains("Denied"), "{body}");

    outer.local_resources.allowed_hosts = vec![upstream.to_string()];
    let workload = chain("out", "out.test", vec![outer]);
    t.host.replace_workload(workload).await.unwrap();
    let (status, _, body) = get_with_headers(t.addr, "out.test", &path, &[]).await;
    assert_eq!((status, body.as_str()), (200, "upstream ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_middleware_becomes_a_5xx_naming_it() {
    let logs = Captured::install_global();
    let t = TestHost::dynamic().await;
    let workload = chain("fail", "fail.test", vec![logging("a"), logging("b")]);
    t.host.start_workload(workload).await.unwrap();
    let (status, headers, body) =
        get_with_headers(t.addr, "fail.test", "/", &[("x-fail", "b")]).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("component `b` of workload `test/fail`"),
        "{body}"
    );
    // The outer layer still ran and passed the failure on.
    assert_eq!(header(&headers, "x-trail").as_deref(), Some("a"));
    let log = logs.text();
    let line = log
        .lines()
        .find(|l| l.contains("failed while handling a request"))
        .unwrap_or_else(|| panic!("no failure logged: {log}"));
    assert!(
        line.contains("component=b") && line.contains("test/fail"),
        "{line}"
    );

    let (status, _, body) = get_with_headers(t.addr, "fail.test", "/", &[("x-fail", "a")]).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("component `a` of workload `test/fail`"),
        "{body}"
    );
    // The chain keeps serving.
    assert_eq!(get_with_headers(t.addr, "fail.test", "/", &[]).await.0, 200);
}

#[tokio::test]
async fn chains_that_cannot_work_are_refused_at_start() {
    let t = TestHost::dynamic().await;
    let mut unknown = chain("bad", "bad.test", vec![logging("a")]);
    unknown.spec.middleware = vec!["nope".into()];
    let err = t
        .host
        .start_workload(unknown)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.middleware[0]") && err.contains("nope"),
        "{err}"
    );

    // A component that imports wasi:http/handler but is not listed.
    let mut unlisted = chain("bad", "bad.test", vec![logging("a")]);
    unlisted.spec.middleware.clear();
    let err = t.host.start_workload(unlisted).await.unwrap_err();
    assert!(matches!(err, WorkloadError::Middleware { .. }), "{err}");
    assert!(err.to_string().contains("middleware `a`"), "{err}");
    assert!(err.to_string().contains("wasi:http/handler@0.3.0"), "{err}");

    // Nothing to wrap.
    let mut alone = chain("bad", "bad.test", vec![logging("a")]);
    alone.spec.components.remove(0);
    let err = t.host.start_workload(alone).await.unwrap_err().to_string();
    assert!(
        err.contains("one component must be the HTTP handler"),
        "{err}"
    );

    // Two handlers: which one would the chain wrap?
    let mut two = chain("bad", "bad.test", vec![logging("a")]);
    let mut second = two.spec.components[0].clone();
    second.name = "handler2".into();
    two.spec.components.push(second);
    let err = t.host.start_workload(two).await.unwrap_err().to_string();
    assert!(err.contains("exactly one handler"), "{err}");
    assert!(t.host.workloads().is_empty());
}
