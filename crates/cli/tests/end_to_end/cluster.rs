//! Cluster mode end to end: `nimbus host` and `nimbus controller` as
//! separate processes on a real `nats-server` (and a real registry), driven
//! with `nimbus apply`, `get` and `delete`.

use crate::common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use test_programs::servers::{Kind, Server as Backing};

const INTERVAL: Duration = Duration::from_secs(1);

fn start_host(dir: &Path, nats: &str, id: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "host",
        "--nats",
        nats,
        "--id",
        id,
        "--http-addr",
        "127.0.0.1:0",
        "--heartbeat-interval",
        "1s",
        "--admin-addr",
        "127.0.0.1:0",
    ];
    args.extend(extra);
    Server::start(dir, &args, &[], Duration::from_secs(60))
}

fn start_controller(dir: &Path, nats: &str, id: &str) -> Server {
    Server::start_when(
        dir,
        &[
            "controller",
            "--nats",
            nats,
            "--id",
            id,
            "--heartbeat-interval",
            "1s",
            "--missed-heartbeats",
            "2",
            "--lease-ttl",
            "2s",
        ],
        &[("NIMBUS_LOG", "info")],
        Duration::from_secs(60),
        "Controller ",
    )
}

fn deployment(name: &str, image: &str, host: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: WorkloadDeployment
metadata:
  name: {name}
  namespace: shop
spec:
  replicas: {replicas}
  template:
    spec:
      hostInterfaces:
        - namespace: wasi
          package: http
          interfaces: [incoming-handler]
          config:
            host: {host}
      components:
        - name: {name}
          image: {image}
"#
    )
}

