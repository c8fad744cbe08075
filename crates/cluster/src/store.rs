//! Desired state in a JetStream key-value bucket.
//!
//! One bucket (default `nimbus`) holds:
//! - `desired.<namespace>/<name>`: a [`Resource`], written by `nimbus apply`
//!   and removed by `nimbus delete`;
//! - `status.<namespace>/<name>`: its [`ResourceStatus`] (with its recent
//!   events), written by the leading controller;
//! - `lease.controller`: the leader lease (see `controller::lease`).
//!
//! The bucket is created on first use with the replication factor asked for
//! (R3 on a three-server cluster); file storage, so desired state survives
//! server restarts.

use crate::events::Event;
use async_nats::jetstream::{self, kv};

use futures::{StreamExt as _, TryStreamExt as _};
use nimbus_model::autoscaling::Autoscaling;
use nimbus_model::rollout::DeployPolicy;
use nimbus_model::{ManifestDocument, Workload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The bucket name when none is given.
pub const DEFAULT_BUCKET: &str = "nimbus";

const DESIRED: &str = "desired.";
const STATUS: &str = "status.";
/// The key of the controller lease.
pub(crate) const LEASE_KEY: &str = "lease.controller";

/// The kind of a stored resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// One workload, one replica.
    Workload,
    /// A workload template with `replicas`, rolled out per its
    /// deploy policy.
    WorkloadDeployment,
    /// A workload template with `replicas`, changed everywhere at once.
    WorkloadReplicaSet,
}

impl Kind {
    /// The manifest kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workload => "Workload",
            Self::WorkloadDeployment => "WorkloadDeployment",
            Self::WorkloadReplicaSet => "WorkloadReplicaSet",
        }
    }
}

/// A desired resource as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// Workload or WorkloadDeployment.
    pub kind: Kind,
    /// Bumped on every change of the manifest.
    pub generation: u64,
    /// Replicas wanted.
    pub replicas: u32,
    /// The workload each replica runs (paths already absolute).
    pub workload: Workload,
    /// The manifest document as applied (JSON form), for `get -o yaml`.
    pub manifest: serde_json::Value,
    /// How a changed template reaches the replicas. (A resource stored
    /// before policies existed reads as a rolling update.)
    #[serde(default)]
    pub policy: DeployPolicy,
    /// Replicas that follow the load: the controller sets `replicas`
    /// within its bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// The template's revision: 1 when created, bumped by every change of
    /// the workload (not by scaling), as `nimbus rollout history` lists.
    #[serde(default = "first_revision")]
    pub revision: u64,
    /// Earlier templates, oldest first, at most [`MAX_HISTORY`], for
    /// `nimbus rollout undo`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Revision>,
}

fn first_revision() -> u64 {
    1
}

/// Earlier templates kept per resource (Kubernetes'
/// `revisionHistoryLimit` default).
pub const MAX_HISTORY: usize = 10;

/// An earlier template of a resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// Its revision number.
    pub revision: u64,
    /// The workload it ran.
    pub workload: Workload,
    /// Its manifest's `spec.template` (JSON form), put back by an undo.
    pub template: serde_json::Value,
}

