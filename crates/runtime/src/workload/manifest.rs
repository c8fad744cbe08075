//! Reading workload manifests (YAML, possibly several documents).
//!
//! Accepts wasmCloud v2's `apiVersion: runtime.wasmcloud.dev/v1alpha1`
//! resources of kind `Workload` (spec at `.spec`) and `WorkloadDeployment`
//! (spec at `.spec.template.spec`). Every rejection names the field path.

use super::spec::{LocalResources, Workload, WorkloadSpec};
use serde::Deserialize;
use std::collections::BTreeSet;

/// The API version Nimbus and wasmCloud v2 share.
pub const API_VERSION: &str = "runtime.wasmcloud.dev/v1alpha1";

/// A manifest problem, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ManifestError {
    /// Field path such as `spec.components[0].image` (prefixed with the
    /// document number when the file has several).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ManifestError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A parsed manifest document.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestDocument {
    /// `Workload` or `WorkloadDeployment`.
    pub kind: String,
    /// The workload it describes (for deployments, the template).
    pub workload: Workload,
    /// Desired replicas (1 for a plain `Workload`).
    pub replicas: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: RawMetadata,
    spec: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize, Default)]
struct RawMetadata {
    name: Option<String>,
    namespace: Option<String>,
}

/// Parses every document of a YAML manifest.
pub fn parse_manifest(text: &str) -> Result<Vec<ManifestDocument>, ManifestError> {
    let mut documents = Vec::new();
    let all: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(text)
        .map(serde_yaml_ng::Value::deserialize)
        .collect::<Result<_, _>>()
        .map_err(|e| ManifestError::new("(yaml)", e.to_string()))?;
    let many = all.iter().filter(|v| !v.is_null()).count() > 1;
    for (index, value) in all.into_iter().enumerate() {
        if value.is_null() {
            continue;
        }
        let prefix = if many {
            format!("document {}: ", index + 1)
        } else {
            String::new()
        };
        let doc = parse_document(value)
            .map_err(|e| ManifestError::new(format!("{prefix}{}", e.path), e.message))?;
        documents.push(doc);
    }
    if documents.is_empty() {
        return Err(ManifestError::new("(document)", "the manifest is empty"));
    }
    Ok(documents)
}

fn parse_document(value: serde_yaml_ng::Value) -> Result<ManifestDocument, ManifestError> {
    let raw: RawDocument = serde_yaml_ng::from_value(value)
        .map_err(|e| ManifestError::new("(document)", e.to_string()))?;
    match raw.api_version.as_deref() {
        Some(API_VERSION) => {}
        Some(other) => {
            return Err(ManifestError::new(
                "apiVersion",
                format!("expected `{API_VERSION}`, found `{other}`"),
            ));
        }
        None => {
            return Err(ManifestError::new(
                "apiVersion",
                format!("missing; expected `{API_VERSION}`"),
            ));
        }
    }
    let kind = raw.kind.ok_or_else(|| {
        ManifestError::new(
            "kind",
            "missing; expected `Workload` or `WorkloadDeployment`",
        )
    })?;
    let name = raw
        .metadata
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ManifestError::new("metadata.name", "missing"))?;
    check_name("metadata.name", &name)?;
    let namespace = raw
        .metadata
        .namespace
        .unwrap_or_else(|| "default".to_string());
    check_name("metadata.namespace", &namespace)?;
    let spec = raw
        .spec
        .ok_or_else(|| ManifestError::new("spec", "missing"))?;
    let (spec, spec_path, replicas) = match kind.as_str() {
        "Workload" => (spec, "spec".to_string(), 1),
        "WorkloadDeployment" => {
            let replicas = match spec.get("replicas") {
                None => 1,
                Some(r) => r
                    .as_u64()
                    .and_then(|r| u32::try_from(r).ok())
                    .ok_or_else(|| {
                        ManifestError::new("spec.replicas", "must be a non-negative integer")
                    })?,
            };
            let template = spec
                .get("template")
                .and_then(|t| t.get("spec"))
                .cloned()
                .ok_or_else(|| ManifestError::new("spec.template.spec", "missing"))?;
            (template, "spec.template.spec".to_string(), replicas)
        }
        other => {
            return Err(ManifestError::new(
                "kind",
                format!("unknown kind `{other}`; expected `Workload` or `WorkloadDeployment`"),
            ));
        }
    };
    let spec: WorkloadSpec = serde_path_error(spec, &spec_path)?;
    let workload = Workload {
        namespace,
        name,
        spec,
    };
    validate_workload(&workload, &spec_path)?;
    Ok(ManifestDocument {
        kind,
        workload,
        replicas,
    })
}

fn serde_path_error(
    value: serde_yaml_ng::Value,
    base: &str,
) -> Result<WorkloadSpec, ManifestError> {
    serde_yaml_ng::from_value(value).map_err(|e| {
        // serde_yaml_ng reports the failing location inside the message; keep
        // it and anchor it at the spec's path.
        ManifestError::new(base, e.to_string())
    })
}

