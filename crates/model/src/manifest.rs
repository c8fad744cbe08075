//! Reading workload manifests (YAML, possibly several documents).
//!
//! Accepts wasmCloud v2's `apiVersion: runtime.wasmcloud.dev/v1alpha1`
//! resources of kind `Workload` (spec at `.spec`), `WorkloadDeployment` and
//! `WorkloadReplicaSet` (spec at `.spec.template.spec`). Every rejection
//! names the field path; an unknown field is an error with the nearest
//! valid name. Size and nesting are bounded before parsing.
//!
//! A file may hold other Kubernetes objects beside them (wasmCloud's
//! templates ship a `v1/Service` with the workload): a document of another
//! API group is skipped with a notice naming it. wasmCloud kinds Nimbus
//! does not run (`Artifact`) are refused with a sentence saying so, and
//! fields wasmCloud has that mean nothing here (`hostId`, `poolSize`,
//! `kubernetes`, …) each give a notice rather than pass in silence.

use super::autoscaling::Autoscaling;
use super::rollout::{DeployPolicy, RollingUpdate};
use super::spec::{LocalResources, Workload, WorkloadSpec};
use serde::Deserialize;
use std::collections::BTreeSet;

/// The API version Nimbus and wasmCloud v2 share.
pub const API_VERSION: &str = "runtime.wasmcloud.dev/v1alpha1";

/// A manifest problem, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// Field path such as `spec.components[0].image` (prefixed with the
    /// document number when the file has several); empty when the problem
    /// is the file's YAML itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl ManifestError {
    /// A problem with the YAML itself, before any field is read.
    fn yaml(message: impl std::fmt::Display) -> Self {
        Self::new("", format!("not valid YAML: {message}"))
    }

    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A parsed manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Its wasmCloud workload documents, in file order.
    pub documents: Vec<ManifestDocument>,
    /// What the reader should be told, one line each: documents skipped,
    /// fields that have no effect in Nimbus.
    pub notices: Vec<String>,
}

/// A parsed manifest document.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestDocument {
    /// The document as written (what a cluster stores beside the parsed
    /// workload).
    pub raw: serde_yaml_ng::Value,
    /// Its position among the file's YAML documents (0-based, empty
    /// documents and skipped ones counted).
    pub index: usize,
    /// `Workload` or `WorkloadDeployment`.
    pub kind: String,
    /// The workload it describes (for deployments, the template).
    pub workload: Workload,
    /// Desired replicas (1 for a plain `Workload`).
    pub replicas: u32,
    /// How a changed template reaches the replicas (`spec.deployPolicy`
    /// and `spec.rollingUpdate` of a `WorkloadDeployment`; a
    /// `WorkloadReplicaSet`, like a plain `Workload`, changes everywhere
    /// at once).
    pub policy: DeployPolicy,
    /// Replicas that follow the load (`spec.autoscaling`), if asked for.
    pub autoscaling: Option<Autoscaling>,
}

/// The largest manifest parsed, in bytes: a bound on the work one
/// document can ask of the parser.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// The deepest nesting of YAML collections accepted. A workload needs
/// about eight; the parser's cost grows with the square of the depth.
pub const MAX_NESTING_DEPTH: usize = 64;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDocument {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: RawMetadata,
    spec: Option<serde_yaml_ng::Value>,
    /// What a cluster reported (a `kubectl get -o yaml` export): ignored.
    #[serde(default)]
    #[allow(dead_code)]
    status: Option<serde_yaml_ng::Value>,
}

/// Kubernetes object metadata: every field an exported object carries is
/// accepted; only the name and namespace mean anything here.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct RawMetadata {
    name: Option<String>,
    namespace: Option<String>,
    generate_name: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<serde_yaml_ng::Value>,
    deletion_timestamp: Option<serde_yaml_ng::Value>,
    deletion_grace_period_seconds: Option<i64>,
    labels: Option<serde_yaml_ng::Value>,
    annotations: Option<serde_yaml_ng::Value>,
    owner_references: Option<serde_yaml_ng::Value>,
    finalizers: Option<Vec<String>>,
    managed_fields: Option<serde_yaml_ng::Value>,
    cluster_name: Option<String>,
}

/// The spec of a `WorkloadDeployment` or `WorkloadReplicaSet`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct RawReplicatedSpec {
    replicas: Option<u32>,
    template: Option<RawTemplate>,
    /// `RollingUpdate` or `Recreate` (deployments only).
    deploy_policy: Option<String>,
    /// How many replicas a rolling update replaces at once (Nimbus's,
    /// after Kubernetes' `strategy.rollingUpdate`; deployments only).
    rolling_update: Option<RollingUpdate>,
    /// Replicas that follow the load (Nimbus's, after Kubernetes'
    /// HorizontalPodAutoscaler).
    autoscaling: Option<Autoscaling>,
    /// wasmCloud `Artifact` references (deployments only): accepted.
    artifacts: Option<serde_yaml_ng::Value>,
    /// The Kubernetes Service in front (deployments only): accepted.
    kubernetes: Option<super::spec::KubernetesSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawTemplate {
    labels: Option<serde_yaml_ng::Value>,
    annotations: Option<serde_yaml_ng::Value>,
    /// Older wasmCloud samples write the template's labels here.
    metadata: Option<serde_yaml_ng::Value>,
    spec: Option<serde_yaml_ng::Value>,
}

/// The API group of wasmCloud's runtime kinds.
const API_GROUP: &str = "runtime.wasmcloud.dev/";