impl Resource {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        self.workload.id()
    }

    /// Builds a resource (generation 1) from a parsed manifest document and
    /// its source document.
    pub fn from_document(
        document: ManifestDocument,
        manifest: serde_json::Value,
    ) -> Result<Self, StoreError> {
        let kind = match document.kind.as_str() {
            "Workload" => Kind::Workload,
            "WorkloadDeployment" => Kind::WorkloadDeployment,
            "WorkloadReplicaSet" => Kind::WorkloadReplicaSet,
            other => return Err(StoreError::Invalid(format!("kind: unknown kind `{other}`"))),
        };
        Ok(Self {
            kind,
            generation: 1,
            replicas: document.replicas,
            workload: document.workload,
            manifest,
            policy: document.policy,
            autoscaling: document.autoscaling,
            revision: first_revision(),
            history: Vec::new(),
        })
    }

    /// Its template as a [`Revision`], for the history.
    fn as_revision(&self) -> Revision {
        Revision {
            revision: self.revision,
            workload: self.workload.clone(),
            template: self
                .manifest
                .pointer("/spec/template")
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Becomes `next` applied over it: the generation bumped, and, when the
    /// workload changed, a new revision with this one kept in the history.
    fn succeeded_by(&self, mut next: Resource) -> Resource {
        next.generation = self.generation + 1;
        next.history = self.history.clone();
        if next.workload == self.workload {
            next.revision = self.revision;
        } else {
            next.revision = self.revision + 1;
            push_history(&mut next.history, self.as_revision());
        }
        next
    }
}

/// Sets `spec.replicas` in a manifest's JSON form.
fn set_manifest_replicas(manifest: &mut serde_json::Value, replicas: u32) {
    if let Some(spec) = manifest
        .get_mut("spec")
        .and_then(serde_json::Value::as_object_mut)
    {
        spec.insert("replicas".into(), replicas.into());
    }
}

fn push_history(history: &mut Vec<Revision>, revision: Revision) {
    history.retain(|r| r.revision != revision.revision);
    history.push(revision);
    let excess = history.len().saturating_sub(MAX_HISTORY);
    history.drain(..excess);
}

/// What `nimbus rollout undo` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undone {
    /// The revision whose template is back.
    pub restored: u64,
    /// The revision number it now runs as.
    pub revision: u64,
}

/// One host's share of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// The host id.
    pub host: String,
    /// Replicas there.
    pub replicas: u32,
    /// Whether the host runs the current generation.
    pub current: bool,
    /// Whether the host sent its last heartbeat in time: a host that
    /// missed one is `NotReady` at once, and its replicas are not counted
    /// ready. (Statuses stored before this field read as ready.)
    #[serde(default = "yes")]
    pub host_ready: bool,
    /// Why this host's share is not ready, as the host or the controller
    /// said (a failed start, a missed heartbeat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn yes() -> bool {
    true
}

/// Where a resource's move to its current template stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutState {
    /// Every replica runs the current template.
    #[default]
    Complete,
    /// Replicas are moving to it, host by host.
    Progressing,
    /// The current template failed to start (or was rejected); the hosts
    /// not yet moved keep the previous one, and no more move until it
    /// starts or the template changes.
    Stopped,
}

impl RolloutState {
    /// `Complete`, `Progressing` or `Stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "Complete",
            Self::Progressing => "Progressing",
            Self::Stopped => "Stopped",
        }
    }
}

/// Where a resource stands: the STATUS column of `nimbus get` and the
/// `Status:` line of `nimbus describe`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Not every replica runs the current spec yet: being placed or
    /// updated, failing to start (tried again), or no live host matches.
    /// (A status stored before phases existed reads as this until the
    /// controller writes it again.)
    #[default]
    Pending,
    /// Every replica wanted runs the current spec on a live host.
    Ready,
    /// A host rejected the current spec for good ([`Rejection`]): it is not
    /// placed again until the spec changes.
    Failed,
}

impl Phase {
    /// `Pending`, `Ready` or `Failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Ready => "Ready",
            Self::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A spec a host rejected for good: the workload cannot run as given, on
/// that host or any other (its image is too large, not a component, or
/// imports what no host provides). Kept in the stored status, so a
/// restarted or newly elected controller does not place that spec again;
/// a changed spec (another hash) is placed as usual.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// The spec rejected, by its [`spec_hash`](crate::api::spec_hash).
    pub spec_hash: String,
    /// The host that rejected it.
    pub host: String,
    /// Why, as the host said.
    pub reason: String,
}

