//! The host API against a real `nats-server`, and desired state replicated
//! on a real three-server NATS cluster.

use async_nats::jetstream;
use nimbus_cluster::agent::{self, AgentSettings};
use nimbus_cluster::api::{self, HostHeartbeat, HostWorkload, Reply, WorkloadStopResponse};
use nimbus_cluster::connect::{self, NatsSettings, Persistence};
use nimbus_cluster::store::{Applied, BucketSettings, Resource, Store};
use nimbus_host::http::DynamicRouter;
use nimbus_host::workload::{Workload, parse_manifest};
use nimbus_host::{Host, HostConfig};
use std::sync::Arc;
use std::time::Duration;
use test_programs::servers::{Kind, Server};

async fn client(url: &str) -> async_nats::Client {
    connect::connect(&NatsSettings::new(url), Persistence::Once)
        .await
        .unwrap()
}

async fn ask(client: &async_nats::Client, subject: String, body: &str) -> serde_json::Value {
    let reply = client
        .request(subject, body.to_string().into())
        .await
        .unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

fn hello(name: &str) -> Workload {
    Workload::single_http_component("ns", name, test_programs::P2_HELLO, &format!("{name}.test"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_api_answers_every_request_and_survives_bad_ones() {
    let Some(nats) = Server::start(Kind::Nats) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let host = Host::new(
        HostConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            ..HostConfig::default()
        },
        Arc::new(DynamicRouter::new()),
    )
    .unwrap();
    let settings = AgentSettings {
        host_id: "h1".into(),
        labels: [("hostgroup".to_string(), "edge".to_string())].into(),
        http_address: Some("127.0.0.1:9".into()),
        heartbeat_interval: Duration::from_millis(200),
        max_instances: 10,
        memory_budget: None,
        cpu_budget_millis: None,
    };
    let shutdown = tokio_util_like_shutdown();
    let agent = tokio::spawn(agent::run(
        client(&nats.url()).await,
        host.clone(),
        settings,
        shutdown.1,
    ));
    let client = client(&nats.url()).await;
    let mut beats = client.subscribe(api::OPERATOR_HEARTBEATS).await.unwrap();
    // Give the agent's subscriptions a moment to reach the server.
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        futures::StreamExt::next(&mut beats),
    )
    .await
    .unwrap()
    .unwrap();
    let beat: HostHeartbeat = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(beat.id, "h1");
    assert_eq!(beat.labels["hostgroup"], "edge");
    assert_eq!(beat.interval_ms, 200);
    assert_eq!(beat.workload_count, 0);

    // Malformed and unknown requests get an error reply…
    let reply = ask(&client, api::start_subject("h1"), "{not json").await;
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.starts_with("malformed workload.start request"),
        "{error}"
    );
    let reply = ask(&client, "runtime.host.h1.workload.explode".into(), "{}").await;
    assert_eq!(
        reply["error"],
        "unknown host API operation `workload.explode`"
    );
    // A workload that can never run as given is rejected, which tells the
    // controller not to try it elsewhere.
    let mismatched = serde_json::json!({"workloadId": "ns/other", "workload": hello("web")});
    let reply = ask(&client, api::start_subject("h1"), &mismatched.to_string()).await;
    assert!(
        reply["rejected"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{reply}"
    );
    // Names are checked as `nimbus apply` checks them: `a/b` + `c` must
    // not become the id of `a` + `b/c`.
    let mut slashed = hello("c");
    slashed.namespace = "a/b".into();
    let request = serde_json::json!({"workloadId": "a/b/c", "workload": slashed, "replicas": 1});
    let reply = ask(&client, api::start_subject("h1"), &request.to_string()).await;
    assert!(
        reply["rejected"]
            .as_str()
            .unwrap()
            .contains("metadata.namespace: `a/b` is not a valid name"),
        "{reply}"
    );
    let reply = ask(
        &client,
        api::status_subject("h1"),
        r#"{"workloadId":"ns/web"}"#,
    )
    .await;
    assert_eq!(reply["error"], "workload `ns/web` is not running");

    // …and the host carries on: a start works, and is idempotent.
    let start =
        serde_json::json!({"workloadId": "ns/web", "workload": hello("web"), "replicas": 2});
    let first: Reply<HostWorkload> =
        serde_json::from_value(ask(&client, api::start_subject("h1"), &start.to_string()).await)
            .unwrap();
    let first = first.into_result().unwrap();
    assert_eq!(first.replicas, 2);
    assert_eq!(first.spec_hash, api::spec_hash(&hello("web")));
    let again: Reply<HostWorkload> =
        serde_json::from_value(ask(&client, api::start_subject("h1"), &start.to_string()).await)
            .unwrap();
    let again = again.into_result().unwrap();
    assert_eq!(
        again.workload_status.started_at,
        first.workload_status.started_at
    );
    assert_eq!(host.workloads().len(), 1);
    let served = host
        .handle(
            http::Request::get("http://web.test/")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await;
    assert_eq!(served.status(), 200);

    // A park the host will not do (the workload's service would stop) is
    // rejected, which tells the controller to keep it, and it runs on.
    let mut with_service = hello("svc");
    with_service.spec.service = Some(nimbus_host::workload::ServiceSpec {
        image: format!("file://{}", test_programs::P2_SERVICE),
        ..Default::default()
    });
    let start =
        serde_json::json!({"workloadId": "ns/svc", "workload": with_service, "replicas": 1});
    let started: Reply<HostWorkload> =
        serde_json::from_value(ask(&client, api::start_subject("h1"), &start.to_string()).await)
            .unwrap();
    started.into_result().unwrap();
    let park = r#"{"workloadId":"ns/svc","park":true}"#;
    let reply = ask(&client, api::stop_subject("h1"), park).await;
    assert_eq!(
        reply["rejected"],
        "workload `ns/svc` cannot scale to zero: its service would stop, and only an HTTP request wakes a parked workload",
        "{reply}"
    );
    assert_eq!(host.workloads().len(), 2, "it runs on");
    assert!(host.parked_workloads().is_empty());
    let stop = r#"{"workloadId":"ns/svc"}"#;
    let reply: Reply<WorkloadStopResponse> =
        serde_json::from_value(ask(&client, api::stop_subject("h1"), stop).await).unwrap();
    assert!(reply.into_result().unwrap().was_running);

    // A failing start is an error reply, not a crash.
    let broken = Workload::single_http_component("ns", "broken", "/nonexistent.wasm", "b.test");
    let request = serde_json::json!({"workloadId": "ns/broken", "workload": broken});
    let reply = ask(&client, api::start_subject("h1"), &request.to_string()).await;
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent.wasm"),
        "{reply}"
    );

    // The heartbeat request reports what runs.
    let reply: Reply<HostHeartbeat> =
        serde_json::from_value(ask(&client, api::heartbeat_subject("h1"), "").await).unwrap();
    let beat = reply.into_result().unwrap();
    assert_eq!(beat.workload_count, 1);
    assert_eq!(beat.replica_count, 2);
    assert!(beat.revision >= again.host_revision);

    // Stop twice: both succeed, the second says it was not running.
    for expected in [true, false] {
        let reply: Reply<WorkloadStopResponse> = serde_json::from_value(
            ask(
                &client,
                api::stop_subject("h1"),
                r#"{"workloadId":"ns/web"}"#,
            )
            .await,
        )
        .unwrap();
        assert_eq!(reply.into_result().unwrap().was_running, expected);
    }
    assert!(host.workloads().is_empty());
    let _ = shutdown.0.send(());
    agent.await.unwrap().unwrap();
}

/// A shutdown trigger and the future the agent waits on.
fn tokio_util_like_shutdown() -> (
    tokio::sync::oneshot::Sender<()>,
    impl std::future::Future<Output = ()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    (tx, async move {
        let _ = rx.await;
    })
}

const DEPLOYMENT: &str = r#"
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: WorkloadDeployment
metadata: { name: web, namespace: shop }
spec:
  replicas: 3
  template:
    spec:
      components: [{ name: web, image: /srv/web.wasm }]
"#;

fn resource() -> Resource {
    let document = parse_manifest(DEPLOYMENT).unwrap().documents.remove(0);
    let value: serde_json::Value = serde_yaml_ng::from_str(DEPLOYMENT).unwrap();
    Resource::from_document(document, value).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_state_is_replicated_three_ways_and_survives_a_lost_server() {
    let Some(mut servers) = Server::nats_cluster(3) else {
        return;
    };
    let urls: Vec<String> = servers.iter().map(Server::url).collect();
    let settings = BucketSettings {
        replicas: 3,
        timeout: Duration::from_secs(10),
        ..BucketSettings::default()
    };
    // JetStream elects its meta leader after the routes form: retry until
    // the bucket can be made.
    let mut attempt = 0;
    let store = loop {
        attempt += 1;
        match Store::open(client(&urls.join(",")).await, &settings).await {
            Ok(store) => break store,
            Err(e) if attempt < 30 => {
                eprintln!("waiting for JetStream: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    // The new stream elects its own leader: the first write may time out
    // and land anyway (the store then reports a concurrent change).
    let mut attempt = 0;
    while let Err(e) = store.apply(resource()).await {
        attempt += 1;
        assert!(attempt < 30, "{e}");
        eprintln!("waiting for the stream leader: {e}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A write that timed out may still land after the retry read the key:
    // the store then reports a conflict once; settled, the same resource
    // is unchanged.
    let mut attempt = 0;
    let applied = loop {
        attempt += 1;
        match store.apply(resource()).await {
            Err(e) if attempt < 10 => {
                eprintln!("waiting for the replicas to settle: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => break other.unwrap(),
        }
    };
    assert_eq!(applied, Applied::Unchanged);
    let js = jetstream::new(client(&urls[1]).await);
    let mut stream = js.get_stream("KV_nimbus").await.unwrap();
    assert_eq!(stream.info().await.unwrap().config.num_replicas, 3);

    // One server down: the other two still form a quorum.
    servers[0].stop();
    let survivor = Store::open(client(&urls[2]).await, &settings)
        .await
        .unwrap();
    let mut changed = resource();
    changed.replicas = 5;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match survivor.apply(changed.clone()).await {
            // Unchanged only if an earlier, timed-out attempt landed.
            Ok(applied) => {
                assert!(applied == Applied::Configured || attempt > 1, "{applied:?}");
                break;
            }
            Err(e) if attempt < 30 => {
                eprintln!("waiting for a new stream leader: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Back up: the restarted server catches up and serves the new value.
    servers[0].restart();
    servers[1].stop();
    servers[2].stop();
    servers[1].restart();
    let reader = Store::open(client(&urls[0]).await, &settings)
        .await
        .unwrap();
    // Reads may be answered by any replica, and the restarted server may
    // still be catching up: the update must show within the deadline.
    let mut attempt = 0;
    let stored = loop {
        attempt += 1;
        match reader.resource("shop/web").await {
            Ok(Some(stored)) if stored.replicas == 5 => break stored,
            other if attempt < 60 => {
                eprintln!("waiting for the restarted servers: {other:?}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(stored.replicas, 5);
    assert_eq!(stored.generation, 2);
}