/// The kinds of that group.
const WASMCLOUD_KINDS: &[&str] = &[
    "Workload",
    "WorkloadDeployment",
    "WorkloadReplicaSet",
    "Artifact",
];

/// Parses every document of a YAML manifest.
pub fn parse_manifest(text: &str) -> Result<Manifest, ManifestError> {
    // Editors on Windows may start the file with a byte-order mark, which
    // the YAML parser takes for content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_yaml_bounds(text, MAX_MANIFEST_BYTES, MAX_NESTING_DEPTH)
        .map_err(|error| ManifestError::new("", error.to_string()))?;
    let mut documents = Vec::new();
    let mut notices = Vec::new();
    let all: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(text)
        .map(serde_yaml_ng::Value::deserialize)
        .collect::<Result<_, _>>()
        .map_err(ManifestError::yaml)?;
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
        if let Some(skipped) = foreign_object(&value) {
            notices.push(format!("skipping {skipped}: not a wasmCloud kind"));
            continue;
        }
        let (doc, ignored) = parse_document(index, value)
            .map_err(|e| ManifestError::new(format!("{prefix}{}", e.path), e.message))?;
        let label = format!("{}/{}", doc.workload.namespace, doc.workload.name);
        if let Some(first) = documents.iter().find(|d: &&ManifestDocument| {
            d.kind == doc.kind
                && d.workload.namespace == doc.workload.namespace
                && d.workload.name == doc.workload.name
        }) {
            return Err(ManifestError::new(
                format!("{prefix}metadata.name"),
                format!(
                    "{} {label} is already defined by document {}",
                    doc.kind,
                    first.index + 1
                ),
            ));
        }
        notices.extend(ignored.into_iter().map(|field| format!("{label}: {field}")));
        documents.push(doc);
    }
    if documents.is_empty() {
        let message = if notices.is_empty() {
            "the manifest is empty".to_string()
        } else {
            format!(
                "the manifest holds no wasmCloud workload (expected kind `Workload`, `WorkloadDeployment` or `WorkloadReplicaSet` with apiVersion `{API_VERSION}`)"
            )
        };
        return Err(ManifestError::new("(document)", message));
    }
    Ok(Manifest { documents, notices })
}

/// `apiVersion/kind name` of a document that is another API group's
/// Kubernetes object, which a manifest file may carry beside workloads.
fn foreign_object(value: &serde_yaml_ng::Value) -> Option<String> {
    let text = |key: &str| value.get(key).and_then(serde_yaml_ng::Value::as_str);
    let api_version = text("apiVersion")?;
    let kind = text("kind").unwrap_or("(no kind)");
    // A wasmCloud kind under a mistyped apiVersion is a mistake to report,
    // not another project's object.
    if api_version.starts_with(API_GROUP) || WASMCLOUD_KINDS.contains(&kind) {
        return None;
    }
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(serde_yaml_ng::Value::as_str)
        .unwrap_or("(no name)");
    // The names come from the user's file: escape them so no control
    // character reaches the terminal.
    Some(format!(
        "{}/{} {}",
        api_version.escape_debug(),
        kind.escape_debug(),
        name.escape_debug()
    ))
}

/// One workload document, and the fields it sets that have no effect here.
fn parse_document(
    index: usize,
    value: serde_yaml_ng::Value,
) -> Result<(ManifestDocument, Vec<String>), ManifestError> {
    let written = value.clone();
    let raw: RawDocument = deserialize_at(value, "")?;
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
            "missing; expected `Workload`, `WorkloadDeployment` or `WorkloadReplicaSet`",
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
    let mut ignored = Vec::new();
    let (spec, spec_path, replicas, policy, autoscaling) = match kind.as_str() {
        "Workload" => (spec, "spec", 1, DeployPolicy::Recreate, None),
        "Artifact" => {
            return Err(ManifestError::new(
                "kind",
                "`Artifact` is not supported yet: write the component's OCI reference in its `image` field",
            ));
        }
        "WorkloadDeployment" | "WorkloadReplicaSet" => {
            let replicated: RawReplicatedSpec = deserialize_at(spec, "spec").map_err(|e| {
                // A workload field one level too high: say where it goes.
                match e.path.strip_prefix("spec.") {
                    Some(field) if WorkloadSpec::FIELDS.contains(&field) => ManifestError::new(
                        e.path.clone(),
                        format!("{}; it belongs under spec.template.spec", e.message),
                    ),
                    _ => e,
                }
            })?;
            if replicated.artifacts.is_some() {
                ignored.push(
                    "spec.artifacts has no effect here (components pull their `image` themselves)"
                        .to_string(),
                );
            }
            if replicated.kubernetes.is_some() {
                ignored.push(
                    "spec.kubernetes has no effect here (it describes a Kubernetes Service)"
                        .to_string(),
                );
            }
            let policy = replicated_policy(
                &kind,
                replicated.deploy_policy.as_deref(),
                replicated.rolling_update,
            )?;
            let template = replicated
                .template
                .and_then(|t| t.spec)
                .ok_or_else(|| ManifestError::new("spec.template.spec", "missing"))?;
            if let Some(autoscaling) = &replicated.autoscaling {
                autoscaling.check().map_err(|(field, message)| {
                    ManifestError::new(format!("spec.autoscaling.{field}"), message)
                })?;
            }
            // Autoscaled, the replicas start within the bounds.
            let replicas = replicated.replicas.unwrap_or(1);
            let replicas = replicated
                .autoscaling
                .map_or(replicas, |a| a.clamp(replicas));
            (
                template,
                "spec.template.spec",
                replicas,
                policy,
                replicated.autoscaling,
            )
        }
        other => {
            return Err(ManifestError::new(
                "kind",
                format!(
                    "unknown kind `{other}`; expected `Workload`, `WorkloadDeployment` or `WorkloadReplicaSet`"
                ),
            ));
        }
    };
    let spec: WorkloadSpec = deserialize_at(spec, spec_path)?;
    let workload = Workload {
        namespace,
        name,
        spec,
    };
    validate_workload(&workload, spec_path)?;
    // Checked where a manifest is read, not at every start: a host never
    // reads the selector, so one stored before this check still runs.
    for (key, value) in &workload.spec.host_selector {
        crate::labels::check_label(key, value).map_err(|error| {
            ManifestError::new(format!("{spec_path}.hostSelector"), error.to_string())
        })?;
    }
    if let Some(autoscaling) = &autoscaling
        && autoscaling.scales_to_zero()
        && let Some(reason) = workload.spec.reached_other_than_by_http()
    {
        return Err(ManifestError::new(
            "spec.autoscaling.minReplicas",
            format!(
                "0 would park the workload when idle, and {reason}; only an HTTP request wakes a parked workload"
            ),
        ));
    }
    if let Some(autoscaling) = &autoscaling
        && workload.spec.http_interface().is_none()
    {
        // Only HTTP requests are counted, and only they wake a parked
        // workload.
        if autoscaling.target_requests_per_second.is_some() {
            return Err(ManifestError::new(
                "spec.autoscaling.targetRequestsPerSecond",
                "counts HTTP requests, and the workload serves no HTTP (no wasi:http host interface); use targetCpu",
            ));
        }
        if autoscaling.scales_to_zero() {
            return Err(ManifestError::new(
                "spec.autoscaling.minReplicas",
                "0 needs a workload that serves HTTP (a wasi:http host interface): only an HTTP request wakes a workload scaled to zero",
            ));
        }
    }
    ignored.extend(
        workload
            .spec
            .fields_without_effect()
            .into_iter()
            .map(|field| format!("{spec_path}.{field}")),
    );
    Ok((
        ManifestDocument {
            raw: written,
            index,
            kind,
            workload,
            replicas,
            policy,
            autoscaling,
        },
        ignored,
    ))
}

