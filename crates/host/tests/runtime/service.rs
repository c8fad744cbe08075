//! A workload's long-lived service (`spec.service`, a `wasi:cli/run`
//! component): started with the workload, reached by its HTTP component
//! over the workload's virtual loopback network (no host socket), restarted
//! after a failure until `maxRestarts` is spent, and stopped with the
//! workload.

use crate::common;

use common::*;
use nimbus_host::WorkloadError;
use nimbus_host::workload::{
    HostPathVolume, LocalResources, ServiceSpec, ServiceState, ServiceStatus, Volume, VolumeMount,
    Workload,
};
use std::time::{Duration, Instant};
use test_programs::{P2_SERVICE, P2_SERVICE_CLIENT, P3_SERVICE};

/// A port nothing on the host listens on right now.
fn free_host_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP client component on `host` and the echo service, both told the
/// service's port.
fn with_service(name: &str, host: &str, port: u16, max_restarts: u64) -> Workload {
    let mut workload = http_workload(name, P2_SERVICE_CLIENT, host);
    let port = port.to_string();
    resources(&mut workload)
        .environment
        .config
        .insert("SERVICE_PORT".into(), port.clone());
    let mut service = LocalResources::default();
    service
        .environment
        .config
        .insert("SERVICE_PORT".into(), port);
    workload.spec.service = Some(ServiceSpec {
        image: format!("file://{P2_SERVICE}"),
        local_resources: service,
        max_restarts,
        ..Default::default()
    });
    workload
}

/// Asks the service through the client until it answers (it may still be
/// starting or restarting); returns `(started, echoed line)`.
async fn ask(t: &TestHost, host: &str, line: &str) -> (String, String) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, body) = t.get(host, &format!("/ask?line={line}")).await;
        if status == 200 {
            let (started, echoed) = body.trim().split_once(' ').expect("`started line`");
            return (started.to_string(), echoed.to_string());
        }
        assert_eq!(status, 502, "{body}");
        assert!(
            Instant::now() < deadline,
            "the service never answered: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn service_status(t: &TestHost, id: &str) -> ServiceStatus {
    t.host
        .workload_status(id)
        .expect("workload runs")
        .service
        .expect("workload has a service")
}

