//! `wasmcloud:nats@0.1.0` end to end on a real NATS server with JetStream:
//! a P3 component publishes, requests and handles core messages;
//! publishes to a stream (acks, deduplication), reads it, fetches from a
//! pull consumer and settles each message; uses a key-value bucket with
//! revisions and watches it; is refused what its grant does not cover;
//! and its JetStream deliveries come again after a trap, an error, and a
//! server restart.

use crate::common;

use async_nats::jetstream;
use bytes::Bytes;
use common::*;
use futures::StreamExt;
use nimbus_host::workload::{HostInterface, Workload};
use std::time::Duration;
use test_programs::P3_NATS;
use test_programs::servers::{Kind, Server};

/// The guest at `nats.test` with one `wasmcloud:nats` entry holding `config`.
fn workload(config: &[(&str, &str)]) -> Workload {
    let mut workload = http_workload("nats", P3_NATS, "nats.test");
    workload.spec.host_interfaces.push(HostInterface {
        namespace: "wasmcloud".into(),
        package: "nats".into(),
        interfaces: [
            "core",
            "jetstream",
            "kv",
            "core-handler",
            "jetstream-handler",
            "kv-handler",
        ]
        .map(String::from)
        .to_vec(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    });
    workload
}

async fn call(t: &TestHost, method: &str, path: &str, body: &str) -> (u16, String) {
    request(
        t.addr,
        Some("nats.test"),
        method,
        path,
        Bytes::from(body.to_string()),
    )
    .await
}

/// Calls `path` until it answers 200 (subscriptions start in the background).
async fn until_ok(t: &TestHost, path: &str, body: &str) -> (u16, String) {
    let mut answer = (0, String::new());
    for _ in 0..100 {
        answer = call(t, "POST", path, body).await;
        if answer.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    answer
}

/// The next message on `seen`, within 10 s.
async fn next(seen: &mut async_nats::Subscriber) -> String {
    let message = tokio::time::timeout(Duration::from_secs(10), seen.next())
        .await
        .expect("a report within 10 s")
        .expect("the subscription is open");
    String::from_utf8_lossy(&message.payload).into_owned()
}

/// Makes the stream `ORDERS` (`orders.>`), the pull consumer `worker` and
/// the bucket `config`, as an operator would.
async fn provision(client: &async_nats::Client) -> jetstream::Context {
    let js = jetstream::new(client.clone());
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            duplicate_window: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap();
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("worker".into()),
            filter_subject: "orders.>".into(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    // The stream a bucket is, made directly: async-nats's
    // `create_key_value` reads account info in a shape nats-server 2.9
    // does not send.
    // A consumer of the whole stream: not for a binding granted some
    // subjects only.
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("everything".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    js.create_stream(jetstream::stream::Config {
        name: "KV_config".into(),
        subjects: vec!["$KV.config.>".into()],
        max_messages_per_subject: 5,
        discard: jetstream::stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        ..Default::default()
    })
    .await
    .unwrap();
    js
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn a_p3_component_speaks_core_nats_jetstream_and_key_value() {
    let Some(nats) = Server::start(Kind::Nats) else {
        return;
    };
    let url = nats.url();
    let client = async_nats::connect(&url).await.unwrap();
    let js = provision(&client).await;
    let mut seen = subscribe_confirmed(&client, "seen.>").await;

    let t = TestHost::dynamic().await;
    t.host
        .start_workload(workload(&[
            ("servers", &url),
            ("subject-allow", "app.>,orders.>,seen.>"),
            ("stream-allow", "ORDERS"),
            ("bucket-allow", "config"),
            ("core-subscriptions", "app.echo"),
            ("kv-watches", "config:feature.>"),
        ]))
        .await
        .unwrap();

    // Core: request/reply through the component's own handler (its reply
    // goes to an inbox outside its grant: it was handed that one).
    assert_eq!(
        until_ok(&t, "/request?subject=app.echo&timeout_ms=500", "hi").await,
        (200, "echo: hi".into())
    );
    // A plain publish reaches a subscriber; the handler reports messages
    // without a reply subject.
    assert_eq!(
        call(&t, "POST", "/publish?subject=app.echo", "one").await.0,
        200
    );
    assert_eq!(next(&mut seen).await, "one");
    // Nobody on the subject: at once, not after the timeout.
    assert_eq!(
        call(
            &t,
            "POST",
            "/request?subject=app.nobody&timeout_ms=3000",
            "x"
        )
        .await,
        (502, "NatsError::NoResponders".into())
    );

    // The grant: not granted, reserved, a wildcard, a reply subject it
    // was never handed; nothing reaches the server.
    let (status, body) = call(&t, "POST", "/publish?subject=billing.new", "x").await;
    assert_eq!(status, 502);
    assert!(
        body.contains("NotGranted") && body.contains("billing.new"),
        "{body}"
    );
    let (_, body) = call(
        &t,
        "POST",
        "/publish?subject=$JS.API.STREAM.DELETE.ORDERS",
        "x",
    )
    .await;
    assert!(body.contains("Reserved"), "{body}");
    let (_, body) = call(&t, "POST", "/publish?subject=_INBOX.someone.else", "x").await;
    assert!(body.contains("Reserved"), "{body}");
    let (_, body) = call(&t, "POST", "/publish?subject=app.*", "x").await;
    assert!(body.contains("WildcardNotAllowed"), "{body}");
    // A reply subject names where answers go: it is checked like any
    // subject, so a handler cannot be made to publish into the host's API.
    let (_, body) = call(
        &t,
        "POST",
        "/publish?subject=app.echo&reply=$JS.API.STREAM.DELETE.ORDERS",
        "x",
    )
    .await;
    assert!(body.contains("Reserved"), "{body}");
    let (_, body) = call(
        &t,
        "POST",
        "/js/publish?subject=orders.x&header=bad:name",
        "x",
    )
    .await;
    assert!(body.contains("InvalidHeader"), "{body}");

    // JetStream publish: stored, acknowledged with its sequence; the same
    // Nats-Msg-Id is stored once.
    assert_eq!(
        call(
            &t,
            "POST",
            "/js/publish?subject=orders.eu.new&id=o-1",
            "first"
        )
        .await,
        (200, "ORDERS 1 duplicate=false".into())
    );
    assert_eq!(
        call(
            &t,
            "POST",
            "/js/publish?subject=orders.eu.new&id=o-1",
            "first"
        )
        .await,
        (200, "ORDERS 1 duplicate=true".into())
    );
    assert_eq!(
        call(&t, "POST", "/js/publish?subject=orders.us.new", "second").await,
        (200, "ORDERS 2 duplicate=false".into())
    );
    // A message published by someone else on a subject it is not granted
    // is skipped by a scan and refused by a read that names its sequence.
    js.publish("orders.secret", "hidden".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish("orders.eu.new", "third".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        call(&t, "GET", "/js/get?stream=ORDERS&seq=2", "").await,
        (200, "orders.us.new second".into())
    );
    assert_eq!(
        call(&t, "GET", "/js/info?stream=ORDERS", "").await,
        (200, "ORDERS 4 1 4".into())
    );
    let (status, body) = call(
        &t,
        "GET",
        "/js/subjects?stream=ORDERS&filter=orders.%3E",
        "",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "orders.eu.new=2\norders.secret=1\norders.us.new=1\n")
    );
    let (status, body) = call(&t, "GET", "/js/get?stream=NOPE&seq=1", "").await;
    assert_eq!(status, 502);
    assert!(
        body.contains("NotGranted") && body.contains("Stream"),
        "{body}"
    );

    // A pull consumer: fetch, settle each message; a nak comes again, a
    // term never, an ack never; a second settlement is an error.
    let (status, body) = call(
        &t,
        "POST",
        "/js/fetch?stream=ORDERS&consumer=worker&batch=2&timeout_ms=500&settle=nak",
        "",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "1:1:first\n2:1:second\nFetchStop::BatchFilled")
    );
    let (status, body) = call(
        &t,
        "POST",
        "/js/fetch?stream=ORDERS&consumer=worker&batch=10&timeout_ms=500&settle=ack",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("1:2:first\n")
            && body.contains("2:2:second\n")
            && body.contains("4:1:third\n"),
        "{body}"
    );
    assert!(body.ends_with("FetchStop::Drained"), "{body}");
    assert_eq!(
        call(
            &t,
            "POST",
            "/js/fetch?stream=ORDERS&consumer=worker&batch=1&timeout_ms=200&settle=ack",
            ""
        )
        .await,
        (502, "NatsError::NoMessages".into())
    );
    js.publish("orders.eu.new", "fourth".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let (_, body) = call(
        &t,
        "POST",
        "/js/fetch?stream=ORDERS&consumer=worker&batch=1&timeout_ms=500&settle=twice",
        "",
    )
    .await;
    assert!(body.contains("already settled"), "{body}");
    let (status, body) = call(&t, "GET", "/js/consumer?stream=ORDERS&consumer=worker", "").await;
    assert_eq!((status, body.as_str()), (200, "worker 0 0"));
    let (_, body) = call(
        &t,
        "POST",
        "/js/fetch?stream=ORDERS&consumer=nobody&batch=1&timeout_ms=100",
        "",
    )
    .await;
    assert!(body.contains("NotFound"), "{body}");
    let (_, body) = call(
        &t,
        "POST",
        "/js/fetch?stream=ORDERS&consumer=everything&batch=1&timeout_ms=100",
        "",
    )
    .await;
    assert!(
        body.contains("NotGranted") && body.contains("ORDERS/everything"),
        "{body}"
    );

    // Key-value: revisions, create and compare-and-swap with the current
    // revision on conflict, tombstones, history, keys, status.
    let put = |key: &str| format!("/kv/put?bucket=config&key={key}");
    let (_, first) = call(&t, "POST", &put("feature.dark"), "on").await;
    let first: u64 = first.parse().unwrap();
    assert_eq!(
        call(&t, "GET", "/kv/get?bucket=config&key=feature.dark", "").await,
        (200, format!("{first} on"))
    );
    assert_eq!(
        call(
            &t,
            "POST",
            "/kv/create?bucket=config&key=feature.dark",
            "again"
        )
        .await,
        (502, format!("NatsError::RevisionMismatch({first})"))
    );
    let (status, second) = call(
        &t,
        "POST",
        &format!("/kv/update?bucket=config&key=feature.dark&rev={first}"),
        "off",
    )
    .await;
    assert_eq!(status, 200);
    let second: u64 = second.parse().unwrap();
    assert!(second > first);
    assert_eq!(
        call(
            &t,
            "POST",
            &format!("/kv/update?bucket=config&key=feature.dark&rev={first}"),
            "stale"
        )
        .await,
        (502, format!("NatsError::RevisionMismatch({second})"))
    );
    assert_eq!(call(&t, "POST", &put("limits"), "10").await.0, 200);
    assert_eq!(
        call(&t, "GET", "/kv/keys?bucket=config", "").await,
        (200, "feature.dark,limits truncated=false".into())
    );
    assert_eq!(
        call(
            &t,
            "DELETE",
            "/kv/delete?bucket=config&key=feature.dark",
            ""
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&t, "GET", "/kv/get?bucket=config&key=feature.dark", "").await,
        (502, "NatsError::KeyNotFound".into())
    );
    let (_, history) = call(&t, "GET", "/kv/history?bucket=config&key=feature.dark", "").await;
    assert_eq!(
        history,
        format!(
            "{first}:KvOperation::Put:on {second}:KvOperation::Put:off {}:KvOperation::Delete:",
            second + 2
        )
    );
    let (_, status) = call(&t, "GET", "/kv/status?bucket=config", "").await;
    assert!(
        status.starts_with("config values=") && status.ends_with("history=5"),
        "{status}"
    );
    assert_eq!(
        call(&t, "POST", "/kv/purge?bucket=config&key=limits", "")
            .await
            .0,
        200
    );
    let (_, body) = call(&t, "GET", "/kv/get?bucket=secrets&key=k", "").await;
    assert!(
        body.contains("NotGranted") && body.contains("Bucket"),
        "{body}"
    );

    // The watch on `feature.>` saw each change of feature.dark, in order,
    // and nothing of `limits`.
    let mut changes = Vec::new();
    while changes.len() < 3 {
        let report = next(&mut seen).await;
        if report.starts_with("config ") {
            changes.push(report);
        }
    }
    assert_eq!(
        changes,
        [
            format!("config feature.dark KvOperation::Put {first} on"),
            format!("config feature.dark KvOperation::Put {second} off"),
            format!("config feature.dark KvOperation::Delete {} ", second + 2),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn jetstream_deliveries_come_again_after_a_trap_an_error_and_a_server_restart() {
    let Some(mut nats) = Server::start(Kind::Nats) else {
        return;
    };
    let url = nats.url();
    let client = async_nats::connect(&url).await.unwrap();
    let js = provision(&client).await;
    let mut seen = subscribe_confirmed(&client, "seen.js").await;

    let t = TestHost::dynamic().await;
    t.host
        .start_workload(workload(&[
            ("servers", &url),
            ("subject-allow", "orders.>,seen.>"),
            ("stream-allow", "ORDERS"),
            ("jetstream-subscriptions", "ORDERS:orders.>:all"),
            ("ack-mode", "manual"),
            ("ack-wait-ms", "1500"),
        ]))
        .await
        .unwrap();

    // A trap and an error: the host naks, the message comes again, the
    // handler acks it the second time.
    js.publish("orders.a", "trap".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(next(&mut seen).await, "trap:1");
    assert_eq!(next(&mut seen).await, "trap:2");
    js.publish("orders.b", "fail".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(next(&mut seen).await, "fail:1");
    assert_eq!(next(&mut seen).await, "fail:2");

    // Left unsettled, then the server restarts: the durable consumer
    // remembers it, and it comes again after the ack wait.
    js.publish("orders.c", "hold".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(next(&mut seen).await, "hold:1");
    drop(seen);
    nats.restart();
    let client = async_nats::connect(&url).await.unwrap();
    let mut seen = subscribe_confirmed(&client, "seen.js").await;
    let js = jetstream::new(client.clone());
    js.publish("orders.d", "after".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut reports = vec![next(&mut seen).await, next(&mut seen).await];
    reports.sort();
    assert_eq!(reports, ["after:1", "hold:2"]);

    // Nothing is left pending on the host's consumer.
    let mut stream = js.get_stream("ORDERS").await.unwrap();
    let consumers: Vec<_> = stream.consumer_names().collect().await;
    let name = consumers
        .into_iter()
        .map(Result::unwrap)
        .find(|n| n.starts_with("nimbus-"))
        .expect("the host's durable consumer");
    let info = stream.consumer_info(&name).await.unwrap();
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "{info:?}");
    let _ = stream.info().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn bad_wasmcloud_nats_settings_stop_the_start_with_the_key_named() {
    let t = TestHost::dynamic().await;
    for (config, expected) in [
        (
            vec![("servers", "nats://127.0.0.1:1"), ("subjects-allow", "a.>")],
            "unknown setting `subjects-allow`",
        ),
        (
            vec![("servers", "nats://127.0.0.1:1"), ("token", "s3cret")],
            "give it through secretFrom",
        ),
        (
            vec![("servers", "nats://u:p@127.0.0.1:1")],
            "must not hold credentials",
        ),
        (
            vec![("servers", "nats://127.0.0.1:1"), ("ack-mode", "sometimes")],
            "`ack-mode` must be `auto` or `manual`",
        ),
        (
            vec![
                ("servers", "nats://127.0.0.1:1"),
                ("subject-allow", "app.>"),
                ("core-subscriptions", "$SYS.>"),
            ],
            "in a space the host keeps for itself",
        ),
        (
            vec![
                ("servers", "nats://127.0.0.1:1"),
                ("subject-allow", "app.>"),
                ("core-subscriptions", "billing.>"),
            ],
            "not covered by `subject-allow`",
        ),
        (
            vec![
                ("servers", "nats://127.0.0.1:1"),
                ("jetstream-subscriptions", "ORDERS"),
            ],
            "expected STREAM:filter",
        ),
        (
            vec![
                ("servers", "nats://127.0.0.1:1"),
                ("subject-allow", ">"),
                ("core-subscriptions", "*.host.*.workload.stop"),
            ],
            "starts with a wildcard",
        ),
        (
            vec![("servers", "nats://127.0.0.1:1"), ("tls-ca", "/ca.pem")],
            "`tls-ca` is not supported",
        ),
    ] {
        let error = t.host.start_workload(workload(&config)).await.unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains(expected), "{config:?}: {text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