fn check_name(path: &str, name: &str) -> Result<(), ManifestError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(ManifestError::new(
            path,
            format!("`{name}` is not a valid name (letters, digits, `-`, `_`, `.`)"),
        ))
    }
}

/// Checks the `localResources` of the component (or service) at `path`.
fn check_local_resources(
    path: &str,
    lr: &LocalResources,
    volume_names: &BTreeSet<&str>,
    base: &str,
) -> Result<(), ManifestError> {
    for (j, mount) in lr.volume_mounts.iter().enumerate() {
        let mpath = format!("{path}.localResources.volumeMounts[{j}]");
        if !volume_names.contains(mount.name.as_str()) {
            return Err(ManifestError::new(
                format!("{mpath}.name"),
                format!("no volume named `{}` in {base}.volumes", mount.name),
            ));
        }
        if !mount.mount_path.starts_with('/') {
            return Err(ManifestError::new(
                format!("{mpath}.mountPath"),
                "must be an absolute guest path such as `/data`",
            ));
        }
    }
    for (j, host) in lr.allowed_hosts.iter().enumerate() {
        crate::outbound::HostPattern::parse(host).map_err(|e| {
            ManifestError::new(format!("{path}.localResources.allowedHosts[{j}]"), e)
        })?;
    }
    if lr.timeout_ms == Some(0) {
        return Err(ManifestError::new(
            format!("{path}.localResources.timeoutMs"),
            "must be greater than 0",
        ));
    }
    if lr.max_concurrent_requests == Some(0) {
        return Err(ManifestError::new(
            format!("{path}.localResources.maxConcurrentRequests"),
            "must be greater than 0",
        ));
    }
    Ok(())
}

