//! Static composition against dynamic linking: the same components linked
//! at run time, composed at start (`compose: true`) and composed ahead of
//! time (`nimbus_host::compose`, what `nimbus compose` writes) answer
//! every request identically.

use crate::common;

use common::*;
use nimbus_host::WorkloadError;
use nimbus_host::compose::{self, ComposeError, Part};
use nimbus_host::workload::Workload;
use test_programs::{P2_LINK_APP, P2_LINK_LIB, P3_LINK_APP, P3_LINK_LIB};

const PATHS: &[&str] = &["/greet?name=ann", "/counters", "/greet?name=bo"];

/// `app` plus `others`, named as in the dynamic workload.
fn workload(name: &str, host: &str, app: &str, others: &[(&str, &str)], compose: bool) -> Workload {
    let mut workload = http_workload(name, app, host);
    workload.spec.components[0].name = "app".into();
    workload.spec.components.extend(
        others
            .iter()
            .map(|(name, guest)| component(name, guest, &[])),
    );
    workload.spec.compose = compose;
    workload
}

/// Starts the three variants of `app` + `others` and checks they answer
/// alike; returns the answers.
async fn three_ways_alike(app: &str, others: &[(&str, &str)]) -> Vec<String> {
    let t = TestHost::dynamic().await;
    let dynamic = t
        .host
        .start_workload(workload("dynamic", "dynamic.test", app, others, false))
        .await
        .unwrap();
    assert_eq!(dynamic.components.len(), 1 + others.len());
    let composed = t
        .host
        .start_workload(workload("composed", "composed.test", app, others, true))
        .await
        .unwrap();
    // One component runs: the parts are inside it.
    let names: Vec<&str> = composed
        .components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["app"]);

    let bytes: Vec<(String, Vec<u8>)> = std::iter::once(("app", app))
        .chain(others.iter().copied())
        .map(|(name, path)| (name.to_string(), std::fs::read(path).unwrap()))
        .collect();
    let parts: Vec<Part<'_>> = bytes
        .iter()
        .map(|(name, bytes)| Part { name, bytes })
        .collect();
    let composition = compose::compose(&parts, "app").unwrap();
    let mut absorbed = composition.absorbed.clone();
    absorbed.sort();
    let mut expected: Vec<String> = others.iter().map(|(n, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(absorbed, expected);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.wasm");
    std::fs::write(&file, &composition.bytes).unwrap();
    t.host
        .start_workload(http_workload(
            "static",
            file.to_str().unwrap(),
            "static.test",
        ))
        .await
        .unwrap();

    let mut answers = Vec::new();
    for path in PATHS {
        let (status, expected) = t.get("dynamic.test", path).await;
        assert_eq!(status, 200, "{path}: {expected}");
        for host in ["composed.test", "static.test"] {
            let (status, body) = t.get(host, path).await;
            assert_eq!((status, &body), (200, &expected), "{host}{path}");
        }
        answers.push(expected);
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn p2_components_answer_alike_linked_composed_at_start_and_composed_ahead() {
    let answers = three_ways_alike(P2_LINK_APP, &[("lib", P2_LINK_LIB)]).await;
    assert_eq!(answers[0], "hello ann from lib\n");
    assert_eq!(answers[1], "sum=15 live=2 finish=10 live=1 a=5 live=0\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn p3_and_p2_components_answer_alike_linked_composed_at_start_and_composed_ahead() {
    let answers = three_ways_alike(
        P3_LINK_APP,
        &[("async-lib", P3_LINK_LIB), ("lib", P2_LINK_LIB)],
    )
    .await;
    assert_eq!(answers[0], "async(hello ann from lib)\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn composition_applies_the_linking_rules() {
    let app = std::fs::read(P2_LINK_APP).unwrap();
    let lib = std::fs::read(P2_LINK_LIB).unwrap();
    let parts = [
        Part {
            name: "app",
            bytes: &app,
        },
        Part {
            name: "one",
            bytes: &lib,
        },
        Part {
            name: "two",
            bytes: &lib,
        },
    ];
    let error = compose::compose(&parts, "app").unwrap_err();
    assert!(matches!(error, ComposeError::Links(_)), "{error}");
    assert!(
        error.to_string().contains("`one` and `two` all export"),
        "{error}"
    );
    let error = compose::compose(&parts[1..], "one").unwrap_err();
    assert_eq!(
        error.to_string(),
        "component `one` imports nothing the other components export: there is nothing to compose"
    );

    let t = TestHost::dynamic().await;
    let ambiguous = workload(
        "ambiguous",
        "ambiguous.test",
        P2_LINK_APP,
        &[("one", P2_LINK_LIB), ("two", P2_LINK_LIB)],
        true,
    );
    let error = t.host.start_workload(ambiguous).await.unwrap_err();
    assert!(matches!(error, WorkloadError::Links(_)), "{error:?}");
}