/// Waits until the service's status satisfies `done`.
async fn wait_for_service(
    t: &TestHost,
    id: &str,
    done: impl Fn(&ServiceStatus) -> bool,
) -> ServiceStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let status = service_status(t, id);
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "service stuck at {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn components_reach_the_service_over_the_virtual_loopback() {
    let t = TestHost::dynamic().await;
    let port = free_host_port();
    let status = t
        .host
        .start_workload(with_service("one", "one.test", port, 0))
        .await
        .unwrap();
    assert!(
        status.components.iter().any(|c| c.name == "service"),
        "{status:?}"
    );
    let (started, echoed) = ask(&t, "one.test", "hello").await;
    assert_eq!(echoed, "hello");
    assert!(started.parse::<u128>().unwrap() > 0);
    assert_eq!(service_status(&t, "test/one").state, ServiceState::Running);

    // The service listens on the workload's own network, not the host's.
    let real = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(
        real.is_err(),
        "the service's port is open on the host: {real:?}"
    );

    // A second workload's service listens on the same port, each on its
    // own network: each client reaches its own service.
    t.host
        .start_workload(with_service("two", "two.test", port, 0))
        .await
        .unwrap();
    let (other_started, echoed) = ask(&t, "two.test", "again").await;
    assert_eq!(echoed, "again");
    assert_ne!(other_started, started);
    assert_eq!(
        ask(&t, "one.test", "still").await,
        (started, "still".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trapping_service_is_restarted_until_max_restarts() {
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(with_service("crashy", "crashy.test", 7000, 2))
        .await
        .unwrap();
    let (first, _) = ask(&t, "crashy.test", "hello").await;

    // The trap takes the connection down with the service.
    let (status, body) = t.get("crashy.test", "/ask?line=crash").await;
    assert_eq!(status, 502, "{body}");
    let restarted = wait_for_service(&t, "test/crashy", |s| s.restarts == 1).await;
    assert!(
        restarted
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("wasm"),
        "{restarted:?}"
    );
    let (second, echoed) = ask(&t, "crashy.test", "back").await;
    assert_eq!(echoed, "back");
    assert_ne!(second, first, "a restart starts a fresh instance");
    assert_eq!(
        service_status(&t, "test/crashy").state,
        ServiceState::Running
    );

    // A non-zero exit is a failure too; then the restarts are spent.
    t.get("crashy.test", "/ask?line=exit").await;
    wait_for_service(&t, "test/crashy", |s| s.restarts == 2).await;
    ask(&t, "crashy.test", "last").await;
    t.get("crashy.test", "/ask?line=crash").await;
    let failed = wait_for_service(&t, "test/crashy", |s| s.state == ServiceState::Failed).await;
    assert_eq!(failed.restarts, 2);
    let (status, body) = t.get("crashy.test", "/ask?line=anyone").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("cannot reach the service"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_non_zero_exit_is_reported() {
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(with_service("exits", "exits.test", 7000, 0))
        .await
        .unwrap();
    ask(&t, "exits.test", "hello").await;
    t.get("exits.test", "/ask?line=exit").await;
    let failed = wait_for_service(&t, "test/exits", |s| s.state == ServiceState::Failed).await;
    assert_eq!(failed.restarts, 0);
    let error = failed.last_error.unwrap_or_default();
    assert!(
        error.starts_with("exited with status ") && error != "exited with status 0",
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_stops_with_its_workload() {
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = dir.path().join("heartbeat");
    let t = TestHost::dynamic().await;
    let mut workload = with_service("beats", "beats.test", 7000, 0);
    workload.spec.volumes.push(Volume {
        name: "data".into(),
        host_path: Some(HostPathVolume {
            path: dir.path().display().to_string(),
        }),
        empty_dir: None,
    });
    let service = workload.spec.service.as_mut().unwrap();
    service.local_resources.volume_mounts.push(VolumeMount {
        name: "data".into(),
        mount_path: "/data".into(),
        read_only: Some(false),
    });
    service
        .local_resources
        .environment
        .config
        .insert("HEARTBEAT_FILE".into(), "/data/heartbeat".into());
    t.host.start_workload(workload).await.unwrap();

    let beats = || std::fs::metadata(&heartbeat).map(|m| m.len()).unwrap_or(0);
    let deadline = Instant::now() + TIMEOUT;
    while beats() < 3 {
        assert!(Instant::now() < deadline, "the service never beat");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let stopped = t.host.stop_workload("test/beats").await.unwrap();
    assert_eq!(stopped.service.unwrap().state, ServiceState::Stopped);
    // One beat may have been under way; after that, silence.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_stop = beats();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        beats(),
        after_stop,
        "the service still runs after its workload stopped"
    );
}

#[tokio::test]
async fn a_service_must_export_run() {
    let t = TestHost::dynamic().await;
    // An empty component: it exports nothing, `wasi:cli/run` included.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, wat::parse_str("(component)").unwrap()).unwrap();
    let mut workload = with_service("norun", "norun.test", 7000, 0);
    workload.spec.service.as_mut().unwrap().image = format!("file://{}", empty.display());
    let error = t.host.start_workload(workload).await.unwrap_err();
    assert!(matches!(error, WorkloadError::Service { .. }), "{error:?}");
    assert!(
        error.to_string().contains("does not export wasi:cli/run"),
        "{error}"
    );
}

/// A workload made of a P3 service alone.
fn p3_service_only(name: &str, env: &[(&str, &str)], max_restarts: u64) -> Workload {
    let mut workload = http_workload(name, P3_SERVICE, &format!("{name}.test"));
    let mut service = workload.spec.components.remove(0).local_resources;
    workload.spec.host_interfaces.clear();
    for (k, v) in env {
        service
            .environment
            .config
            .insert(k.to_string(), v.to_string());
    }
    workload.spec.service = Some(ServiceSpec {
        image: format!("file://{P3_SERVICE}"),
        local_resources: service,
        max_restarts,
        ..Default::default()
    });
    workload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn a_p3_service_runs_its_async_run_and_is_restarted() {
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(p3_service_only("p3crash", &[("CRASH_AFTER_MS", "20")], 2))
        .await
        .unwrap();
    let failed = wait_for_service(&t, "test/p3crash", |s| s.state == ServiceState::Failed).await;
    assert_eq!(failed.restarts, 2);
    assert!(failed.last_error.is_some(), "{failed:?}");

    t.host
        .start_workload(p3_service_only("p3done", &[("EXIT_OK", "1")], 2))
        .await
        .unwrap();
    let exited = wait_for_service(&t, "test/p3done", |s| s.state == ServiceState::Exited).await;
    assert_eq!((exited.restarts, exited.last_error), (0, None));
}
