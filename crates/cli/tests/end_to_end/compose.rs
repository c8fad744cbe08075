//! `nimbus compose`: a manifest's linked components written out as one
//! component whose linked imports are gone, and the one-line errors.

use crate::common;

use common::*;
use std::path::Path;

fn manifest(dir: &Path, components: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = String::from(
        "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: { name: linked }\nspec:\n  components:\n",
    );
    for (name, image) in components {
        text.push_str(&format!(
            "    - name: {name}\n      image: file://{image}\n"
        ));
    }
    let path = dir.join("workload.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn compose_writes_one_component_without_the_linked_imports() {
    let dir = tempfile::tempdir().unwrap();
    manifest(
        dir.path(),
        &[
            ("app", test_programs::P2_LINK_APP),
            ("lib", test_programs::P2_LINK_LIB),
        ],
    );
    let (stdout, _) = succeeds_in(dir.path(), &["compose", "workload.yaml", "-o", "app.wasm"]);
    assert!(
        stdout.contains("composed `app` with `lib` into app.wasm"),
        "{stdout}"
    );

    let (before, _) = succeeds_in(dir.path(), &["inspect", test_programs::P2_LINK_APP]);
    assert!(before.contains("nimbus:link-test/greet"), "{before}");
    let (after, _) = succeeds_in(dir.path(), &["inspect", "app.wasm"]);
    assert!(!after.contains("nimbus:link-test"), "{after}");
    assert!(after.contains("wasi:http/incoming-handler"), "{after}");
}

#[test]
fn compose_explains_what_it_cannot_do_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("lib", test_programs::P2_LINK_LIB)]);
    let error = fails_in(dir.path(), &["compose", "workload.yaml", "-o", "out.wasm"]);
    assert_eq!(
        error.trim(),
        "error: no component of workload `default/linked` imports from another: there is nothing to compose"
    );
    let error = fails_in(
        dir.path(),
        &[
            "compose",
            "workload.yaml",
            "-o",
            "out.wasm",
            "--root",
            "nope",
        ],
    );
    assert_eq!(
        error.trim(),
        "error: no component named `nope` to compose around"
    );
    assert!(!dir.path().join("out.wasm").exists());
}

#[test]
fn compose_never_overwrites_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        dir.path(),
        &[
            ("app", test_programs::P2_LINK_APP),
            ("lib", test_programs::P2_LINK_LIB),
        ],
    );
    let before = std::fs::read_to_string(&path).unwrap();
    let error = fails_in(
        dir.path(),
        &["compose", "workload.yaml", "-o", "./workload.yaml"],
    );
    assert_eq!(
        error.trim(),
        "error: `./workload.yaml` is the manifest being composed: write the component somewhere else"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
}
