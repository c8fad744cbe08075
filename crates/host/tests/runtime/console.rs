//! The admin endpoint's console over real TCP: its JSON endpoints against
//! golden shapes (`golden/console-*.json`: every key and the type of its
//! value, so a renamed or dropped field fails), their figures following
//! real traffic, the wiring graph, recent requests, the token, and what
//! must never reach a page.
//!
//! `NIMBUS_UPDATE_GOLDEN=1` rewrites the golden files from what the host
//! answers (then review the diff: `a|b` alternatives are written by hand).

use crate::common;

use common::*;
use nimbus_host::http::admin::{AdminEndpoint, Readiness, serve_admin};
use nimbus_host::http::console::Console;
use nimbus_host::workload::{HostInterface, Workload};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use test_programs::{P2_PLUGINS, P3_HELLO, P3_MW_LOGGING};
use tokio::net::TcpListener;

/// A config value that must never reach a page.
const CONFIG_VALUE: &str = "value-that-stays-in-the-host";
const TOKEN: &str = "console-test-token";

/// `shop`: P3 logging middleware in front of the P2 plugins guest, which
/// imports `wasi:keyvalue`; `hello`: one P3 component.
fn workloads() -> [Workload; 2] {
    let mut shop = http_workload("shop", P2_PLUGINS, "shop.test");
    shop.spec.components[0].name = "api".into();
    shop.spec.components[0]
        .local_resources
        .config
        .insert("greeting".into(), CONFIG_VALUE.into());
    shop.spec.components[0].local_resources.timeout_ms = Some(7000);
    shop.spec.host_interfaces.push(HostInterface {
        namespace: "wasi".into(),
        package: "keyvalue".into(),
        interfaces: vec!["store".into(), "atomics".into()],
        ..Default::default()
    });
    shop.spec.middleware = vec!["log".into()];
    shop.spec
        .components
        .push(component("log", P3_MW_LOGGING, &[("MW_NAME", "log")]));
    [shop, http_workload("hello", P3_HELLO, "hello.test")]
}

async fn serve(endpoint: AdminEndpoint) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_admin(
        listener,
        endpoint,
        nimbus_host::http::IngressLimits::admin(),
        std::future::pending(),
    ));
    addr
}

async fn get(
    admin: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, String) {
    get_with_headers(admin, "127.0.0.1", path, headers).await
}

async fn api(admin: SocketAddr, path: &str) -> Value {
    let (status, headers, body) = get(admin, path, &[]).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(headers["content-type"], "application/json", "{path}");
    assert_eq!(headers["cache-control"], "no-store", "{path}");
    assert!(
        !body.contains(CONFIG_VALUE),
        "{path} shows a config value: {body}"
    );
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Every key of `value` and the type of what it holds; arrays as the
/// distinct shapes of their elements.
fn shape(value: &Value) -> Value {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(items) => {
            let mut shapes: Vec<Value> = items.iter().map(shape).collect();
            shapes.sort_by_key(|s| s.to_string());
            shapes.dedup();
            Value::Array(shapes)
        }
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
    }
}

/// Whether `actual` fits `golden`, where a golden string may list
/// alternatives (`number|null`) and a golden array lists the element
/// shapes allowed (each must appear in `actual`'s unless marked `?` by
/// being allowed to be missing: arrays need only fit).
fn fits(golden: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (golden, actual) {
        (Value::String(allowed), Value::String(found)) => allowed
            .split('|')
            .any(|a| a == found)
            .then_some(())
            .ok_or_else(|| format!("{at}: {found}, expected {allowed}")),
        (Value::Array(allowed), Value::Array(found)) => {
            for (i, element) in found.iter().enumerate() {
                if !allowed.iter().any(|a| fits(a, element, at).is_ok()) {
                    let reasons: Vec<String> = allowed
                        .iter()
                        .filter_map(|a| fits(a, element, &format!("{at}[{i}]")).err())
                        .collect();
                    return Err(format!(
                        "{at}[{i}] fits no golden element: {}",
                        reasons.join("; ")
                    ));
                }
            }
            Ok(())
        }
        (Value::Object(want), Value::Object(have)) => {
            for key in want.keys().chain(have.keys()) {
                match (want.get(key), have.get(key)) {
                    (Some(w), Some(h)) => fits(w, h, &format!("{at}.{key}"))?,
                    (Some(_), None) => return Err(format!("{at}.{key} is missing")),
                    (None, Some(_)) => {
                        return Err(format!("{at}.{key} is new (not in the golden shape)"));
                    }
                    (None, None) => unreachable!(),
                }
            }
            Ok(())
        }
        (golden, actual) => Err(format!("{at}: {actual}, expected {golden}")),
    }
}