/// What the controller observed of a resource.
///
/// The fields added since the first release (`phase`, `rejected`,
/// `updated`, `available`, `revision`, `rollout`) have defaults, so
/// statuses stored by an older controller still read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// Generation this status describes.
    pub observed_generation: u64,
    /// Where it stands.
    #[serde(default)]
    pub phase: Phase,
    /// Replicas wanted.
    pub desired: u32,
    /// Replicas running the current spec on ready hosts.
    pub ready: u32,
    /// Replicas running the current spec, on ready hosts or not.
    #[serde(default)]
    pub updated: u32,
    /// Replicas serving on ready hosts, whichever template they run.
    #[serde(default)]
    pub available: u32,
    /// The template revision this status describes.
    #[serde(default)]
    pub revision: u64,
    /// Where the move to that revision stands.
    #[serde(default)]
    pub rollout: RolloutState,
    /// Where they run, by host id.
    pub placements: Vec<Placement>,
    /// Why not all are ready, if they are not (with phase `Failed`, the
    /// host's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The current spec, if a host rejected it for good (phase `Failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Rejection>,
    /// What happened to it lately, oldest first (at most
    /// [`MAX_EVENTS`](crate::events::MAX_EVENTS); see [`crate::events`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

/// What `apply` did with one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It was new.
    Created,
    /// It changed; the generation was bumped.
    Configured,
    /// It was already stored exactly so; nothing was written.
    Unchanged,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// JetStream is unavailable or refused the bucket.
    #[error("desired-state bucket `{bucket}`: {message}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// What went wrong.
        message: String,
    },
    /// A read or write failed.
    #[error("`{key}`: {message}")]
    Access {
        /// The key.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// A stored value could not be decoded.
    #[error("`{key}` holds an unreadable value: {message}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The resource is refused.
    #[error("{0}")]
    Invalid(String),
    /// Another writer changed the key between our read and our write.
    #[error("`{0}` changed concurrently; apply again")]
    Conflict(String),
}

/// The desired-state bucket.
#[derive(Clone)]
pub struct Store {
    kv: kv::Store,
    bucket: String,
    timeout: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("bucket", &self.bucket)
            .finish()
    }
}

/// How the bucket is made when it does not exist.
#[derive(Debug, Clone)]
pub struct BucketSettings {
    /// Bucket name.
    pub bucket: String,
    /// JetStream replication factor (1, or 3 on a three-server cluster).
    pub replicas: usize,
    /// Timeout of every operation.
    pub timeout: Duration,
}

impl Default for BucketSettings {
    fn default() -> Self {
        Self {
            bucket: DEFAULT_BUCKET.into(),
            replicas: 1,
            timeout: Duration::from_secs(5),
        }
    }
}

async fn timed<T, E: std::fmt::Display>(
    timeout: Duration,
    what: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, what).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out after {}s", timeout.as_secs_f32())),
    }
}

fn desired_key(id: &str) -> String {
    format!("{DESIRED}{id}")
}

fn status_key(id: &str) -> String {
    format!("{STATUS}{id}")
}

impl Store {
    /// Opens the bucket, creating it if it does not exist.
    pub async fn open(
        client: async_nats::Client,
        settings: &BucketSettings,
    ) -> Result<Self, StoreError> {
        let mut js = jetstream::new(client);
        js.set_timeout(settings.timeout);
        let bucket_error = |message: String| StoreError::Bucket {
            bucket: settings.bucket.clone(),
            message,
        };
        let kv = match timed(settings.timeout, js.get_key_value(&settings.bucket)).await {
            Ok(kv) => kv,
            Err(_) => {
                // The stream a KV bucket is, made directly: async-nats's
                // `create_key_value` first reads account info in a shape
                // nats-server 2.9 does not send.
                timed(
                    settings.timeout,
                    js.get_or_create_stream(jetstream::stream::Config {
                        name: format!("KV_{}", settings.bucket),
                        description: Some("Nimbus desired state".into()),
                        subjects: vec![format!("$KV.{}.>", settings.bucket)],
                        max_messages_per_subject: 1,
                        discard: jetstream::stream::DiscardPolicy::New,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        num_replicas: settings.replicas,
                        storage: jetstream::stream::StorageType::File,
                        duplicate_window: Duration::from_secs(120),
                        ..Default::default()
                    }),
                )
                .await
                .map_err(bucket_error)?;
                timed(settings.timeout, js.get_key_value(&settings.bucket))
                    .await
                    .map_err(bucket_error)?
            }
        };
        Ok(Self {
            kv,
            bucket: settings.bucket.clone(),
            timeout: settings.timeout,
        })
    }