/// Checks a workload's internal consistency; `base` is the path of its spec.
pub fn validate_workload(workload: &Workload, base: &str) -> Result<(), ManifestError> {
    let spec = &workload.spec;
    if spec.components.is_empty() && spec.service.is_none() {
        return Err(ManifestError::new(
            format!("{base}.components"),
            "a workload needs at least one component",
        ));
    }
    let volume_names: BTreeSet<&str> = spec.volumes.iter().map(|v| v.name.as_str()).collect();
    for (i, volume) in spec.volumes.iter().enumerate() {
        let path = format!("{base}.volumes[{i}]");
        check_name(&format!("{path}.name"), &volume.name)?;
        match (&volume.host_path, &volume.empty_dir) {
            (Some(_), Some(_)) => {
                return Err(ManifestError::new(
                    path,
                    "set either `hostPath` or `emptyDir`, not both",
                ));
            }
            (None, None) => return Err(ManifestError::new(path, "needs `hostPath` or `emptyDir`")),
            (Some(host), None) if host.path.is_empty() => {
                return Err(ManifestError::new(
                    format!("{path}.hostPath.path"),
                    "must not be empty",
                ));
            }
            _ => {}
        }
    }
    let mut names = BTreeSet::new();
    for (i, component) in spec.components.iter().enumerate() {
        let path = format!("{base}.components[{i}]");
        check_name(&format!("{path}.name"), &component.name)?;
        if !names.insert(component.name.as_str()) {
            return Err(ManifestError::new(
                format!("{path}.name"),
                format!("duplicate component name `{}`", component.name),
            ));
        }
        if component.image.trim().is_empty() {
            return Err(ManifestError::new(
                format!("{path}.image"),
                "must not be empty",
            ));
        }
        check_local_resources(&path, &component.local_resources, &volume_names, base)?;
        for (key, field) in [
            (component.max_invocations, "maxInvocations"),
            (component.max_concurrency, "maxConcurrency"),
        ] {
            if key == Some(0) {
                return Err(ManifestError::new(
                    format!("{path}.{field}"),
                    "must be greater than 0",
                ));
            }
        }
    }
    if let Some(service) = &spec.service {
        let path = format!("{base}.service");
        if service.image.trim().is_empty() {
            return Err(ManifestError::new(
                format!("{path}.image"),
                "must not be empty",
            ));
        }
        if names.contains(crate::host::SERVICE_NAME) {
            return Err(ManifestError::new(
                format!("{base}.components"),
                format!(
                    "a component is named `{}`, the name the workload's service goes by; rename the component",
                    crate::host::SERVICE_NAME
                ),
            ));
        }
        check_local_resources(&path, &service.local_resources, &volume_names, base)?;
    }
    let mut layers = BTreeSet::new();
    for (i, name) in spec.middleware.iter().enumerate() {
        let path = format!("{base}.middleware[{i}]");
        if !names.contains(name.as_str()) {
            return Err(ManifestError::new(
                path,
                format!("no component named `{name}` in {base}.components"),
            ));
        }
        if !layers.insert(name.as_str()) {
            return Err(ManifestError::new(
                path,
                format!("`{name}` is listed twice; a middleware wraps the chain once"),
            ));
        }
    }
    if !spec.middleware.is_empty() && spec.components.len() == spec.middleware.len() {
        return Err(ManifestError::new(
            format!("{base}.middleware"),
            "every component is a middleware; one component must be the HTTP handler they wrap",
        ));
    }
    for (i, interface) in spec.host_interfaces.iter().enumerate() {
        let path = format!("{base}.hostInterfaces[{i}]");
        if interface.namespace.is_empty() {
            return Err(ManifestError::new(
                format!("{path}.namespace"),
                "must not be empty",
            ));
        }
        if interface.package.is_empty() {
            return Err(ManifestError::new(
                format!("{path}.package"),
                "must not be empty",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WASMCLOUD_DEPLOYMENT: &str = r#"
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: WorkloadDeployment
metadata:
  name: hello-world
spec:
  replicas: 3
  template:
    spec:
      hostSelector:
        hostgroup: public-ingress
      components:
        - name: hello-world
          image: ghcr.io/example/hello:1.0.0
          poolSize: 4
          maxInvocations: 100
          localResources:
            memoryLimitMb: 64
            cpuLimit: 1
            config: { mode: fast }
            environment: { config: { GREETING: hi } }
            allowedHosts: ["api.example.com", "*.example.org:443"]
      hostInterfaces:
        - namespace: wasi
          package: http
          version: "0.2.0"
          interfaces: [incoming-handler]
          config:
            host: hello.example.com
            host-aliases: "www.example.com, alt.example.com"
"#;

    #[test]
    fn reads_a_wasmcloud_workload_deployment() {
        let docs = parse_manifest(WASMCLOUD_DEPLOYMENT).unwrap();
        assert_eq!(docs.len(), 1);
        let doc = &docs[0];
        assert_eq!(doc.kind, "WorkloadDeployment");
        assert_eq!(doc.replicas, 3);
        let w = &doc.workload;
        assert_eq!(w.id(), "default/hello-world");
        assert_eq!(
            w.spec.host_selector.get("hostgroup").map(String::as_str),
            Some("public-ingress")
        );
        let c = &w.spec.components[0];
        assert_eq!(c.max_invocations, Some(100));
        assert_eq!(c.local_resources.memory_limit_mb, Some(64));
        assert_eq!(
            c.local_resources
                .environment
                .config
                .get("GREETING")
                .map(String::as_str),
            Some("hi")
        );
        assert_eq!(
            w.spec.http_hosts(),
            ["hello.example.com", "www.example.com", "alt.example.com"]
        );
        assert!(!w.spec.allows_sockets());
    }

    #[test]
    fn several_documents_and_plain_workloads() {
        let text = "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a, namespace: ns}\nspec:\n  components: [{name: a, image: ./a.wasm}]\n---\napiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: b}\nspec:\n  components: [{name: b, image: ./b.wasm}]\n";
        let docs = parse_manifest(text).unwrap();
        let ids: Vec<_> = docs.iter().map(|d| d.workload.id()).collect();
        assert_eq!(ids, ["ns/a", "default/b"]);
    }

    #[test]
    fn rejections_name_the_field() {
        let cases = [
            (
                "kind: Workload\nmetadata: {name: a}\nspec: {}",
                "apiVersion",
            ),
            (
                "apiVersion: v1\nkind: Workload\nmetadata: {name: a}\nspec: {}",
                "apiVersion",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Pod\nmetadata: {name: a}\nspec: {}",
                "kind",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {}\nspec: {}",
                "metadata.name",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: 'a b'}\nspec: {}",
                "metadata.name",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec: {}",
                "spec.components",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec:\n  components: [{name: a, image: x}, {name: a, image: y}]",
                "spec.components[1].name",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec:\n  components: [{name: a, image: x, localResources: {allowedHosts: ['exa*mple.com']}}]",
                "spec.components[0].localResources.allowedHosts[0]",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec:\n  components: [{name: a, image: x, localResources: {volumeMounts: [{name: v, mountPath: /d}]}}]",
                "spec.components[0].localResources.volumeMounts[0].name",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec:\n  service: {image: ' '}",
                "spec.service.image",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec:\n  service: {image: s.wasm, localResources: {timeoutMs: 0}}",
                "spec.service.localResources.timeoutMs",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec:\n  components: [{name: service, image: x}]\n  service: {image: s.wasm}",
                "spec.components",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: WorkloadDeployment\nmetadata: {name: a}\nspec:\n  replicas: 1",
                "spec.template.spec",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: WorkloadDeployment\nmetadata: {name: a}\nspec:\n  replicas: -2\n  template: {spec: {components: [{name: a, image: x}]}}",
                "spec.replicas",
            ),
        ];
        for (text, path) in cases {
            let err = parse_manifest(text).unwrap_err();
            assert_eq!(err.path, path, "{text}\n=> {err}");
        }
        let err = parse_manifest("apiVersion: [").unwrap_err();
        assert_eq!(err.path, "(yaml)");
    }
}
