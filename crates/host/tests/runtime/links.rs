//! Linking inside a workload over real HTTP: a component's imports served
//! by other components of its workload (P2 and P3, sync and async, a
//! resource crossing the boundary both ways and dropped across it), each
//! exporter in its own environment, a trap in an exporter, and the
//! start-time errors (ambiguous, cycle, unsatisfied).

use crate::common;

use common::*;
use nimbus_host::WorkloadError;
use nimbus_host::workload::{ComponentSpec, Workload};
use test_programs::{P2_LINK_APP, P2_LINK_LIB, P2_LINK_RELAY, P3_LINK_APP, P3_LINK_LIB};

/// What `/counters` answers when creating, borrowing, handing back and
/// dropping counters all crossed the link (see `shared/link_counters.rs`).
const COUNTERS_ROUND_TRIP: &str = "sum=15 live=2 finish=10 live=1 a=5 live=0\n";

/// A workload on `host` whose HTTP component is `app`, plus `others`.
fn linked(name: &str, host: &str, app: &str, others: Vec<ComponentSpec>) -> Workload {
    let mut workload = http_workload(name, app, host);
    workload.spec.components[0].name = "app".into();
    workload.spec.components.extend(others);
    workload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn a_p2_component_calls_and_shares_resources_with_a_p2_component_of_its_workload()
{
    let t = TestHost::dynamic().await;
    let lib = component("lib", P2_LINK_LIB, &[("LINK_NAME", "the lib")]);
    let workload = linked("p2", "p2.link.test", P2_LINK_APP, vec![lib]);
    t.host.start_workload(workload).await.unwrap();

    // Every P2 request gets a fresh app instance, and with it a fresh lib.
    for name in ["ann", "bo"] {
        let (status, body) = t.get("p2.link.test", &format!("/greet?name={name}")).await;
        assert_eq!(status, 200, "{body}");
        // The lib sees its own environment, not the app's.
        assert_eq!(body, format!("hello {name} from the lib\n"));
        let (status, body) = t.get("p2.link.test", "/counters").await;
        assert_eq!((status, body.as_str()), (200, COUNTERS_ROUND_TRIP));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn a_p3_component_awaits_an_async_export_that_itself_links_to_a_p2_component() {
    let t = TestHost::dynamic().await;
    let workload = linked(
        "p3",
        "p3.link.test",
        P3_LINK_APP,
        vec![
            component("async-lib", P3_LINK_LIB, &[]),
            component("lib", P2_LINK_LIB, &[]),
        ],
    );
    t.host.start_workload(workload).await.unwrap();

    // A reused P3 instance takes concurrent requests; calls into its linked
    // instances are taken one at a time and every answer stays its own.
    let requests = (0..8).map(|i| {
        let t = &t;
        async move {
            let (status, body) = t.get("p3.link.test", &format!("/greet?name=n{i}")).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body, format!("async(hello n{i} from lib)\n"));
            let (status, body) = t.get("p3.link.test", "/counters").await;
            assert_eq!((status, body.as_str()), (200, COUNTERS_ROUND_TRIP));
        }
    });
    futures::future::join_all(requests).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trap_in_a_linked_component_fails_the_request_and_the_next_one_works() {
    let t = TestHost::dynamic().await;
    let log = Captured::install_global();
    let workload = linked(
        "trap",
        "trap.link.test",
        P2_LINK_APP,
        vec![component("lib", P2_LINK_LIB, &[])],
    );
    t.host.start_workload(workload).await.unwrap();
    let (status, body) = t.get("trap.link.test", "/greet?name=trap").await;
    assert_eq!(status, 500, "{body}");
    // The failure is logged for the caller. Which cause wasmtime-wasi-http
    // reports is a race inside it: the trap (with the linked call named),
    // or, when the dropped response outparam is seen first, that no
    // response was set. Either way it is the trapped request's.
    let text = log.text();
    assert!(
        text.contains("component failed while handling a request")
            && text.contains("component=app")
            && (text.contains("call from component `app` into linked component `lib`")
                || text.contains("response-outparam::set")),
        "{text}"
    );
    let (status, body) = t.get("trap.link.test", "/greet?name=again").await;
    assert_eq!((status, body.as_str()), (200, "hello again from lib\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interface_exported_twice_is_refused_naming_the_importer_and_both_exporters() {
    let t = TestHost::dynamic().await;
    let workload = linked(
        "ambiguous",
        "ambiguous.link.test",
        P2_LINK_APP,
        vec![
            component("one", P2_LINK_LIB, &[]),
            component("two", P2_LINK_LIB, &[]),
        ],
    );
    let error = t.host.start_workload(workload).await.unwrap_err();
    assert!(matches!(error, WorkloadError::Links(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "component `app` imports `nimbus:link-test/greet`, which `one` and `two` all export; a workload can link an interface to one exporter only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn components_importing_from_each_other_are_refused_with_the_cycle_spelled_out() {
    let t = TestHost::dynamic().await;
    let workload = linked(
        "cycle",
        "cycle.link.test",
        P2_LINK_RELAY,
        vec![component("other", P2_LINK_RELAY, &[])],
    );
    let error = t.host.start_workload(workload).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "components link in a cycle: `app` imports `nimbus:link-test/greet` from `other`, `other` imports `nimbus:link-test/greet` from `app`; a component cannot reach itself through its imports"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_no_component_exports_and_no_plugin_provides_is_refused() {
    let t = TestHost::dynamic().await;
    let workload = linked("alone", "alone.link.test", P2_LINK_RELAY, vec![]);
    let error = t.host.start_workload(workload).await.unwrap_err();
    match &error {
        WorkloadError::UnsupportedImport {
            component,
            interface,
        } => assert_eq!(
            (component.as_str(), interface.as_str()),
            ("app", "nimbus:link-test/greet")
        ),
        other => panic!("unexpected error: {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "component `app` imports `nimbus:link-test/greet`, which no other component of the workload exports and this host does not provide"
    );
}
