//! `wasmcloud:messaging@0.3.0` end to end on a real NATS server: a P3
//! component requests and publishes with streamed bodies, handles its own
//! subscription through the async `handle-message`, gets typed errors
//! (timeout, too large, invalid subject, no responders), talks with a
//! `0.2.0` component, and its messages are admitted by `max_in_flight` and
//! `admission_wait`, the ones that find no slot shed and counted.

use crate::accounting::{sample, scrape};
use crate::common;

use bytes::Bytes;
use common::*;
use futures::StreamExt;
use nimbus_host::workload::{HostInterface, Workload};
use std::time::Duration;
use test_programs::servers::{Kind, Server};
use test_programs::{P2_MSG_HANDLER, P3_MESSAGING};

fn messaging(config: &[(&str, &str)]) -> HostInterface {
    HostInterface {
        namespace: "wasmcloud".into(),
        package: "messaging".into(),
        interfaces: vec!["consumer".into(), "handler".into()],
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// The P3 guest at `m3.test`, with `config` on its messaging entry and
/// `own` in its `localResources.config`.
fn p3_workload(config: &[(&str, &str)], own: &[(&str, &str)]) -> Workload {
    let mut workload = http_workload("m3", P3_MESSAGING, "m3.test");
    workload.spec.host_interfaces.push(messaging(config));
    for (key, value) in own {
        resources(&mut workload)
            .config
            .insert(key.to_string(), value.to_string());
    }
    workload
}

async fn call(t: &TestHost, path: &str, body: &str) -> (u16, String) {
    request(
        t.addr,
        Some("m3.test"),
        "POST",
        path,
        Bytes::from(body.to_string()),
    )
    .await
}

/// Requests `subject` until the subscription answers (subscriptions start
/// asynchronously).
async fn first_answer(t: &TestHost, subject: &str, body: &str) -> (u16, String) {
    let mut answer = (0, String::new());
    for _ in 0..100 {
        answer = call(
            t,
            &format!("/request?subject={subject}&timeout_ms=500"),
            body,
        )
        .await;
        if answer.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn a_p3_component_requests_publishes_and_handles_with_streamed_bodies() {
    let Some(nats) = Server::start(Kind::Nats) else {
        return;
    };
    let url = nats.url();
    let t = TestHost::dynamic().await;
    t.host
        .start_workload(p3_workload(
            &[
                ("url", &url),
                ("timeout_ms", "1500"),
                ("max_body_bytes", "4096"),
            ],
            &[("subscriptions", "echo.*, slow.*")],
        ))
        .await
        .unwrap();

    // Request/reply through the component's own async handler; the body
    // crosses as a stream both ways.
    assert_eq!(
        first_answer(&t, "echo.alpha", "hi").await,
        (200, "alpha: hi".into())
    );
    let long = "y".repeat(3000);
    assert_eq!(
        call(&t, "/request?subject=echo.beta", &long).await,
        (200, format!("beta: {long}"))
    );

    // A reply that comes too late is `timeout`; without `timeout-ms` the
    // binding's 1.5 s applies, which a 300 ms handler meets.
    assert_eq!(
        call(&t, "/request?subject=slow.x&timeout_ms=100", "1000").await,
        (502, "Error::Timeout".into())
    );
    assert_eq!(
        call(&t, "/request?subject=slow.y", "300").await,
        (200, "y: 300".into())
    );

    // Typed errors.
    assert_eq!(
        call(&t, "/publish?subject=big&bytes=5000", "").await,
        (502, "Error::MessageTooLarge".into())
    );
    assert_eq!(
        call(&t, "/publish?subject=bad..subject", "x").await,
        (502, "Error::SubjectInvalid".into())
    );
    let (status, body) = call(&t, "/request?subject=nobody.home&timeout_ms=300", "x").await;
    assert_eq!(status, 502);
    assert!(body.contains("no responders"), "{body}");

    // A published body reaches a plain NATS subscriber whole.
    let observer = async_nats::connect(url.as_str()).await.unwrap();
    let mut seen = subscribe_confirmed(&observer, "seen").await;
    assert_eq!(
        call(&t, "/publish?subject=seen", "streamed body").await,
        (204, String::new())
    );
    let message = tokio::time::timeout(Duration::from_secs(5), seen.next())
        .await
        .expect("the published message")
        .unwrap();
    assert_eq!(&message.payload[..], b"streamed body");

    // 0.2.0 and 0.3.0 components talk through the same broker.
    let mut handler = component("old", P2_MSG_HANDLER, &[]);
    for (key, value) in [("name", "old"), ("subscriptions", "old.echo")] {
        handler
            .local_resources
            .config
            .insert(key.into(), value.into());
    }
    let old = Workload {
        namespace: "test".into(),
        name: "old".into(),
        spec: nimbus_host::workload::WorkloadSpec {
            components: vec![handler],
            host_interfaces: vec![messaging(&[("url", &url)])],
            ..Default::default()
        },
    };
    t.host.start_workload(old).await.unwrap();
    assert_eq!(
        first_answer(&t, "old.echo", "from p3").await,
        (200, "old: from p3".into())
    );
}

/// `max_in_flight: 1` with a 200 ms `admission_wait`: while one slow
/// message runs, the next two find no slot and are shed (logged, counted),
/// and a message after the first finished is handled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_that_find_no_slot_within_the_admission_wait_are_shed_and_counted() {
    let Some(nats) = Server::start(Kind::Nats) else {
        return;
    };
    let url = nats.url();
    let t = accounting_host().await;
    t.host
        .start_workload(p3_workload(
            &[("url", &url)],
            &[
                ("subscriptions", "slow.*, echo.*"),
                ("max_in_flight", "1"),
                ("admission_wait", "200ms"),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(first_answer(&t, "echo.up", "?").await.0, 200);

    let observer = async_nats::connect(url.as_str()).await.unwrap();
    let mut finished = subscribe_confirmed(&observer, "finished").await;
    for _ in 0..3 {
        observer.publish("slow.job", "800".into()).await.unwrap();
    }
    observer.flush().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), finished.next())
        .await
        .expect("the admitted message finishes")
        .unwrap();
    assert_eq!(&first.payload[..], b"800");
    // The other two were shed, not queued: nothing else finishes.
    let more = tokio::time::timeout(Duration::from_millis(1500), finished.next()).await;
    assert!(more.is_err(), "a shed message ran: {more:?}");

    let metrics = scrape(&t.host.metrics().encode());
    let labels = [
        ("namespace", "test"),
        ("workload", "m3"),
        ("component", "m3"),
    ];
    assert_eq!(
        sample(&metrics, "nimbus_messages_shed_total", &labels),
        Some(2.0)
    );

    // With the slot free again, the next message runs.
    observer.publish("slow.job", "10".into()).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), finished.next())
        .await
        .expect("a message after the slot freed up runs")
        .unwrap();
    assert_eq!(&next.payload[..], b"10");
}

/// Only an HTTP request wakes a parked workload, so one with subscriptions
/// is not parked: it keeps running and keeps answering its subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_with_subscriptions_is_not_parked() {
    let t = TestHost::dynamic().await;
    // The host's in-memory messaging: no server needed.
    t.host
        .start_workload(p3_workload(&[], &[("subscriptions", "echo.*")]))
        .await
        .unwrap();
    assert_eq!(
        first_answer(&t, "echo.before", "hi").await,
        (200, "before: hi".into())
    );
    let error = t.host.park_workload("test/m3").await.unwrap_err();
    assert!(
        matches!(error, nimbus_host::WorkloadError::NotParkable { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "workload `test/m3` cannot scale to zero: it would miss what `messaging` delivers, and only an HTTP request wakes a parked workload"
    );
    assert!(!t.host.is_parked("test/m3"));
    assert_eq!(
        call(&t, "/request?subject=echo.after", "still").await,
        (200, "after: still".into())
    );
}
