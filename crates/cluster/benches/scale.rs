//! Control-plane scale: in-process hosts (real `Host`s, no HTTP listener)
//! and one controller on a real `nats-server`; desired state of
//! `--deployments` WorkloadDeployments with `--replicas` each is written,
//! and the bench reports how long until every host's heartbeat shows every
//! replica, and the control messages it took.
//!
//! `cargo bench -p nimbus-cluster --bench scale -- --hosts 100 --deployments 1000 --replicas 10`

use futures::StreamExt as _;
use nimbus_cluster::agent::{self, AgentSettings};
use nimbus_cluster::api::{self, HostHeartbeat};
use nimbus_cluster::connect::{self, NatsSettings, Persistence};
use nimbus_cluster::controller::{Controller, ControllerSettings};
use nimbus_cluster::store::{BucketSettings, Resource, Store};
use nimbus_host::engine::{EngineConfig, PoolingMode};
use nimbus_host::http::DynamicRouter;
use nimbus_host::workload::parse_manifest;
use nimbus_host::{Host, HostConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use test_programs::servers::{Kind, Server};

fn deployment(i: usize, replicas: usize) -> Resource {
    let text = format!(
        r#"apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: WorkloadDeployment
metadata: {{ name: w{i}, namespace: scale }}
spec:
  replicas: {replicas}
  template:
    spec:
      hostInterfaces:
        - {{ namespace: wasi, package: http, interfaces: [incoming-handler], config: {{ host: w{i}.scale }} }}
      components: [{{ name: w{i}, image: "{}" }}]
"#,
        test_programs::P2_HELLO
    );
    let document = parse_manifest(&text).expect("valid").documents.remove(0);
    let value: serde_json::Value = serde_json::to_value(&document.workload).expect("json");
    Resource::from_document(document, value).expect("resource")
}

async fn client(url: &str) -> async_nats::Client {
    connect::connect(&NatsSettings::new(url), Persistence::Once)
        .await
        .expect("NATS")
}

fn main() {
    let hosts = test_programs::bench_arg("--hosts", 100);
    let deployments = test_programs::bench_arg("--deployments", 1000);
    let replicas = test_programs::bench_arg("--replicas", 10);
    let Some(nats) = Server::start(Kind::Nats) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let url = nats.url();
        let cache = tempfile::tempdir().expect("cache dir");
        // Compile once into the shared disk cache, so hosts only load it.
        let warm = new_host(cache.path());
        warm.start_workload(deployment(0, 1).workload)
            .await
            .expect("warm-up start");
        drop(warm);

        // Production default is 5 s; 2 s keeps the bench short while 100
        // hosts share two cores with the controller and NATS.
        let interval = Duration::from_secs(2);

        // Reference, same run: the same replicas started on the same number
        // of hosts by direct calls, with no control plane.
        let direct = Instant::now();
        let starts: Vec<_> = (0..hosts)
            .map(|h| {
                let host = new_host(cache.path());
                tokio::spawn(async move {
                    for i in 0..deployments {
                        if (0..replicas).any(|k| (i * replicas + k) % hosts == h) {
                            host.start_workload(deployment(i, replicas).workload)
                                .await
                                .expect("direct start");
                        }
                    }
                })
            })
            .collect();
        for start in starts {
            start.await.expect("direct starts");
        }
        let direct = direct.elapsed();
        let mut agents = Vec::new();
        for i in 0..hosts {
            let settings = AgentSettings {
                host_id: format!("host{i}"),
                labels: [(api::HOSTGROUP_LABEL.to_string(), "bench".to_string())].into(),
                http_address: None,
                heartbeat_interval: interval,
                max_instances: 0,
            memory_budget: None,
            cpu_budget_millis: None,
            };
            let host = new_host(cache.path());
            let client = client(&url).await;
            agents.push(tokio::spawn(agent::run(
                client,
                host,
                settings,
                std::future::pending(),
            )));
        }
        let store = Store::open(client(&url).await, &BucketSettings::default())
            .await
            .expect("bucket");
        let controller = Controller::new(
            client(&url).await,
            store.clone(),
            ControllerSettings {
                heartbeat_interval: interval,
                lease_ttl: Duration::from_secs(5),
                ..ControllerSettings::default()
            },
        );
        let stats = controller.stats();
        tokio::spawn(controller.run(std::future::pending()));
        while !stats.leader.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let the leader finish its warm-up with every host known.
        tokio::time::sleep(interval * 2).await;

        let observer = client(&url).await;
        let mut beats = observer
            .subscribe(api::OPERATOR_HEARTBEATS)
            .await
            .expect("subscribe");
        let (commands0, beats0) = (
            stats.commands.load(Ordering::Relaxed),
            stats.heartbeats.load(Ordering::Relaxed),
        );
        let started = Instant::now();
        let applying = Instant::now();
        futures::stream::iter((0..deployments).map(|i| {
            let store = store.clone();
            async move { store.apply(deployment(i, replicas)).await.expect("apply") }
        }))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
        let applied_in = applying.elapsed();
        let wanted = (deployments * replicas) as u64;
        let mut placed: HashMap<String, u64> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(600);
        while placed.values().sum::<u64>() < wanted {
            let message = tokio::time::timeout_at(deadline.into(), beats.next())
                .await
                .expect("converged within 10 minutes")
                .expect("heartbeats");
            let beat: HostHeartbeat = serde_json::from_slice(&message.payload).expect("heartbeat");
            placed.insert(beat.id, u64::from(beat.replica_count));
        }
        let converged = started.elapsed();
        let commands = stats.commands.load(Ordering::Relaxed) - commands0;
        let heartbeats = stats.heartbeats.load(Ordering::Relaxed) - beats0;
        let status_writes = stats.status_writes.load(Ordering::Relaxed);
        // Each command is a request and a reply.
        let messages = commands * 2 + heartbeats + status_writes;
        println!(
            "hosts={hosts} deployments={deployments} replicas={replicas} (total {wanted})"
        );
        println!(
            "reference: direct starts on {hosts} hosts took {:.2} s",
            direct.as_secs_f64()
        );
        println!("applied desired state in {:.2} s", applied_in.as_secs_f64());
        println!(
            "converged in {:.2} s: {commands} host commands, {heartbeats} heartbeats, {status_writes} status writes",
            converged.as_secs_f64()
        );
        println!(
            "control messages: {messages} ({:.0}/s); converge time / direct = {:.2}",
            messages as f64 / converged.as_secs_f64(),
            converged.as_secs_f64() / direct.as_secs_f64()
        );
        println!(
            "failed commands: {}, hosts given up: {}, reconcile passes: {}",
            stats.command_failures.load(Ordering::Relaxed),
            stats.hosts_lost.load(Ordering::Relaxed),
            stats.reconciles.load(Ordering::Relaxed)
        );
        for agent in agents {
            agent.abort();
        }
    });
}

fn new_host(cache: &std::path::Path) -> Host {
    Host::new(
        HostConfig {
            cache_dir: Some(cache.to_path_buf()),
            engine: EngineConfig {
                pooling: PoolingMode::Off,
                ..EngineConfig::default()
            },
            ..HostConfig::default()
        },
        Arc::new(DynamicRouter::new()),
    )
    .expect("host")
}