/// The deploy policy of a `WorkloadDeployment` (`deployPolicy`, default
/// `RollingUpdate`, with `rollingUpdate`'s shares) or a
/// `WorkloadReplicaSet` (which has neither: it changes at once).
fn replicated_policy(
    kind: &str,
    deploy_policy: Option<&str>,
    rolling_update: Option<RollingUpdate>,
) -> Result<DeployPolicy, ManifestError> {
    if kind == "WorkloadReplicaSet" {
        if deploy_policy.is_some() {
            return Err(ManifestError::new(
                "spec.deployPolicy",
                "a WorkloadReplicaSet has no deploy policy (it changes every replica at once); use a WorkloadDeployment",
            ));
        }
        if rolling_update.is_some() {
            return Err(ManifestError::new(
                "spec.rollingUpdate",
                "a WorkloadReplicaSet does not roll; use a WorkloadDeployment",
            ));
        }
        return Ok(DeployPolicy::Recreate);
    }
    match deploy_policy {
        None | Some("RollingUpdate") => {
            let rolling = rolling_update.unwrap_or_default();
            rolling
                .check()
                .map_err(|message| ManifestError::new("spec.rollingUpdate", message))?;
            Ok(DeployPolicy::RollingUpdate(rolling))
        }
        Some("Recreate") if rolling_update.is_some() => Err(ManifestError::new(
            "spec.rollingUpdate",
            "only a `RollingUpdate` deploy policy takes it",
        )),
        Some("Recreate") => Ok(DeployPolicy::Recreate),
        Some(other) => Err(ManifestError::new(
            "spec.deployPolicy",
            format!(
                "unknown policy `{}`; expected `RollingUpdate` or `Recreate`",
                other.escape_debug()
            ),
        )),
    }
}

/// Deserializes `value` as `T`, reporting the failing field's full path
/// under `base`, and for an unknown field the nearest valid name.
fn deserialize_at<T: serde::de::DeserializeOwned>(
    value: serde_yaml_ng::Value,
    base: &str,
) -> Result<T, ManifestError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let inner = error.inner().to_string();
        let mut path = error.path().to_string();
        if path == "." {
            path.clear();
        }
        let join = |tail: &str| match (base.is_empty(), tail.is_empty()) {
            (_, true) => base.to_string(),
            (true, false) => tail.to_string(),
            (false, false) => format!("{base}.{tail}"),
        };
        match unknown_field(&inner) {
            Some((field, expected)) => {
                // The path may stop at the map that holds the field.
                let full = if path == field || path.ends_with(&format!(".{field}")) {
                    join(&path)
                } else if path.is_empty() {
                    join(&field)
                } else {
                    join(&format!("{path}.{field}"))
                };
                let message = match nearest(&field, &expected) {
                    Some(close) => format!("unknown field, did you mean `{close}`?"),
                    None if expected.is_empty() => "unknown field; none are allowed here".into(),
                    None => format!("unknown field; expected one of `{}`", expected.join("`, `")),
                };
                ManifestError::new(full, message)
            }
            None => ManifestError::new(join(&path), inner),
        }
    })
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" message.
pub(crate) fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((field.to_string(), expected))
}

