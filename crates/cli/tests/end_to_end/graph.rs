//! `nimbus graph` on a sample workload (two middlewares, a handler using
//! plugins and outgoing HTTP, a message handler) against checked-in
//! pictures: `tests/expected/graph.mmd` (Mermaid) and `graph.txt` (ASCII).
//! Set `NIMBUS_BLESS=1` to rewrite them after an intended change.

use crate::common;

use common::*;
use std::path::Path;

fn sample_manifest(dir: &Path) -> std::path::PathBuf {
    let manifest = format!(
        r#"apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: Workload
metadata:
  name: shop
  namespace: demo
spec:
  components:
    - name: auth
      image: file://{auth}
    - name: access-log
      image: file://{log}
    - name: app
      image: file://{app}
      localResources:
        allowedHosts: [api.example.com]
    - name: orders
      image: file://{orders}
  middleware: [auth, access-log]
  hostInterfaces:
    - namespace: wasi
      package: http
      interfaces: [incoming-handler]
      config:
        host: shop.example
"#,
        auth = test_programs::P3_MW_AUTH,
        log = test_programs::P3_MW_LOGGING,
        app = test_programs::P2_PLUGINS,
        orders = test_programs::P2_MSG_HANDLER,
    );
    let path = dir.join("workload.yaml");
    std::fs::write(&path, manifest).unwrap();
    path
}

fn check(actual: &str, expected_file: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(expected_file);
    if std::env::var_os("NIMBUS_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(actual, expected, "differs from {}", path.display());
}

#[test]
fn graph_of_a_sample_workload_matches_the_checked_in_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = sample_manifest(dir.path());
    let manifest = manifest.to_str().unwrap();
    let (mermaid, _) = succeeds_in(dir.path(), &["graph", manifest]);
    check(&mermaid, "graph.mmd");
    let (ascii, _) = succeeds_in(dir.path(), &["graph", "--ascii", manifest]);
    check(&ascii, "graph.txt");
}

/// wasmCloud's templates ship a Kubernetes `Service` in the workload's
/// file: it is skipped with a note, and a field Nimbus does not act on is
/// named, while the picture stays the workload's.
#[test]
fn graph_skips_other_kubernetes_objects_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = sample_manifest(dir.path());
    let plain = std::fs::read_to_string(&manifest).unwrap();
    let mixed = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: shop\nspec:\n  ports: [{{port: 80}}]\n---\n{}",
        plain.replace("  middleware:", "  hostId: host-7\n  middleware:")
    );
    let mixed_path = dir.path().join("mixed.yaml");
    std::fs::write(&mixed_path, mixed).unwrap();
    let (expected, _) = succeeds_in(dir.path(), &["graph", manifest.to_str().unwrap()]);
    let (picture, stderr) = succeeds_in(dir.path(), &["graph", "mixed.yaml"]);
    assert_eq!(picture, expected);
    let notes: Vec<&str> = stderr.lines().filter(|l| l.starts_with("note: ")).collect();
    assert_eq!(
        notes,
        [
            "note: mixed.yaml: skipping v1/Service shop: not a wasmCloud kind",
            "note: mixed.yaml: demo/shop: spec.hostId has no effect here (Nimbus places workloads by `hostSelector`)",
        ],
        "{stderr}"
    );
}

#[test]
fn graph_refuses_what_it_cannot_draw() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails_in(dir.path(), &["graph", "missing.yaml"]);
    assert!(err.contains("missing.yaml"), "{err}");
    // A project that was never built.
    let (_parent, project) = new_project("http-hello-world", "unbuilt");
    let err = fails_in(&project, &["graph"]);
    assert!(err.contains("nimbus build"), "{err}");
}