    /// Opens the bucket if it exists; never creates it (for readers that
    /// must not write, such as a host's console).
    pub async fn open_existing(
        client: async_nats::Client,
        settings: &BucketSettings,
    ) -> Result<Self, StoreError> {
        let mut js = jetstream::new(client);
        js.set_timeout(settings.timeout);
        let kv = timed(settings.timeout, js.get_key_value(&settings.bucket))
            .await
            .map_err(|message| StoreError::Bucket {
                bucket: settings.bucket.clone(),
                message,
            })?;
        Ok(Self {
            kv,
            bucket: settings.bucket.clone(),
            timeout: settings.timeout,
        })
    }

    pub(crate) fn kv(&self) -> &kv::Store {
        &self.kv
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Stores `resource` unless the same manifest is already stored. A
    /// resource of the other kind under the same id is refused.
    pub async fn apply(&self, mut resource: Resource) -> Result<Applied, StoreError> {
        let id = resource.id();
        let key = desired_key(&id);
        let existing = self.entry(&key).await?;
        match existing {
            None => {
                let create = self.kv.create(&key, encode_resource(&mut resource)?.into());
                self.write(&key, create, |e| {
                    e.kind() == kv::CreateErrorKind::AlreadyExists
                })
                .await?;
                Ok(Applied::Created)
            }
            Some((revision, stored)) => {
                let stored: Resource = decode(&key, &stored)?;
                if stored.kind != resource.kind {
                    return Err(StoreError::Invalid(format!(
                        "{id} is already a {}; delete it before applying a {}",
                        stored.kind.as_str(),
                        resource.kind.as_str()
                    )));
                }
                // Autoscaled before and after: the count the controller set
                // stays (within the new bounds); the file's is where it starts.
                if let (Some(autoscaling), Some(_)) = (&resource.autoscaling, &stored.autoscaling) {
                    resource.replicas = autoscaling.clamp(stored.replicas);
                    set_manifest_replicas(&mut resource.manifest, resource.replicas);
                }
                // The decoded policies too: a record stored before they
                // were read holds the defaults, whatever its manifest says.
                if stored.manifest == resource.manifest
                    && stored.workload == resource.workload
                    && stored.replicas == resource.replicas
                    && stored.policy == resource.policy
                    && stored.autoscaling == resource.autoscaling
                {
                    return Ok(Applied::Unchanged);
                }
                let mut resource = stored.succeeded_by(resource);
                let bytes = encode_resource(&mut resource)?;
                let update = self.kv.update(&key, bytes.into(), revision);
                self.write(&key, update, |e| {
                    e.kind() == kv::UpdateErrorKind::WrongLastRevision
                })
                .await?;
                Ok(Applied::Configured)
            }
        }
    }

    /// Sets the replicas of resource `id` of `kind` (`nimbus scale`), in
    /// its manifest too; returns how many it had, or `None` if there is no
    /// such resource.
    pub async fn scale(
        &self,
        id: &str,
        kind: Kind,
        replicas: u32,
    ) -> Result<Option<u32>, StoreError> {
        self.modify(id, kind, |stored| {
            if kind == Kind::Workload {
                return Err(StoreError::Invalid(format!(
                    "{id} is a Workload, which runs one replica; make it a WorkloadDeployment to scale it"
                )));
            }
            let before = stored.replicas;
            let mut next = stored.clone();
            next.replicas = replicas;
            set_manifest_replicas(&mut next.manifest, replicas);
            Ok((stored.succeeded_by(next), before))
        })
        .await
    }

    /// Puts back an earlier template of deployment `id` (`nimbus rollout
    /// undo`): revision `to`, or the one before the current. It runs as a
    /// new revision, rolled out like any change; the replicas stay.
    pub async fn undo(&self, id: &str, to: Option<u64>) -> Result<Option<Undone>, StoreError> {
        self.modify(id, Kind::WorkloadDeployment, |stored| {
            let earlier = match to {
                Some(number) => stored.history.iter().find(|r| r.revision == number),
                None => stored.history.last(),
            };
            let Some(earlier) = earlier else {
                let known: Vec<String> = stored
                    .history
                    .iter()
                    .map(|r| r.revision.to_string())
                    .collect();
                return Err(StoreError::Invalid(match (to, known.is_empty()) {
                    (_, true) => format!(
                        "{id} has no earlier revision (it runs revision {})",
                        stored.revision
                    ),
                    (Some(number), false) if number == stored.revision => {
                        format!("{id} runs revision {number} already")
                    }
                    (Some(number), false) => format!(
                        "{id} has no revision {number}; earlier revisions: {}",
                        known.join(", ")
                    ),
                    (None, false) => format!("{id} has no earlier revision"),
                }));
            };
            let restored = earlier.revision;
            if earlier.workload == stored.workload {
                return Err(StoreError::Invalid(format!(
                    "{id}: revision {restored} has the template revision {} runs; nothing to undo",
                    stored.revision
                )));
            }
            let mut next = stored.clone();
            next.workload = earlier.workload.clone();
            if let Some(spec) = next
                .manifest
                .get_mut("spec")
                .and_then(serde_json::Value::as_object_mut)
            {
                spec.insert("template".into(), earlier.template.clone());
            }
            let mut next = stored.succeeded_by(next);
            // The template restored is current again, not history.
            next.history.retain(|r| r.revision != restored);
            let undone = Undone {
                restored,
                revision: next.revision,
            };
            Ok((next, undone))
        })
        .await
    }

    /// Reads resource `id` of `kind`, lets `change` make its successor, and
    /// writes that unless another writer got there first (then reads and
    /// tries again, a few times). `None` if there is no such resource.
    async fn modify<T>(
        &self,
        id: &str,
        kind: Kind,
        change: impl Fn(&Resource) -> Result<(Resource, T), StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let key = desired_key(id);
        let mut attempts = 0;
        loop {
            let Some((revision, stored)) = self.entry(&key).await? else {
                return Ok(None);
            };
            let stored: Resource = decode(&key, &stored)?;
            if stored.kind != kind {
                return Err(StoreError::Invalid(format!(
                    "{id} is a {}, not a {}",
                    stored.kind.as_str(),
                    kind.as_str()
                )));
            }
            let (mut next, result) = change(&stored)?;
            let update = self
                .kv
                .update(&key, encode_resource(&mut next)?.into(), revision);
            match self
                .write(&key, update, |e| {
                    e.kind() == kv::UpdateErrorKind::WrongLastRevision
                })
                .await
            {
                Ok(_) => return Ok(Some(result)),
                Err(StoreError::Conflict(_)) if attempts < 3 => attempts += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs one operation on `key` within the store's timeout; an error
    /// for which `lost_race` holds means a concurrent writer got there
    /// first.
    async fn write<T, E: std::fmt::Display>(
        &self,
        key: &str,
        operation: impl std::future::Future<Output = Result<T, E>>,
        lost_race: impl Fn(&E) -> bool,
    ) -> Result<T, StoreError> {
        let access = |message: String| StoreError::Access {
            key: key.to_string(),
            message,
        };
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if lost_race(&e) => Err(StoreError::Conflict(key.to_string())),
            Ok(Err(e)) => Err(access(e.to_string())),
            Err(_) => Err(access(format!(
                "timed out after {}s",
                self.timeout.as_secs_f32()
            ))),
        }
    }

    /// One operation on `key` within the store's timeout.
    async fn at<T, E: std::fmt::Display>(
        &self,
        key: &str,
        operation: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, StoreError> {
        self.write(key, operation, |_| false).await
    }

    /// Removes a resource (and its status); `false` if it was not stored.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let key = desired_key(id);
        if self.entry(&key).await?.is_none() {
            return Ok(false);
        }
        self.at(&key, self.kv.delete(&key)).await?;
        self.delete_status(id).await?;
        Ok(true)
    }

    /// One resource.
    pub async fn resource(&self, id: &str) -> Result<Option<Resource>, StoreError> {
        let key = desired_key(id);
        match self.entry(&key).await? {
            Some((_, value)) => Ok(Some(decode(&key, &value)?)),
            None => Ok(None),
        }
    }

    /// Every resource, by id.
    pub async fn resources(&self) -> Result<BTreeMap<String, Resource>, StoreError> {
        self.all(DESIRED).await
    }

    /// Every status, by id.
    pub async fn statuses(&self) -> Result<BTreeMap<String, ResourceStatus>, StoreError> {
        self.all(STATUS).await
    }

    /// One resource's status, if the controller wrote one.
    pub async fn status(&self, id: &str) -> Result<Option<ResourceStatus>, StoreError> {
        let key = status_key(id);
        match self.entry(&key).await? {
            Some((_, value)) => Ok(Some(decode(&key, &value)?)),
            None => Ok(None),
        }
    }

    /// Follows one resource's status: its current value first (if there is
    /// one), then every value the controller writes; `None` when the
    /// status is removed (the resource was deleted).
    pub async fn watch_status(
        &self,
        id: &str,
    ) -> Result<
        impl futures::Stream<Item = Result<Option<ResourceStatus>, StoreError>> + use<>,
        StoreError,
    > {
        let key = status_key(id);
        let watch = self.at(&key, self.kv.watch_with_history(&key)).await?;
        Ok(watch.map(move |entry| {
            let entry = entry.map_err(|e| StoreError::Access {
                key: key.clone(),
                message: e.to_string(),
            })?;
            match entry.operation {
                kv::Operation::Put => decode(&key, &entry.value).map(Some),
                kv::Operation::Delete | kv::Operation::Purge => Ok(None),
            }
        }))
    }

    /// Writes a resource's status.
    pub async fn put_status(&self, id: &str, status: &ResourceStatus) -> Result<(), StoreError> {
        let key = status_key(id);
        self.at(&key, self.kv.put(&key, encode(status).into()))
            .await
            .map(drop)
    }

    /// Removes a resource's status.
    async fn delete_status(&self, id: &str) -> Result<(), StoreError> {
        let key = status_key(id);
        self.at(&key, self.kv.delete(&key)).await
    }

    async fn entry(&self, key: &str) -> Result<Option<(u64, bytes::Bytes)>, StoreError> {
        let entry = self.at(key, self.kv.entry(key)).await?;
        Ok(entry.and_then(|e| match e.operation {
            kv::Operation::Put => Some((e.revision, e.value)),
            kv::Operation::Delete | kv::Operation::Purge => None,
        }))
    }

    /// Every live value under `prefix`, decoded, by the rest of the key.
    ///
    /// The keys come from the stream's subject listing (one paged request
    /// and reply), not from `kv::Store::keys`: that runs a consumer which
    /// ends only when a delivery says nothing is pending, and the lease's
    /// renewals keep the bucket busy, so under load it could wait for ever.
    async fn all<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<BTreeMap<String, T>, StoreError> {
        let subject_prefix = self.kv.prefix.as_str();
        let listing = async {
            let subjects = self
                .kv
                .stream
                .info_with_subjects(format!("{subject_prefix}{prefix}>"))
                .await
                .map_err(|e| e.to_string())?;
            subjects
                .map_ok(|(subject, _)| subject)
                .try_collect::<Vec<String>>()
                .await
                .map_err(|e| e.to_string())
        };
        let subjects = self.at(&format!("{prefix}>"), listing).await?;
        // A deleted key is still listed (its delete marker is a message);
        // `entry` reads it as absent.
        let wanted = subjects
            .into_iter()
            .filter_map(|s| s.strip_prefix(subject_prefix).map(str::to_string));
        let entries: Vec<(String, Option<(u64, bytes::Bytes)>)> =
            futures::stream::iter(wanted.map(|key| async move {
                let entry = self.entry(&key).await;
                entry.map(|e| (key, e))
            }))
            .buffer_unordered(32)
            .try_collect()
            .await?;
        let mut out = BTreeMap::new();
        for (key, entry) in entries {
            if let Some((_, value)) = entry {
                out.insert(key[prefix.len()..].to_string(), decode(&key, &value)?);
            }
        }
        Ok(out)
    }
}

/// `id` of a `desired.` key, if it is one.
pub(crate) fn desired_id(key: &str) -> Option<&str> {
    key.strip_prefix(DESIRED)
}

/// The key prefix of desired resources (for watches).
pub(crate) fn desired_filter() -> String {
    format!("{DESIRED}>")
}

/// Most bytes one stored resource may take: NATS's default largest
/// message (1 MiB), less room for the headers.
const MAX_RESOURCE_BYTES: usize = 1000 * 1024;

/// `resource` encoded to fit one KV entry: its oldest templates are
/// dropped from its history until it does; an error if it does not fit
/// even without them.
fn encode_resource(resource: &mut Resource) -> Result<Vec<u8>, StoreError> {
    loop {
        let bytes = encode(resource);
        if bytes.len() <= MAX_RESOURCE_BYTES {
            return Ok(bytes);
        }
        if resource.history.is_empty() {
            return Err(StoreError::Invalid(format!(
                "{} is {} KiB stored; a resource may take at most {} KiB",
                resource.id(),
                bytes.len() / 1024,
                MAX_RESOURCE_BYTES / 1024
            )));
        }
        resource.history.remove(0);
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_stored_before_phases_still_reads() {
        let old = br#"{"observedGeneration":3,"desired":2,"ready":1,"placements":[{"host":"h0","replicas":1,"current":true}],"message":"1 of 2 replicas ready"}"#;
        let status: ResourceStatus = decode("status.shop/web", old).unwrap();
        assert_eq!(status.phase, Phase::Pending);
        assert!(status.placements[0].host_ready);
        assert_eq!(status.rollout, RolloutState::Complete);
        assert_eq!(status.rejected, None);
        assert_eq!(status.ready, 1);
        assert!(status.events.is_empty());
    }

    #[test]
    fn a_rejection_is_stored_with_its_spec_hash() {
        let status = ResourceStatus {
            observed_generation: 1,
            phase: Phase::Failed,
            desired: 1,
            ready: 0,
            placements: Vec::new(),
            message: Some("not a component".into()),
            rejected: Some(Rejection {
                spec_hash: "sha256:a".into(),
                host: "h0".into(),
                reason: "not a component".into(),
            }),
            ..ResourceStatus::default()
        };
        let json: serde_json::Value = serde_json::from_slice(&encode(&status)).unwrap();
        assert_eq!(json["phase"], "Failed");
        assert_eq!(json["rejected"]["specHash"], "sha256:a");
        assert_eq!(json["rejected"]["host"], "h0");
        assert_eq!(json["rejected"]["reason"], "not a component");
        assert_eq!(
            decode::<ResourceStatus>("k", &encode(&status)).unwrap(),
            status
        );
    }

    fn deployment(image: &str, replicas: u32) -> Resource {
        let workload = Workload::single_http_component("shop", "web", image, "web.test");
        let manifest = serde_json::json!({
            "kind": "WorkloadDeployment",
            "spec": { "replicas": replicas, "template": { "spec": { "image": image } } }
        });
        Resource {
            kind: Kind::WorkloadDeployment,
            generation: 1,
            replicas,
            workload,
            manifest,
            policy: DeployPolicy::default(),
            autoscaling: None,
            revision: 1,
            history: Vec::new(),
        }
    }

    #[test]
    fn a_changed_template_is_a_new_revision_and_scaling_is_not() {
        let first = deployment("/a.wasm", 3);
        let scaled = first.succeeded_by(deployment("/a.wasm", 5));
        assert_eq!((scaled.generation, scaled.revision), (2, 1));
        assert!(scaled.history.is_empty());
        let changed = scaled.succeeded_by(deployment("/b.wasm", 5));
        assert_eq!((changed.generation, changed.revision), (3, 2));
        assert_eq!(changed.history.len(), 1);
        assert_eq!(changed.history[0].revision, 1);
        assert_eq!(changed.history[0].workload, first.workload);
        assert_eq!(
            changed.history[0].template,
            serde_json::json!({ "spec": { "image": "/a.wasm" } })
        );
        // The history is bounded, oldest dropped first.
        let mut latest = changed;
        for i in 0..(MAX_HISTORY + 5) {
            latest = latest.succeeded_by(deployment(&format!("/v{i}.wasm"), 5));
        }
        assert_eq!(latest.history.len(), MAX_HISTORY);
        assert_eq!(latest.history.last().unwrap().revision, latest.revision - 1);
        assert_eq!(
            latest.history[0].revision,
            latest.revision - MAX_HISTORY as u64
        );
    }

    #[test]
    fn a_resource_stored_before_revisions_reads_as_revision_one() {
        let mut json = serde_json::to_value(deployment("/a.wasm", 2)).unwrap();
        let object = json.as_object_mut().unwrap();
        for field in ["policy", "revision", "history"] {
            object.remove(field);
        }
        let resource: Resource = decode("desired.shop/web", &encode(&json)).unwrap();
        assert_eq!(resource.revision, 1);
        assert_eq!(resource.policy, DeployPolicy::default());
        assert!(resource.history.is_empty());
    }

    #[test]
    fn a_large_history_gives_way_to_fit_one_entry() {
        // Each template carries 300 KiB of config: three fit, five do not.
        let big = |tag: &str| {
            let mut resource = deployment(&format!("/{tag}.wasm"), 1);
            let config = &mut resource.workload.spec.components[0].local_resources;
            let value = format!("{tag}{}", "x".repeat(300 * 1024));
            config.environment.config.insert("BLOB".into(), value);
            resource
        };
        let mut latest = big("v0");
        for tag in ["v1", "v2", "v3", "v4"] {
            latest = latest.succeeded_by(big(tag));
        }
        assert_eq!(latest.history.len(), 4);
        let bytes = encode_resource(&mut latest).unwrap();
        assert!(bytes.len() <= MAX_RESOURCE_BYTES);
        // The newest earlier templates stay, the oldest went.
        let kept: Vec<u64> = latest.history.iter().map(|r| r.revision).collect();
        assert_eq!(kept, vec![3, 4]);
        // One template alone too large is an error naming the resource.
        let mut huge = deployment("/a.wasm", 1);
        let config = &mut huge.workload.spec.components[0].local_resources;
        config
            .environment
            .config
            .insert("BLOB".into(), "x".repeat(2 << 20));
        let error = encode_resource(&mut huge).unwrap_err().to_string();
        assert!(error.contains("shop/web is 2048 KiB stored"), "{error}");
    }
}