/// The candidate closest to `field`, if any is close enough to be a typo.
pub(crate) fn nearest<'a>(field: &str, candidates: &'a [String]) -> Option<&'a str> {
    let lower = field.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(distance, c)| *distance <= 2.max(c.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c.as_str())
}

/// Why [`check_yaml_bounds`] refused a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlBoundsError {
    /// The document is larger than the limit.
    #[error("the document is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// Its collections nest deeper than the limit.
    #[error("collections nest deeper than {0} levels")]
    TooDeep(usize),
}

/// Refuses YAML that is larger than `max_bytes` or nests deeper than
/// `max_depth`, before the parser sees it: the YAML parser's work grows
/// with the square of the nesting depth, so a small file nested a hundred
/// thousand deep would otherwise take tens of seconds to reject.
///
/// Counts flow collections (`[`, `{`) outside quotes and comments, and
/// block sequences opened on one line (`- - - x`); block nesting by
/// indentation is bounded by the size limit already.
pub fn check_yaml_bounds(
    text: &str,
    max_bytes: usize,
    max_depth: usize,
) -> Result<(), YamlBoundsError> {
    if text.len() > max_bytes {
        return Err(YamlBoundsError::TooLarge {
            size: text.len(),
            limit: max_bytes,
        });
    }
    let too_deep = || YamlBoundsError::TooDeep(max_depth);
    let mut flow_depth = 0usize;
    for line in text.lines() {
        if line.starts_with("---") || line.starts_with("...") {
            // A new document: nothing of the last one is still open.
            flow_depth = 0;
        }
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        // The character just before, whitespace included.
        let mut before = ' ';
        // `- - - x` opens one block sequence per dash (`- ? - ?` alike).
        let mut inline_dashes = 0usize;
        let mut at_line_start = true;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match quote {
                Some('\'') if c == '\'' => quote = None,
                Some('"') if c == '\\' => {
                    chars.next();
                }
                Some('"') if c == '"' => quote = None,
                Some(_) => {}
                None => match c {
                    '#' if before.is_whitespace() => break,
                    // A quote opens a scalar only where one may start, not
                    // inside a word (`it's`).
                    '\'' | '"'
                        if at_line_start
                            || ((before.is_whitespace() || "[{,".contains(before))
                                && ":-[{,?".contains(previous)) =>
                    {
                        quote = Some(c)
                    }
                    '[' | '{' if flow_depth > 0 || at_line_start || ":-?,".contains(previous) => {
                        flow_depth += 1;
                        if flow_depth > max_depth {
                            return Err(too_deep());
                        }
                    }
                    ']' | '}' => flow_depth = flow_depth.saturating_sub(1),
                    // `? ? x` opens one explicit-key mapping per `?`, as
                    // dashes open sequences.
                    '-' | '?' if at_line_start && chars.peek().is_none_or(|n| *n == ' ') => {
                        inline_dashes += 1;
                        if inline_dashes > max_depth {
                            return Err(too_deep());
                        }
                    }
                    _ => {}
                },
            }
            before = c;
            if !c.is_whitespace() {
                previous = c;
                if c != '-' && c != '?' {
                    at_line_start = false;
                }
            }
        }
    }
    Ok(())
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
        crate::host_pattern::HostPattern::parse(host).map_err(|e| {
            ManifestError::new(
                format!("{path}.localResources.allowedHosts[{j}]"),
                e.to_string(),
            )
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
    // Names become one `namespace/name` id: a `/` in either would let two
    // different workloads share it.
    check_name("metadata.namespace", &workload.namespace)?;
    check_name("metadata.name", &workload.name)?;
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
        if names.contains(crate::spec::SERVICE_NAME) {
            return Err(ManifestError::new(
                format!("{base}.components"),
                format!(
                    "a component is named `{}`, the name the workload's service goes by; rename the component",
                    crate::spec::SERVICE_NAME
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
    fn autoscaling_is_read_checked_and_bounds_the_replicas() {
        let with = |autoscaling: &str| {
            let text = format!(
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: WorkloadDeployment\nmetadata: {{name: a}}\nspec:\n  replicas: 9\n  autoscaling: {autoscaling}\n  template:\n    spec:\n      components: [{{name: a, image: x}}]\n      hostInterfaces: [{{namespace: wasi, package: http, interfaces: [incoming-handler], config: {{host: a.test}}}}]\n"
            );
            parse_manifest(&text).map(|m| (m.documents[0].replicas, m.documents[0].autoscaling))
        };
        let (replicas, autoscaling) =
            with("{minReplicas: 2, maxReplicas: 4, targetRequestsPerSecond: 50, targetCpu: 500m}")
                .unwrap();
        assert_eq!(replicas, 4, "clamped to maxReplicas");
        let autoscaling = autoscaling.unwrap();
        assert_eq!(autoscaling.target_requests_per_second, Some(50.0));
        assert_eq!(autoscaling.target_cpu.unwrap().millicores(), 500);
        assert_eq!(autoscaling.scale_down_stabilization_seconds, 300);
        for (text, path) in [
            (
                "{maxReplicas: 3}",
                "spec.autoscaling.targetRequestsPerSecond",
            ),
            (
                "{minReplicas: 0, maxReplicas: 0, targetRequestsPerSecond: 5}",
                "spec.autoscaling.maxReplicas",
            ),
            (
                "{minReplicas: 4, maxReplicas: 3, targetRequestsPerSecond: 5}",
                "spec.autoscaling.maxReplicas",
            ),
            (
                "{maxReplicas: 3, targetCPU: 1}",
                "spec.autoscaling.targetCPU",
            ),
            ("{minReplicas: 1}", "spec.autoscaling"),
        ] {
            let err = with(text).unwrap_err();
            assert_eq!(err.path, path, "{text}: {err}");
        }
        // Without HTTP: requests are not counted and nothing would wake it.
        let no_http = |autoscaling: &str| {
            let text = format!(
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: WorkloadDeployment\nmetadata: {{name: a}}\nspec:\n  autoscaling: {autoscaling}\n  template:\n    spec:\n      components: [{{name: a, image: x}}]\n"
            );
            parse_manifest(&text).map(|m| m.documents[0].replicas)
        };
        assert_eq!(no_http("{maxReplicas: 3, targetCpu: 500m}").unwrap(), 1);
        for (text, path) in [
            (
                "{maxReplicas: 3, targetRequestsPerSecond: 5}",
                "spec.autoscaling.targetRequestsPerSecond",
            ),
            (
                "{minReplicas: 0, maxReplicas: 3, targetCpu: 1}",
                "spec.autoscaling.minReplicas",
            ),
        ] {
            let err = no_http(text).unwrap_err();
            assert_eq!(err.path, path, "{text}: {err}");
        }
        // A workload that only publishes (no subscriptions configured) may
        // scale to zero; one that subscribes may not.
        let messaging = |config: &str| {
            let text = format!(
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: WorkloadDeployment\nmetadata: {{name: a}}\nspec:\n  autoscaling: {{minReplicas: 0, maxReplicas: 2, targetRequestsPerSecond: 5}}\n  template:\n    spec:\n      components: [{{name: a, image: x}}]\n      hostInterfaces:\n        - {{namespace: wasi, package: http, interfaces: [incoming-handler], config: {{host: a.test}}}}\n        - {{namespace: wasmcloud, package: messaging, interfaces: [consumer, handler], config: {config}}}\n"
            );
            parse_manifest(&text).map(|m| m.documents[0].replicas)
        };
        assert!(messaging("{}").is_ok());
        assert!(messaging("{subscriptions: ' , '}").is_ok());
        let err = messaging("{subscriptions: 'tasks.*'}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.autoscaling.minReplicas: 0 would park the workload when idle, and it would miss what its wasmcloud:messaging subscriptions deliver; only an HTTP request wakes a parked workload"
        );
    }

    #[test]
    fn deploy_policies_and_rolling_update_shares() {
        use crate::rollout::{DeployPolicy, RollingUpdate, Share};
        let with = |extra: &str, kind: &str| {
            let text = format!(
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: a}}\nspec:\n  replicas: 4\n{extra}  template:\n    spec:\n      components: [{{name: a, image: x}}]\n"
            );
            parse_manifest(&text).map(|m| m.documents[0].policy)
        };
        // wasmCloud's default, with Kubernetes' default shares.
        assert_eq!(
            with("", "WorkloadDeployment"),
            Ok(DeployPolicy::RollingUpdate(RollingUpdate::default()))
        );
        assert_eq!(
            with("  deployPolicy: Recreate\n", "WorkloadDeployment"),
            Ok(DeployPolicy::Recreate)
        );
        assert_eq!(
            with(
                "  deployPolicy: RollingUpdate\n  rollingUpdate: {maxUnavailable: 0, maxSurge: '50%'}\n",
                "WorkloadDeployment"
            ),
            Ok(DeployPolicy::RollingUpdate(RollingUpdate {
                max_unavailable: Share::Count(0),
                max_surge: Share::Percent(50),
            }))
        );
        // A replica set changes at once; a plain workload too.
        assert_eq!(with("", "WorkloadReplicaSet"), Ok(DeployPolicy::Recreate));
        let refused = [
            (
                "  deployPolicy: Rolling\n",
                "WorkloadDeployment",
                "spec.deployPolicy",
            ),
            (
                "  rollingUpdate: {maxUnavailable: 0, maxSurge: 0}\n",
                "WorkloadDeployment",
                "spec.rollingUpdate",
            ),
            (
                "  rollingUpdate: {maxSurge: '150%'}\n",
                "WorkloadDeployment",
                "spec.rollingUpdate.maxSurge",
            ),
            (
                "  rollingUpdate: {maxSurges: 1}\n",
                "WorkloadDeployment",
                "spec.rollingUpdate.maxSurges",
            ),
            (
                "  deployPolicy: Recreate\n  rollingUpdate: {maxSurge: 1}\n",
                "WorkloadDeployment",
                "spec.rollingUpdate",
            ),
            (
                "  deployPolicy: RollingUpdate\n",
                "WorkloadReplicaSet",
                "spec.deployPolicy",
            ),
        ];
        for (extra, kind, path) in refused {
            let err = with(extra, kind).unwrap_err();
            assert_eq!(err.path, path, "{extra}: {err}");
        }
    }

    #[test]
    fn reads_a_wasmcloud_workload_deployment() {
        let manifest = parse_manifest(WASMCLOUD_DEPLOYMENT).unwrap();
        let docs = &manifest.documents;
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
        // wasmCloud's whole cores read as cores, and are acted on: no notice.
        assert_eq!(
            c.local_resources.cpu_limit.map(|l| l.millicores()),
            Some(1000)
        );
        assert!(
            !manifest.notices.iter().any(|n| n.contains("cpuLimit")),
            "{:?}",
            manifest.notices
        );
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
        let docs = parse_manifest(text).unwrap().documents;
        let ids: Vec<_> = docs.iter().map(|d| d.workload.id()).collect();
        assert_eq!(ids, ["ns/a", "default/b"]);
        assert_eq!(docs.iter().map(|d| d.index).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn a_byte_order_mark_is_not_content() {
        let text = "\u{feff}apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec:\n  components: [{name: a, image: ./a.wasm}]\n";
        assert_eq!(parse_manifest(text).unwrap().documents.len(), 1);
    }

    #[test]
    fn a_workload_defined_twice_is_refused_naming_both_documents() {
        let doc = "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec:\n  components: [{name: a, image: ./a.wasm}]\n";
        let err = parse_manifest(&format!("{doc}---\n{doc}")).unwrap_err();
        assert_eq!(err.path, "document 2: metadata.name");
        assert!(
            err.message
                .contains("Workload default/a is already defined by document 1"),
            "{err}"
        );
        let other_namespace = doc.replace("{name: a}", "{name: a, namespace: b}");
        assert_eq!(
            parse_manifest(&format!("{doc}---\n{other_namespace}"))
                .unwrap()
                .documents
                .len(),
            2
        );
    }

    #[test]
    fn pull_policies_and_source_references_take_wash_spellings_too() {
        let text = "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec:\n  components:\n    - name: a\n      image: ghcr.io/x/a:1\n      imagePullPolicy: ifNotPresent\n      localResources:\n        environment: {configFrom: [app, {name: more}], secretFrom: [db]}\n";
        let manifest = parse_manifest(text).unwrap();
        let component = &manifest.documents[0].workload.spec.components[0];
        assert_eq!(
            component.image_pull_policy,
            Some(super::super::spec::PullPolicy::IfNotPresent)
        );
        let environment = &component.local_resources.environment;
        let names: Vec<&str> = environment
            .config_from
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["app", "more"]);
        assert_eq!(environment.secret_from[0].name, "db");
        let err = parse_manifest(&text.replace("ifNotPresent", "Sometimes")).unwrap_err();
        assert!(
            err.message.contains("unknown pull policy `Sometimes`"),
            "{err}"
        );
        let err = parse_manifest(&text.replace("{name: more}", "{nam: more}")).unwrap_err();
        assert!(err.to_string().contains("did you mean `name`"), "{err}");
    }

    /// wasmCloud's templates ship a Kubernetes `Service` in the same file.
    #[test]
    fn other_kubernetes_objects_are_skipped_with_a_notice() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n---\napiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec:\n  components: [{name: a, image: ./a.wasm}]\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: db}\n";
        let manifest = parse_manifest(text).unwrap();
        assert_eq!(manifest.documents.len(), 1);
        assert_eq!(manifest.documents[0].index, 1);
        assert_eq!(
            manifest.notices,
            [
                "skipping v1/Service web: not a wasmCloud kind",
                "skipping apps/v1/Deployment db: not a wasmCloud kind"
            ]
        );
        // Nothing of wasmCloud's in it: an error, not an empty success.
        let only_service = text.split("---").next().unwrap();
        let err = parse_manifest(only_service).unwrap_err();
        assert!(err.message.contains("holds no wasmCloud workload"), "{err}");
        // A wasmCloud kind Nimbus does not run is refused, never skipped.
        let artifact = "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Artifact\nmetadata: {name: app}\nspec: {image: ghcr.io/x/app:1}\n";
        let err = parse_manifest(artifact).unwrap_err();
        assert_eq!(err.path, "kind");
        assert!(
            err.message.contains("`Artifact` is not supported yet"),
            "{err}"
        );
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
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: WorkloadDeployment\nmetadata: {name: a}\nspec:\n  template: {spec: {hostSelector: {'a zone': b}, components: [{name: a, image: x}]}}",
                "spec.template.spec.hostSelector",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: WorkloadDeployment\nmetadata: {name: a}\nspec:\n  autoscaling: {minReplicas: 0, maxReplicas: 2, targetRequestsPerSecond: 5}\n  template: {spec: {components: [{name: a, image: x}], hostInterfaces: [{namespace: wasi, package: http, interfaces: [incoming-handler], config: {host: a.test}}, {namespace: wasmcloud, package: messaging, interfaces: [consumer, handler], config: {subscriptions: 'tasks.>'}}]}}",
                "spec.autoscaling.minReplicas",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: WorkloadDeployment\nmetadata: {name: a}\nspec:\n  autoscaling: {minReplicas: 0, maxReplicas: 2, targetRequestsPerSecond: 5}\n  template: {spec: {components: [{name: a, image: x, localResources: {config: {jetstream_subscriptions: 'ORDERS:orders.>'}}}], hostInterfaces: [{namespace: wasi, package: http, interfaces: [incoming-handler], config: {host: a.test}}, {namespace: wasmcloud, package: nats, interfaces: [jetstream]}]}}",
                "spec.autoscaling.minReplicas",
            ),
            (
                "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: WorkloadDeployment\nmetadata: {name: a}\nspec:\n  autoscaling: {minReplicas: 0, maxReplicas: 2, targetRequestsPerSecond: 5}\n  template: {spec: {components: [{name: a, image: x}], service: {image: s.wasm}, hostInterfaces: [{namespace: wasi, package: http, interfaces: [incoming-handler], config: {host: a.test}}]}}",
                "spec.autoscaling.minReplicas",
            ),
        ];
        for (text, path) in cases {
            let err = parse_manifest(text).unwrap_err();
            assert_eq!(err.path, path, "{text}\n=> {err}");
        }
        let err = parse_manifest("apiVersion: [").unwrap_err();
        assert_eq!(err.path, "");
        assert!(err.to_string().starts_with("not valid YAML: "), "{err}");
    }

    const HEAD: &str = "apiVersion: runtime.wasmcloud.dev/v1alpha1\nmetadata: {name: a}\n";

    /// Every unknown field is an error naming its full path and, where one
    /// is close, the valid name meant.
    #[test]
    fn unknown_fields_are_errors_with_the_nearest_name() {
        let cases = [
            (
                "kind: Workload\nspec:\n  components: [{name: a, image: x, localResources: {memoryLimitMB: 64}}]",
                "spec.components[0].localResources.memoryLimitMB",
                "did you mean `memoryLimitMb`?",
            ),
            (
                "kind: WorkloadDeployment\nspec:\n  replica: 2\n  template: {spec: {components: [{name: a, image: x}]}}",
                "spec.replica",
                "did you mean `replicas`?",
            ),
            (
                "kind: WorkloadDeployment\nspec:\n  hostSelector: {zone: a}\n  template: {spec: {components: [{name: a, image: x}]}}",
                "spec.hostSelector",
                "it belongs under spec.template.spec",
            ),
            (
                "kind: Workload\nspec:\n  compnents: [{name: a, image: x}]",
                "spec.compnents",
                "did you mean `components`?",
            ),
            (
                "kind: Workload\nspec:\n  components: [{name: a, image: x}]\n  volumes: [{name: v, emptyDir: {size: 1}}]",
                "spec.volumes[0].emptyDir.size",
                "unknown field",
            ),
            (
                "kind: Workload\nspec:\n  components: [{name: a, image: x}]\n  hostInterfaces: [{namespace: wasi, package: http, interface: [x]}]",
                "spec.hostInterfaces[0].interface",
                "did you mean `interfaces`?",
            ),
            ("kind: Workload\nspce: {}\n", "spce", "did you mean `spec`?"),
        ];
        let labels = "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {name: a, lables: {x: y}}\nspec: {}\n";
        let err = parse_manifest(labels).unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.message.as_str()),
            ("metadata.lables", "unknown field, did you mean `labels`?")
        );
        for (body, path, hint) in cases {
            let text = format!("{HEAD}{body}");
            let err = parse_manifest(&text).unwrap_err();
            assert_eq!(err.path, path, "{text}\n=> {err}");
            assert!(err.message.contains(hint), "{text}\n=> {err}");
        }
    }

    /// What a wasmCloud manifest or a `kubectl get -o yaml` export carries
    /// parses under strict fields: object metadata, status, the CRD's
    /// deployment fields, `ephemeral` volumes, replica sets.
    #[test]
    fn every_wasmcloud_crd_field_is_accepted() {
        let text = r#"
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: WorkloadDeployment
metadata:
  name: kitchen-sink
  namespace: team-a
  uid: 0b0c
  resourceVersion: "12"
  generation: 3
  creationTimestamp: "2026-01-01T00:00:00Z"
  labels: {app: sink}
  annotations: {note: x}
  ownerReferences: [{apiVersion: v1, kind: X, name: y, uid: z}]
  finalizers: [a/b]
  managedFields: [{manager: kubectl, operation: Apply}]
spec:
  replicas: 2
  deployPolicy: RollingUpdate
  artifacts: [{name: app, artifactFrom: {name: app-artifact}}]
  kubernetes: {service: {name: sink}}
  template:
    labels: {tier: web}
    annotations: {a: b}
    spec:
      hostSelector: {hostgroup: default}
      hostId: host-1
      environment: prod
      kubernetes: {service: {name: sink}}
      components:
        - name: app
          image: ghcr.io/example/app:1
          imagePullPolicy: IfNotPresent
          imagePullSecret: {name: regcred}
          poolSize: 2
          maxInvocations: 10
          maxConcurrency: 4
          localResources:
            volumeMounts: [{name: scratch, mountPath: /tmp, readOnly: false}]
            environment: {config: {A: b}, configFrom: [{name: c}], secretFrom: [{name: s}]}
            config: {k: v}
            allowedHosts: [api.example.com]
            cpuLimit: 250m
            allowedIpNameLookups: [api.example.com]
            allowedHostLoopbackPorts: ["5432"]
      hostInterfaces:
        - name: http
          namespace: wasi
          package: http
          version: 0.2.0
          interfaces: [incoming-handler]
          config: {host: sink.example.com}
      service:
        image: ghcr.io/example/svc:1
        imagePullSecret: {name: regcred}
        maxRestarts: 0
      volumes:
        - name: scratch
          ephemeral: {}
status:
  conditions: [{type: Ready, status: "True"}]
  replicas: {expected: 2, current: 2, ready: 2}
"#;
        let manifest = parse_manifest(text).unwrap();
        let docs = &manifest.documents;
        let w = &docs[0].workload;
        // Each field wasmCloud has and Nimbus does not act on says so once.
        let spec = "team-a/kitchen-sink: spec.template.spec";
        assert_eq!(
            manifest.notices,
            [
                "team-a/kitchen-sink: spec.artifacts has no effect here (components pull their `image` themselves)".to_string(),
                "team-a/kitchen-sink: spec.kubernetes has no effect here (it describes a Kubernetes Service)".into(),
                format!("{spec}.hostId has no effect here (Nimbus places workloads by `hostSelector`)"),
                format!("{spec}.environment has no effect here (Nimbus places workloads by `hostSelector`)"),
                format!("{spec}.kubernetes has no effect here (it describes a Kubernetes Service, which Nimbus does not create)"),
                format!("{spec}.components[0].imagePullSecret has no effect here (registry credentials come from the host's docker config or its `--username`)"),
                format!("{spec}.components[0].localResources.allowedIpNameLookups has no effect here (with `wasi:sockets` a guest may resolve any name; outgoing HTTP is bounded by `allowedHosts`)"),
                format!("{spec}.components[0].localResources.allowedHostLoopbackPorts has no effect here (the host's loopback is reached only through an `allowedHosts` entry naming `localhost` or the address)"),
                format!("{spec}.service.imagePullSecret has no effect here (registry credentials come from the host's docker config or its `--username`)"),
                format!("{spec}.components[0].poolSize has no effect here (instances are made on demand; `maxInvocations` and `maxConcurrency` set their reuse)"),
            ]
        );
        assert_eq!(
            (docs[0].replicas, w.id().as_str()),
            (2, "team-a/kitchen-sink")
        );
        assert!(
            w.spec.volumes[0].empty_dir.is_some(),
            "ephemeral is an empty dir"
        );
        let set = text
            .replace("kind: WorkloadDeployment", "kind: WorkloadReplicaSet")
            .replace("  deployPolicy: RollingUpdate\n", "");
        assert_eq!(
            parse_manifest(&set).unwrap().documents[0].kind,
            "WorkloadReplicaSet"
        );
    }

    /// `cpuLimit` as Kubernetes writes CPU: cores as a number or a string,
    /// or millicores; a bad value is an error naming the field.
    #[test]
    fn cpu_limits_read_as_cores_or_quantities() {
        let with = |value: &str| {
            format!(
                "{HEAD}kind: Workload\nspec:\n  components:\n    - name: a\n      image: x\n      localResources: {{cpuLimit: {value}}}\n  service: {{image: s.wasm, localResources: {{cpuLimit: {value}}}}}\n"
            )
        };
        for (value, millicores) in [
            ("1", 1000),
            ("0.25", 250),
            ("250m", 250),
            ("\"250m\"", 250),
            ("\"2\"", 2000),
            ("'0.5'", 500),
        ] {
            let manifest = parse_manifest(&with(value)).unwrap();
            let spec = &manifest.documents[0].workload.spec;
            for resources in [
                &spec.components[0].local_resources,
                &spec.service.as_ref().unwrap().local_resources,
            ] {
                assert_eq!(
                    resources.cpu_limit.map(|l| l.millicores()),
                    Some(millicores),
                    "{value}"
                );
            }
            assert!(manifest.notices.is_empty(), "{:?}", manifest.notices);
        }
        for (value, reason) in [
            ("-1", "it is negative"),
            ("0", "more than 0"),
            ("0m", "more than 0"),
            ("lots", "not a number"),
            ("0.0001", "finer than 1m"),
            ("100000", "more than 1024 cores"),
            ("\"5000\"", "more than 1024 cores"),
        ] {
            let err = parse_manifest(&with(value)).unwrap_err();
            assert_eq!(
                err.path, "spec.components[0].localResources.cpuLimit",
                "{value}: {err}"
            );
            assert!(err.message.contains(reason), "{value}: {err}");
            assert!(err.message.contains("is not a CPU limit"), "{value}: {err}");
        }
    }

    /// Deep nesting is refused before the parser sees it; the check reads
    /// each byte once, however deep the input.
    #[test]
    fn deep_nesting_and_oversized_input_are_refused() {
        for deep in [
            format!(
                "{HEAD}kind: Workload\nspec: {}{}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
            format!("{HEAD}kind: Workload\nspec: {}", "{a: ".repeat(70)),
            format!(
                "{HEAD}kind: Workload\nspec:\n  x:\n    {}1",
                "- ".repeat(100_000)
            ),
            format!(
                "{HEAD}kind: Workload\nspec:\n  x:\n    {}1",
                "? ".repeat(100_000)
            ),
            format!(
                "{HEAD}kind: Workload\nspec:\n  x:\n    {}1",
                "- ? ".repeat(50_000)
            ),
        ] {
            let err = parse_manifest(&deep).unwrap_err();
            assert_eq!(err.path, "");
            assert!(err.message.contains("nest deeper than 64"), "{err}");
        }
        let big = format!(
            "{HEAD}kind: Workload\n# {}\n",
            "x".repeat(MAX_MANIFEST_BYTES)
        );
        assert!(
            parse_manifest(&big)
                .unwrap_err()
                .message
                .contains("the limit is")
        );
        // Brackets in quotes, comments and plain scalars are not nesting.
        let fine = format!(
            "{HEAD}kind: Workload\nspec:\n  components:\n    - name: a\n      image: x\n      localResources:\n        config:\n          re: '{}'\n          b: a[b{{c\n          c: \"{}\" # {}\n",
            "[".repeat(200),
            "{".repeat(200),
            "[".repeat(200)
        );
        parse_manifest(&fine).unwrap();
        // Apostrophes in words, comments after values and a new document do
        // not leave anything open: 100 such lines still parse.
        let line = "  # x: {note: it's x} # e.g.: [a\n";
        let many = format!(
            "{HEAD}kind: Workload\nspec:\n  components: [{{name: a, image: x, localResources: {{config: {{n: it's}}}}}}]\n{}",
            line.repeat(100)
        );
        parse_manifest(&many).unwrap();
        let docs = format!("{HEAD}kind: Workload\nspec: {{components: [{{name: a, image: x}}]}}\n");
        let unbalanced = format!("x: [\n---\n{docs}");
        assert!(
            check_yaml_bounds(&format!("{}{}", unbalanced.repeat(70), docs), 1 << 20, 64).is_ok()
        );
    }
}
