//! The web console in a real browser: `nimbus serve` with two workloads
//! (one behind a middleware, using a plugin) and an admin token; headless
//! Chromium, driven by Playwright (`tests/console/check.mjs`), enters the
//! token, finds both workloads, sees the request count and the chart move
//! with traffic, and finds the middleware and plugin nodes in the graph.
//! Screenshots are saved under `target/tmp/console-screenshots/`.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "browser-test-token";

/// The check script's folder, with its `node_modules`.
fn check_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console")
}

/// Why the browser test cannot run here, if it cannot: on CI that is a
/// failure, elsewhere a skip that says what to install.
fn missing_tools() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no Chromium at {chromium} (apt-get install chromium)"
        ));
    }
    if !check_dir().join("node_modules/playwright-core").exists() {
        return Some("no playwright-core (npm ci --prefix crates/cli/tests/console)".into());
    }
    None
}

fn manifest(dir: &Path) -> PathBuf {
    let text = format!(
        r#"apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata:
  name: shop
  namespace: demo
spec:
  components:
    - name: log
      image: file://{log}
      localResources:
        environment:
          config:
            MW_NAME: log
    - name: app
      image: file://{app}
  middleware: [log]
  hostInterfaces:
    - namespace: wasi
      package: http
      interfaces: [incoming-handler]
      config:
        host: shop.test
    - namespace: wasi
      package: keyvalue
      interfaces: [store, atomics]
---
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata:
  name: hello
  namespace: demo
spec:
  components:
    - name: hello
      image: file://{hello}
  hostInterfaces:
    - namespace: wasi
      package: http
      interfaces: [incoming-handler]
      config:
        host: hello.test
"#,
        log = test_programs::P3_MW_LOGGING,
        app = test_programs::P2_PLUGINS,
        hello = test_programs::P3_HELLO,
    );
    let path = dir.join("workloads.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_console_in_chromium_lists_counts_and_draws_the_wiring() {
    if let Some(missing) = missing_tools() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "the console's browser test cannot run: {missing}"
        );
        eprintln!("skipped: {missing}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path());
    let server = Server::start(
        dir.path(),
        &[
            "serve",
            manifest.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--admin-token",
            "env:NIMBUS_TEST_ADMIN_TOKEN",
        ],
        &[("NIMBUS_TEST_ADMIN_TOKEN", TOKEN)],
        Duration::from_secs(120),
    );
    let admin = console_addr(&server);
    assert!(
        server.stderr().contains("need the bearer token"),
        "the start line says the token is needed:\n{}",
        server.stderr()
    );
    assert_eq!(request(&admin, "GET", "/api/host", "").0, 401);

    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    let traffic_url = format!("http://{}/kv/incr?bucket=b&key=hits", server.addr);
    let mut check = Command::new("node")
        .current_dir(check_dir())
        .args([
            "check.mjs",
            "--url",
            &format!("http://{admin}"),
            "--screenshots",
            screenshots.to_str().unwrap(),
            "--traffic-url",
            &traffic_url,
            "--traffic-host",
            "shop.test",
            "--traffic-workload",
            "demo/shop",
            "--other-workload",
            "demo/hello",
            "--middleware",
            "log",
            "--plugin",
            "keyvalue",
            "--token",
            TOKEN,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    // The script bounds itself (150 s); this bounds the script.
    let deadline = Instant::now() + Duration::from_secs(200);
    while check.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = check.kill();
            panic!("the browser check did not finish within 200 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = check.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser check failed ({}); screenshots in {}\nstdout: {stdout}\nstderr: {stderr}\nserver: {}",
        output.status,
        screenshots.display(),
        server.stderr()
    );
    let result: serde_json::Value = serde_json::from_str(
        stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no result line: {stdout}")),
    )
    .unwrap();
    assert_eq!(result["ok"], true, "{result}");
    let before = result["requestsBefore"].as_u64().unwrap();
    let after = result["requestsAfter"].as_u64().unwrap();
    assert!(after >= before + 40, "{result}");
    assert!(result["chartLastMax"].as_f64().unwrap() > 0.0, "{result}");
    let kinds: Vec<&str> = result["graphNodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k.as_str())
        .collect();
    for kind in ["ingress", "middleware", "handler", "plugin"] {
        assert!(kinds.contains(&kind), "no {kind} node: {result}");
    }
    for shot in [
        "host.png",
        "host-traffic.png",
        "workload.png",
        "cluster.png",
    ] {
        let bytes = std::fs::read(screenshots.join(shot)).unwrap_or_else(|e| panic!("{shot}: {e}"));
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{shot} is not a screenshot"
        );
    }
    // The token never reaches a page or the log.
    assert!(!server.stderr().contains(TOKEN));
}
