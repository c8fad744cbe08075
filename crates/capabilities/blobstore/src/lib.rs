//! `wasi:blobstore/{blobstore,container,types}@0.2.0-draft`, and
//! `wasmcloud:blobstore@0.1.0` (its `async`, `stream<u8>` revision: see
//! [`v1`]), on three backends: memory (dev default, per workload),
//! filesystem (a directory; names can never leave it), NATS JetStream
//! object store. A `wasmcloud:blobstore` host interface entry configures
//! both versions as a `wasi:blobstore` one does.
//!
//! ```yaml
//! hostInterfaces:
//!   - namespace: wasi
//!     package: blobstore
//!     interfaces: [blobstore, container, types]
//!     config:
//!       backend: filesystem          # memory | filesystem | nats
//!       path: /var/lib/app/blobs     # filesystem root; or url: nats://…
//!       timeout_ms: "5000"
//! ```
//!
//! Bodies stream: a guest writes an `outgoing-value` through a `wasi:io`
//! output stream into a spool file (never into host memory), and `finish`
//! hands that file to the backend (a rename on the filesystem, a chunked put
//! to NATS); `get-data` returns an `incoming-value` whose input stream reads
//! the backend's range lazily. Metadata calls are bounded by the timeout.

mod backend;
mod filesystem;
mod host;
#[cfg(feature = "nats")]
mod nats;
mod v1;

pub use backend::{
    BlobBackend, BlobError, BlobReader, MemoryBlobs, ObjectInfo, check_container_name,
    check_object_name,
};
pub use filesystem::FilesystemBlobs;
use host::{BlobView, HasBlobs};
pub use host::{ContainerHandle, IncomingValue, ObjectNames, OutgoingValue};

use nimbus_model::backends::{BackendError, BackendKind};
use nimbus_plugin::BackendPool;
use nimbus_plugin::NatsConnections;
use nimbus_plugin::PluginState;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasi:blobstore/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi_io::bindings::wasi::io,
            "wasi:blobstore/container.container": super::host::ContainerHandle,
            "wasi:blobstore/container.stream-object-names": super::host::ObjectNames,
            "wasi:blobstore/types.incoming-value": super::host::IncomingValue,
            "wasi:blobstore/types.outgoing-value": super::host::OutgoingValue,
        },
    });
}

use bindings::wasi::blobstore::{blobstore, container, types};

const ID: &str = "blobstore";
const BLOBSTORE: &str = "wasi:blobstore/blobstore";
const CONTAINER: &str = "wasi:blobstore/container";
const TYPES: &str = "wasi:blobstore/types";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes the guest may have in flight to the spool file.
const WRITE_BUDGET: usize = 64 * 1024;
/// The slowest transfer rate, in bytes per second, a backend may fall to
/// before a large write counts as stalled.
const TRANSFER_FLOOR: u64 = 8 * 1024 * 1024;
/// The largest value `incoming-value-consume-sync` returns in one list.
const SYNC_READ_LIMIT: u64 = 32 * 1024 * 1024;

/// Serves blobs from pooled backends.
pub struct BlobstorePlugin {
    defaults: BTreeMap<String, String>,
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    nats: Arc<NatsConnections>,
    pool: BackendPool<BlobSettings, dyn BlobBackend>,
}

/// Which backend, and where: the model's one resolver reads it from
/// host-interface config, host defaults and the one-string form alike.
pub use nimbus_model::backends::BackendChoice as BlobSettings;

/// Reads `backend` (memory | filesystem | nats) with `path` or `url` (a
/// `url`'s scheme says its kind, a `path` alone means the filesystem). A
/// backend this build left out is an error naming its cargo feature.
pub fn blob_settings(config: &BTreeMap<String, String>) -> Result<BlobSettings, BackendError> {
    nimbus_model::backends::BLOBSTORE.resolve(config, missing_feature)
}

/// The cargo feature a backend kind needs, when this build left it out.
fn missing_feature(kind: BackendKind) -> Option<&'static str> {
    match kind {
        BackendKind::Nats if !cfg!(feature = "nats") => Some("nats"),
        _ => None,
    }
}

impl BlobstorePlugin {
    /// The plugin with the host's `defaults` for it, sharing the host's NATS clients.
    pub fn new(defaults: BTreeMap<String, String>, nats: Arc<NatsConnections>) -> Self {
        Self {
            defaults,
            nats,
            pool: BackendPool::new(),
        }
    }

