//! Components the host must refuse with a precise error, never a panic.

use crate::common;

use common::*;
use nimbus_host::WorkloadError;
use nimbus_host::artifact::{ArtifactError, validate_component_bytes};
use nimbus_model::ComponentError;
use test_programs::P2_HELLO;

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    file
}

#[test]
fn bytes_are_classified() {
    assert!(matches!(
        validate_component_bytes(b"hello world"),
        Err(ArtifactError::Invalid(ComponentError::NotWasm))
    ));
    assert!(matches!(
        validate_component_bytes(&wat::parse_str("(module)").unwrap()),
        Err(ArtifactError::Invalid(ComponentError::CoreModule))
    ));
    let good = std::fs::read(P2_HELLO).unwrap();
    validate_component_bytes(&good).unwrap();
    assert!(matches!(
        validate_component_bytes(&good[..good.len() / 2]),
        Err(ArtifactError::Invalid(ComponentError::Malformed(_)))
    ));
}

#[tokio::test]
async fn a_component_importing_an_unknown_interface_names_it() {
    let component = wat::parse_str(
        r#"(component
            (import "acme:inventory/store@1.0.0" (instance
                (export "get" (func (param "key" string) (result u32))))))"#,
    )
    .unwrap();
    let file = write_temp(&component);
    let t = TestHost::dynamic().await;
    let err = t
        .host
        .start_workload(http_workload(
            "kv",
            file.path().to_str().unwrap(),
            "kv.test",
        ))
        .await
        .unwrap_err();
    match &err {
        WorkloadError::UnsupportedImport { interface, .. } => {
            assert_eq!(interface, "acme:inventory/store@1.0.0")
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn a_plugin_interface_with_the_wrong_signature_is_a_clear_link_error() {
    let component = wat::parse_str(
        r#"(component
            (import "wasi:logging/logging@0.1.0-draft" (instance
                (export "log" (func (param "message" string) (result u32))))))"#,
    )
    .unwrap();
    let file = write_temp(&component);
    let t = TestHost::dynamic().await;
    let err = t
        .host
        .start_workload(http_workload(
            "badlog",
            file.path().to_str().unwrap(),
            "badlog.test",
        ))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, WorkloadError::Link { .. }), "{message}");
    assert!(
        message.contains("`wasi:logging/logging@0.1.0-draft` does not match the host's definition"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_truncated_and_core_files_fail_to_start() {
    let t = TestHost::dynamic().await;
    let err = t
        .host
        .start_workload(http_workload("missing", "/nonexistent/x.wasm", "m.test"))
        .await
        .unwrap_err();
    assert!(matches!(err, WorkloadError::Read { .. }), "{err}");
    let good = std::fs::read(P2_HELLO).unwrap();
    let truncated = write_temp(&good[..good.len() - 100]);
    let err = t
        .host
        .start_workload(http_workload(
            "trunc",
            truncated.path().to_str().unwrap(),
            "t.test",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            WorkloadError::Artifact {
                source: ArtifactError::Invalid(ComponentError::Malformed(_)),
                ..
            }
        ),
        "{err}"
    );
    let core = write_temp(&wat::parse_str("(module)").unwrap());
    let err = t
        .host
        .start_workload(http_workload(
            "core",
            core.path().to_str().unwrap(),
            "c.test",
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("core WebAssembly module"), "{err}");
    let remote = http_workload("remote", "x", "r.test");
    let mut remote = remote;
    // A registry that is not there (loopback port 1): a clear error naming
    // the component and the image.
    remote.spec.components[0].image = "127.0.0.1:1/example/hello:1.0".into();
    remote.spec.components[0].image_pull_policy = Some(nimbus_host::oci::PullPolicy::Always);
    let err = t.host.start_workload(remote).await.unwrap_err();
    assert!(matches!(err, WorkloadError::Image { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("component `remote`: `127.0.0.1:1/example/hello:1.0`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_component_without_an_http_export_is_refused_when_http_is_declared() {
    let component = wat::parse_str("(component)").unwrap();
    let file = write_temp(&component);
    let t = TestHost::dynamic().await;
    let err = t
        .host
        .start_workload(http_workload(
            "nohttp",
            file.path().to_str().unwrap(),
            "n.test",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, WorkloadError::NoHttpHandler(_)), "{err}");
}