fn check_golden(name: &str, value: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/runtime/golden")
        .join(format!("console-{name}.json"));
    let actual = shape(value);
    if std::env::var_os("NIMBUS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    if let Err(difference) = fits(&golden, &actual, name) {
        panic!(
            "/api answer differs from {}: {difference}\nanswer: {value:#}",
            path.display()
        );
    }
}

fn workload<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id)
        .unwrap_or_else(|| panic!("{id} missing: {list:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_api_has_its_shapes_and_follows_traffic() {
    let t = accounting_host().await;
    for workload in workloads() {
        t.host.start_workload(workload).await.unwrap();
    }
    let endpoint = AdminEndpoint::new(t.host.metrics().clone(), Readiness::default())
        .with_console(Console::new(t.host.clone()));
    let admin = serve(endpoint).await;

    // The page itself, with a policy that keeps it to its own scripts.
    let (status, headers, body) = get(admin, "/", &[]).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(body.contains("/assets/app.js"), "{body}");
    for asset in ["/assets/app.js", "/assets/style.css"] {
        let (status, _, body) = get(admin, asset, &[]).await;
        assert_eq!(status, 200, "{asset}");
        assert!(!body.is_empty());
    }

    // Without a token, only a request naming the host by address or as
    // localhost is answered: a rebound domain name is not.
    for (host, status) in [
        ("evil.example", 421),
        ("localhost:9090", 200),
        ("[::1]", 200),
    ] {
        let (got, _, body) = get_with_headers(admin, host, "/api/host", &[]).await;
        assert_eq!(got, status, "{host}: {body}");
    }
    assert_eq!(
        get_with_headers(admin, "evil.example", "/healthz", &[])
            .await
            .0,
        200
    );

    // Traffic, then the figures that count it.
    for _ in 0..5 {
        let (status, body) = t
            .get("shop.test", "/kv/incr?bucket=b&key=secret-in-query")
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(t.get("hello.test", "/").await.0, 200);
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = api(admin, "/api/workloads").await;
        if workload(&seen, "test/shop")["figures"]["requestsTotal"].as_u64() >= Some(5) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let shop = workload(&seen, "test/shop");
    // Each request passes the middleware and the handler, and counts once.
    assert_eq!(shop["figures"]["requestsTotal"], 5, "{shop:#}");
    let api_component = shop["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "api")
        .unwrap();
    assert_eq!(api_component["figures"]["requestsTotal"], 5);
    assert_eq!(api_component["http"], "p2");
    assert_eq!(shop["hosts"][0], "shop.test");
    assert_eq!(workload(&seen, "test/hello")["figures"]["requestsTotal"], 1);
    check_golden("workloads", &seen);

    // The rates show within a few samples of more traffic.
    let mut rate = 0.0;
    for _ in 0..30 {
        for _ in 0..5 {
            t.get("hello.test", "/").await;
        }
        let now = api(admin, "/api/workloads").await;
        rate = workload(&now, "test/hello")["figures"]["requestsPerSecond"]
            .as_f64()
            .unwrap();
        if rate > 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(rate > 0.0, "requestsPerSecond never rose");

    let host = api(admin, "/api/host").await;
    assert_eq!(host["workloadCount"], 2);
    assert_eq!(host["componentCount"], 3);
    assert_eq!(host["cluster"], false);
    assert!(host["process"]["residentBytes"].as_f64().unwrap() > 0.0);
    assert!(host["figures"]["requestsTotal"].as_u64().unwrap() >= 6);
    check_golden("host", &host);

    let history = api(admin, "/api/history").await;
    assert!(!history["points"].as_array().unwrap().is_empty());
    check_golden("history", &history);

    let detail = api(admin, "/api/workloads/test/shop").await;
    assert_eq!(detail["middleware"], serde_json::json!(["log"]));
    let nodes = detail["graph"]["nodes"].as_array().unwrap();
    let node = |kind: &str| {
        nodes
            .iter()
            .find(|n| n["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} node: {detail:#}"))
    };
    assert_eq!(node("middleware")["component"], "log");
    assert_eq!(node("handler")["component"], "api");
    assert_eq!(node("plugin")["plugin"], "keyvalue");
    assert_eq!(node("ingress")["label"], "HTTP ingress: shop.test");
    assert!(!detail["graph"]["edges"].as_array().unwrap().is_empty());
    assert!(detail["graphError"].is_null());
    let api_detail = detail["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "api")
        .unwrap();
    assert_eq!(api_detail["configKeys"], serde_json::json!(["greeting"]));
    assert_eq!(api_detail["limits"]["timeoutMs"], 7000);
    assert!(
        api_detail["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap().starts_with("wasi:keyvalue/store@")),
        "{api_detail:#}"
    );
    assert!(
        api_detail["exports"].as_array().unwrap().iter().any(|e| e
            .as_str()
            .unwrap()
            .starts_with("wasi:http/incoming-handler@")),
        "{api_detail:#}"
    );
    let recent = detail["recentRequests"].as_array().unwrap();
    assert_eq!(recent.len(), 5, "{detail:#}");
    // The query string never: it may carry tokens.
    assert_eq!(recent[0]["path"], "/kv/incr");
    assert!(!detail.to_string().contains("secret-in-query"));
    assert_eq!(recent[0]["host"], "shop.test");
    assert_eq!(recent[0]["status"], 200);
    assert!(!detail["history"].as_array().unwrap().is_empty());
    check_golden("workload", &detail);

    let cluster = api(admin, "/api/cluster").await;
    assert_eq!(cluster, serde_json::json!({ "member": false }));

    // What is not there, and what is not allowed.
    let (status, _, body) = get(admin, "/api/workloads/test/nope", &[]).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("test/nope"), "{body}");
    assert_eq!(get(admin, "/api/nothing", &[]).await.0, 404);
    let (status, headers, _) = exchange(
        admin,
        Some("127.0.0.1"),
        "POST",
        "/api/host",
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET, HEAD");

    // A stopped workload leaves the lists, its recent requests with it.
    t.host.stop_workload("test/shop").await.unwrap();
    let after = api(admin, "/api/workloads").await;
    assert_eq!(after["workloads"].as_array().unwrap().len(), 1);
    assert!(t.host.recent_requests().of("test/shop").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_data_needs_it_and_the_pages_and_probes_do_not() {
    let t = accounting_host().await;
    let readiness = Readiness::default();
    readiness.set(true);
    let endpoint = AdminEndpoint::new(t.host.metrics().clone(), readiness)
        .with_console(Console::new(t.host.clone()))
        .with_token(nimbus_model::Secret::new(TOKEN));
    let admin = serve(endpoint).await;
    let bearer = format!("Bearer {TOKEN}");
    // With a token, any host name may be used (the token is the guard).
    let (status, _, _) = get_with_headers(
        admin,
        "console.example",
        "/api/host",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 200);
    for path in ["/api/host", "/api/workloads", "/metrics"] {
        for headers in [
            vec![],
            vec![("authorization", "Bearer wrong")],
            vec![("authorization", "Basic Y29uc29sZQ==")],
            vec![("authorization", "Bearer console-test-toke")],
        ] {
            let (status, response, body) = get(admin, path, &headers).await;
            assert_eq!(status, 401, "{path} {headers:?}: {body}");
            assert_eq!(response["www-authenticate"], "Bearer");
            assert!(!body.contains(TOKEN));
        }
        let (status, _, body) = get(admin, path, &[("authorization", &bearer)]).await;
        assert_eq!(status, 200, "{path}: {body}");
        // The scheme is case-insensitive (RFC 9110).
        let lower = format!("bearer {TOKEN}");
        assert_eq!(get(admin, path, &[("authorization", &lower)]).await.0, 200);
    }
    for open in ["/", "/assets/app.js", "/healthz", "/readyz"] {
        assert_eq!(get(admin, open, &[]).await.0, 200, "{open}");
    }
    // A refused request costs no information: unknown paths under /api
    // are refused before they are looked up.
    assert_eq!(get(admin, "/api/workloads/test/x", &[]).await.0, 401);
}