    fn backend(
        &self,
        workload: &str,
        settings: &BlobSettings,
        timeout: Duration,
    ) -> Result<Arc<dyn BlobBackend>, BlobError> {
        let in_memory = *settings == BlobSettings::Memory;
        self.pool.get_or_open(workload, settings, in_memory, || {
            Ok(match settings {
                BlobSettings::Memory => Arc::new(MemoryBlobs::default()),
                BlobSettings::Filesystem { path } => Arc::new(FilesystemBlobs::open(path)?),
                #[cfg(feature = "nats")]
                BlobSettings::Nats { url } => Arc::new(nats::NatsBlobs {
                    connection: self.nats.get(url, timeout),
                }),
                // Settings made by hand (tools, tests) may name what
                // `blob_settings` refuses: a kind left out of this build,
                // or one the blobstore does not take.
                #[allow(unreachable_patterns)]
                other => {
                    let _ = timeout;
                    return Err(nimbus_model::backends::BLOBSTORE
                        .refuse(other.kind(), missing_feature)
                        .into());
                }
            })
        })
    }
}

/// A backend built from `settings` outside any host, for tools and the
/// conformance tests.
pub fn open_blob_backend(
    settings: &BlobSettings,
    timeout: Duration,
) -> Result<Arc<dyn BlobBackend>, BlobError> {
    BlobstorePlugin::new(BTreeMap::new(), Arc::new(NatsConnections::default())).backend(
        "standalone",
        settings,
        timeout,
    )
}

impl<T: PluginState> nimbus_plugin::Plugin<T> for BlobstorePlugin {
    fn id(&self) -> &'static str {
        ID
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &[
            "wasi:blobstore/blobstore@0.2.0-draft",
            "wasi:blobstore/container@0.2.0-draft",
            "wasi:blobstore/types@0.2.0-draft",
            "wasmcloud:blobstore/blobstore@0.1.0",
            "wasmcloud:blobstore/container@0.1.0",
            "wasmcloud:blobstore/types@0.1.0",
        ]
    }

    fn add_to_linker(&self, linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
        fn view<T: PluginState>(state: &mut T) -> BlobView<'_> {
            let (table, bindings, calls) = state.plugin_parts();
            BlobView::new(table, bindings.get::<BlobBinding>(ID), calls)
        }
        types::add_to_linker::<T, HasBlobs>(linker, view::<T>)?;
        container::add_to_linker::<T, HasBlobs>(linker, view::<T>)?;
        blobstore::add_to_linker::<T, HasBlobs>(linker, view::<T>)?;
        use v1::bindings::wasmcloud::blobstore as v1_blobstore;
        v1_blobstore::types::add_to_linker::<T, v1::HasBlobsV1>(linker, view::<T>)?;
        v1_blobstore::container::add_to_linker::<T, v1::HasBlobsV1>(linker, view::<T>)?;
        v1_blobstore::blobstore::add_to_linker::<T, v1::HasBlobsV1>(linker, view::<T>)
    }

    fn bind(
        &self,
        ctx: &nimbus_plugin::BindContext<'_>,
    ) -> Result<nimbus_plugin::Binding, nimbus_plugin::PluginError> {
        let error = |message: String| nimbus_plugin::PluginError::new(ID, message);
        // wasmCloud configures its 0.1.0 interface under its own namespace;
        // either entry sets the one backend both versions serve.
        let namespace = if ctx.host_interface("wasmcloud", "blobstore").is_some() {
            "wasmcloud"
        } else {
            "wasi"
        };
        let config = ctx.backend_config(&self.defaults, namespace, "blobstore")?;
        let settings = blob_settings(&config).map_err(|e| error(e.to_string()))?;
        let timeout = nimbus_plugin::timeout_setting(ID, &config, DEFAULT_TIMEOUT)?;
        let backend = self
            .backend(ctx.workload, &settings, timeout)
            .map_err(|e| error(e.to_string()))?;
        Ok(Arc::new(BlobBinding { backend, timeout }))
    }

    fn unbind(&self, workload: &str) {
        self.pool.forget_workload(workload);
    }
}

/// What one component's blob calls go to.
#[derive(Clone)]
pub(crate) struct BlobBinding {
    backend: Arc<dyn BlobBackend>,
    timeout: Duration,
}