fn get_json(dir: &Path, nats: &str, what: &str) -> Value {
    // Three hosts, a controller and NATS share two cores with a parallel
    // test: one CI run saw a whole read of `desired.>` exceed the default
    // 5 s request timeout (see the closing note).
    let (stdout, _) = succeeds_in(
        dir,
        &[
            "get",
            what,
            "-o",
            "json",
            "--nats",
            nats,
            "--nats-timeout",
            "20s",
        ],
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `get` until it succeeds: right after a NATS restart JetStream needs a
/// few seconds to recover its streams before it answers.
fn get_json_eventually(dir: &Path, nats: &str, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = nimbus()
            .args(["get", what, "-o", "json", "--nats", nats])
            .current_dir(dir)
            .output()
            .unwrap();
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The status of deployment `shop/NAME`, if the controller wrote one.
fn status_of(dir: &Path, nats: &str, name: &str) -> Option<Value> {
    get_json(dir, nats, "deployments")
        .as_array()?
        .iter()
        .find(|d| d["metadata"]["name"] == name)?
        .get("status")
        .cloned()
}

/// Waits until the deployment's status satisfies `done`; returns it.
fn wait_status(
    dir: &Path,
    nats: &str,
    name: &str,
    wait: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + wait;
    loop {
        let status = status_of(dir, nats, name);
        if let Some(status) = status.as_ref().filter(|s| done(s)) {
            return status.clone();
        }
        assert!(
            Instant::now() < deadline,
            "deployment {name} not as expected within {wait:?}; last status: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn placements(status: &Value) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = status["placements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["host"].as_str().unwrap().to_string(),
                p["replicas"].as_u64().unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

/// Replicas of `workload` each host reports in its heartbeat.
fn replicas_on_hosts(dir: &Path, nats: &str, workload: &str) -> Vec<(String, u64)> {
    let hosts = get_json(dir, nats, "hosts");
    let mut out = Vec::new();
    for host in hosts.as_array().unwrap() {
        for w in host["workloads"].as_array().unwrap() {
            if w["id"] == workload {
                out.push((
                    host["id"].as_str().unwrap().to_string(),
                    w["replicas"].as_u64().unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn curl(addr: &str, host: &str) -> (u16, String) {
    let (status, _, body) = request_with_headers(addr, "GET", "/", &[("Host", host)], "");
    (status, body)
}

#[test]
fn a_deployment_spreads_over_hosts_and_survives_host_loss_and_nats_restarts() {
    let Some(mut nats) = Backing::start(Kind::Nats) else {
        return;
    };
    let Some(registry) = Backing::start(Kind::Registry) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let url = nats.url();
    let registry_url = registry.url();
    let insecure = ["--insecure-registry", registry_url.as_str()];

    // The component travels through the registry: deployed by image ref.
    let reference = format!("{registry_url}/cluster/hello:1");
    let mut push = vec!["push", reference.as_str(), test_programs::P2_HELLO];
    push.extend(insecure);
    succeeds_in(dir, &push);

    let mut hosts: Vec<Server> = (0..3)
        .map(|i| start_host(dir, &url, &format!("h{i}"), &insecure))
        .collect();
    let _controller = start_controller(dir, &url, "c1");

    std::fs::write(
        dir.join("web.yaml"),
        deployment("web", &reference, "web.test", 3),
    )
    .unwrap();
    let (stdout, _) = succeeds_in(dir, &["apply", "-f", "web.yaml", "--nats", &url]);
    assert_eq!(stdout.trim(), "workloaddeployment/shop/web created");

    let status = wait_status(dir, &url, "web", Duration::from_secs(60), |s| {
        s["ready"] == 3
    });
    // Spread: one replica on each host, and each answers.
    assert_eq!(
        placements(&status),
        [("h0".into(), 1), ("h1".into(), 1), ("h2".into(), 1)]
    );
    for host in &hosts {
        let (code, body) = curl(&host.addr, "web.test");
        assert_eq!((code, body.as_str()), (200, "hello from p2\n"));
    }
    let (table, _) = succeeds_in(dir, &["get", "hosts", "--nats", &url]);
    assert!(table.starts_with("ID"), "{table}");
    for host in &hosts {
        assert!(table.contains(&host.addr), "{table}");
    }

    // Applying the same file again changes nothing.
    let (stdout, _) = succeeds_in(dir, &["apply", "-f", "web.yaml", "--nats", &url]);
    assert_eq!(stdout.trim(), "workloaddeployment/shop/web unchanged");
    let shown = get_json(dir, &url, "deployments");
    assert_eq!(shown[0]["metadata"]["generation"], 1, "{shown}");
    assert_eq!(shown[0]["spec"]["replicas"], 3, "{shown}");

    // A pinned digest the registry does not hold is refused by the hosts,
    // and the status says why.
    let wrong = format!("{registry_url}/cluster/hello@sha256:{}", "0".repeat(64));
    std::fs::write(
        dir.join("wrong.yaml"),
        deployment("wrong", &wrong, "wrong.test", 1),
    )
    .unwrap();
    succeeds_in(dir, &["apply", "-f", "wrong.yaml", "--nats", &url]);
    let status = wait_status(dir, &url, "wrong", Duration::from_secs(30), |s| {
        s["message"]
            .as_str()
            .is_some_and(|m| m.contains("sha256:000"))
    });
    assert_eq!(status["ready"], 0, "{status}");
    succeeds_in(
        dir,
        &[
            "delete",
            "deployment",
            "wrong",
            "-n",
            "shop",
            "--nats",
            &url,
        ],
    );

    // An image that can never be read (a device: unbounded before) is
    // rejected by the first host that tries it and marked Failed; it is not
    // moved from host to host, and every host still serves.
    std::fs::write(
        dir.join("zero.yaml"),
        deployment("zero", "file:///dev/zero", "zero.test", 1),
    )
    .unwrap();
    succeeds_in(dir, &["apply", "-f", "zero.yaml", "--nats", &url]);
    let status = wait_status(dir, &url, "zero", Duration::from_secs(30), |s| {
        s["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Failed:") && m.contains("not a regular file"))
    });
    assert_eq!(status["ready"], 0, "{status}");
    assert!(placements(&status).is_empty(), "{status}");
    for host in &hosts {
        assert_eq!(curl(&host.addr, "web.test").0, 200);
    }
    succeeds_in(
        dir,
        &["delete", "deployment", "zero", "-n", "shop", "--nats", &url],
    );

    // kill -9 one host: its replica comes back on the others within three
    // heartbeat intervals.
    hosts[1].kill();
    let killed = Instant::now();
    let status = wait_status(dir, &url, "web", Duration::from_secs(30), |s| {
        s["ready"] == 3 && placements(s).iter().all(|(h, _)| h != "h1")
    });
    let recovered = killed.elapsed();
    eprintln!("replicas back to 3 {recovered:?} after kill -9");
    assert!(
        recovered <= INTERVAL * 3,
        "took {recovered:?}, more than three heartbeat intervals"
    );
    assert_eq!(placements(&status).iter().map(|(_, r)| r).sum::<u64>(), 3);
    for i in [0, 2] {
        assert_eq!(curl(&hosts[i].addr, "web.test").0, 200);
    }

    // Restart NATS: hosts and the controller reconnect; nothing desired is
    // lost, and the controller still acts (scale down to 1).
    nats.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while replicas_on_hosts(dir, &url, "shop/web")
        .iter()
        .map(|(_, r)| r)
        .sum::<u64>()
        != 3
    {
        assert!(Instant::now() < deadline, "hosts did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
    let shown = get_json_eventually(dir, &url, "deployments");
    assert_eq!(shown.as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(shown[0]["spec"]["replicas"], 3, "{shown}");
    std::fs::write(
        dir.join("web.yaml"),
        deployment("web", &reference, "web.test", 1),
    )
    .unwrap();
    let (stdout, _) = succeeds_in(dir, &["apply", "-f", "web.yaml", "--nats", &url]);
    assert_eq!(stdout.trim(), "workloaddeployment/shop/web configured");
    let status = wait_status(dir, &url, "web", Duration::from_secs(30), |s| {
        s["ready"] == 1 && s["observedGeneration"] == 2 && placements(s).len() == 1
    });
    assert_eq!(placements(&status)[0].1, 1);

    // Deleting it stops it everywhere.
    succeeds_in(dir, &["delete", "-f", "web.yaml", "--nats", &url]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !replicas_on_hosts(dir, &url, "shop/web").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the deleted deployment still runs"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for i in [0, 2] {
        assert_eq!(curl(&hosts[i].addr, "web.test").0, 404);
    }
}

#[test]
fn a_standby_controller_takes_over_without_duplicating_workloads() {
    let Some(nats) = Backing::start(Kind::Nats) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let url = nats.url();
    let _hosts: Vec<Server> = (0..2)
        .map(|i| start_host(dir, &url, &format!("h{i}"), &[]))
        .collect();
    let mut first = start_controller(dir, &url, "c1");
    first.wait_for_stderr("leading", 1, Duration::from_secs(30));
    let second = start_controller(dir, &url, "c2");

    std::fs::write(
        dir.join("web.yaml"),
        deployment("web", test_programs::P2_HELLO, "web.test", 2),
    )
    .unwrap();
    succeeds_in(dir, &["apply", "-f", "web.yaml", "--nats", &url]);
    wait_status(dir, &url, "web", Duration::from_secs(60), |s| {
        s["ready"] == 2
    });
    let before = replicas_on_hosts(dir, &url, "shop/web");
    assert_eq!(before, [("h0".into(), 1), ("h1".into(), 1)]);
    assert!(!second.stderr().contains("leading"), "{}", second.stderr());

    first.kill();
    second.wait_for_stderr("leading", 1, Duration::from_secs(30));
    // Watch well past the new leader's warm-up: every heartbeat shows the
    // same two replicas, never a third.
    let until = Instant::now() + INTERVAL * 4;
    while Instant::now() < until {
        assert_eq!(replicas_on_hosts(dir, &url, "shop/web"), before);
    }
    // The new leader acts: scaling up lands on the existing hosts.
    std::fs::write(
        dir.join("web.yaml"),
        deployment("web", test_programs::P2_HELLO, "web.test", 3),
    )
    .unwrap();
    succeeds_in(dir, &["apply", "-f", "web.yaml", "--nats", &url]);
    let status = wait_status(dir, &url, "web", Duration::from_secs(30), |s| {
        s["ready"] == 3
    });
    assert_eq!(placements(&status).len(), 2, "{status}");
}

#[test]
fn an_invalid_manifest_stores_nothing() {
    let Some(nats) = Backing::start(Kind::Nats) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let url = nats.url();
    let good = deployment("good", test_programs::P2_HELLO, "good.test", 1);
    let bad = deployment("bad", test_programs::P2_HELLO, "bad.test", 1)
        .replace("replicas: 1", "replicas: many");
    std::fs::write(dir.join("both.yaml"), format!("{good}---\n{bad}")).unwrap();
    let error = fails_in(dir, &["apply", "-f", "both.yaml", "--nats", &url]);
    assert!(error.contains("document 2: spec.replicas"), "{error}");
    assert_eq!(get_json(dir, &url, "deployments"), Value::Array(vec![]));
    let (table, _) = succeeds_in(dir, &["get", "deploy", "--nats", &url]);
    assert_eq!(table, "No resources found.\n");
    let (table, _) = succeeds_in(dir, &["get", "workload", "-n", "shop", "--nats", &url]);
    assert_eq!(table, "No resources found in namespace shop.\n");

    // Unknown names and kinds are one-line errors too.
    let error = fails_in(dir, &["delete", "workload", "ghost", "--nats", &url]);
    assert!(
        error.contains("workload/default/ghost not found"),
        "{error}"
    );
    std::fs::write(dir.join("good.yaml"), &good).unwrap();
    succeeds_in(dir, &["apply", "-f", "good.yaml", "--nats", &url]);
    let error = fails_in(
        dir,
        &["delete", "workload", "good", "-n", "shop", "--nats", &url],
    );
    assert!(error.contains("is a WorkloadDeployment"), "{error}");
    // A forgotten `-n` is named.
    let error = fails_in(dir, &["delete", "deployments", "good", "--nats", &url]);
    assert!(
        error.contains("not found; there is one in namespace `shop` (add `-n shop`)"),
        "{error}"
    );
    // One resource by name, in any of the kind's spellings.
    let (one, _) = succeeds_in(
        dir,
        &[
            "get",
            "deployment",
            "good",
            "-n",
            "shop",
            "-o",
            "json",
            "--nats",
            &url,
        ],
    );
    let one: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one[0]["metadata"]["name"], "good", "{one}");
    let error = fails_in(dir, &["get", "deploy", "nope", "--nats", &url]);
    assert!(
        error.contains("WorkloadDeployment `nope` not found"),
        "{error}"
    );
    // NATS that is not there: a clear error, no hang.
    let error = fails_in(dir, &["get", "deployments", "--nats", "nats://127.0.0.1:1"]);
    assert!(error.contains("cannot connect to NATS"), "{error}");
}