impl BlobBinding {
    async fn call<R>(
        &self,
        call: impl Future<Output = Result<R, BlobError>>,
    ) -> Result<R, BlobError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(BlobError::Timeout {
                    ms: self.timeout.as_millis(),
                })
            })
    }

    /// Like [`call`](Self::call) for a transfer of `bytes`: the timeout
    /// bounds a stalled backend, not a large object, so it grows by one
    /// second per [`TRANSFER_FLOOR`] bytes.
    async fn transfer<R>(
        &self,
        bytes: u64,
        call: impl Future<Output = Result<R, BlobError>>,
    ) -> Result<R, BlobError> {
        let allowed = self.timeout + Duration::from_secs(bytes / TRANSFER_FLOOR);
        tokio::time::timeout(allowed, call)
            .await
            .unwrap_or_else(|_| {
                Err(BlobError::TransferTimeout {
                    bytes,
                    ms: allowed.as_millis(),
                })
            })
    }

    /// Deletes objects one by one, stopping at the first error (a name
    /// that failed its check, or the backend's).
    async fn delete_each(
        &self,
        container: &str,
        names: impl IntoIterator<Item = Result<String, BlobError>>,
    ) -> Result<(), BlobError> {
        for name in names {
            self.call(self.backend.delete_object(container, &name?))
                .await?;
        }
        Ok(())
    }

    async fn require_container(&self, name: &str) -> Result<u64, BlobError> {
        check_container_name(name)?;
        self.call(self.backend.container_created_at(name))
            .await?
            .ok_or_else(|| BlobError::NoSuchContainer(name.to_string()))
    }

    /// Opens bytes `start..=end` of an object (clamped to its size): the
    /// reader and how many bytes it gives.
    async fn open_range(
        &self,
        container: &str,
        name: &str,
        start: u64,
        end: u64,
    ) -> Result<(BlobReader, u64), BlobError> {
        check_object_name(name)?;
        let info = self
            .call(self.backend.object_info(container, name))
            .await?
            .ok_or_else(|| BlobError::NoSuchObject(name.to_string()))?;
        if end < start {
            return Err(BlobError::InvalidRange { start, end });
        }
        // Offsets are inclusive; clamp to the object.
        let last = end.min(info.size.saturating_sub(1));
        let size = if info.size == 0 || start > last {
            0
        } else {
            last - start + 1
        };
        let reader = self
            .call(self.backend.read(container, name, start, size))
            .await?;
        Ok((reader, size))
    }

    /// Copies an object to `dest_container`/`dest_object` through a spool
    /// file.
    async fn copy(
        &self,
        src_container: &str,
        src_object: &str,
        dest_container: &str,
        dest_object: &str,
    ) -> Result<(), BlobError> {
        check_object_name(src_object)?;
        check_object_name(dest_object)?;
        self.require_container(dest_container).await?;
        let info = self
            .call(self.backend.object_info(src_container, src_object))
            .await?
            .ok_or_else(|| BlobError::NoSuchObject(src_object.to_string()))?;
        let mut reader = self
            .call(self.backend.read(src_container, src_object, 0, info.size))
            .await?;
        let spool = tempfile::NamedTempFile::new_in(self.backend.spool_dir())
            .map_err(|e| BlobError::Backend(format!("cannot spool the copy: {e}")))?;
        let (file, path) = spool.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        self.transfer(info.size, async {
            tokio::io::copy(&mut reader, &mut file)
                .await
                .map_err(|e| BlobError::Backend(format!("cannot copy the object: {e}")))
        })
        .await?;
        file.sync_all()
            .await
            .map_err(|e| BlobError::Backend(format!("cannot copy the object: {e}")))?;
        drop(file);
        self.store_spooled(dest_container, dest_object, path).await
    }

    /// Hands a spooled value to the backend as the object. The spool file
    /// goes when this ends, however it ends (a cancelled call included),
    /// unless the backend moved it into place.
    async fn store_spooled(
        &self,
        container: &str,
        name: &str,
        spool: tempfile::TempPath,
    ) -> Result<(), BlobError> {
        let size = tokio::fs::metadata(&spool).await.map_or(0, |m| m.len());
        self.transfer(size, self.backend.write(container, name, &spool))
            .await
    }
}
