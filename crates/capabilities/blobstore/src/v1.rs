//! `wasmcloud:blobstore@0.1.0`: the same containers and objects as
//! `wasi:blobstore@0.2.0-draft`, over the same backends and the same
//! binding, with every call an `async` function, bodies as `stream<u8>`
//! and typed errors.
//!
//! `write-data` takes the guest's stream into a spool file as the guest
//! writes it (the guest is held back while the file catches up), then hands
//! the file to the backend as `finish` does for 0.2.0; `get-data` answers a
//! stream the guest reads at its own pace from the backend's range.
//! Timestamps are nanoseconds here (0.2.0's are seconds).

use crate::host::{BlobView, ContainerHandle};
use crate::{BlobBinding, BlobError, check_container_name, check_object_name};
use nimbus_plugin::streams::{self, ReadProducer};
use tokio::io::AsyncWriteExt;
use wasmtime::component::{Access, Accessor, Resource, StreamReader};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "wit-0.1.0",
        world: "wasmcloud:blobstore/imports",
        imports: { default: store | trappable },
        with: { "wasmcloud:blobstore/container.container": crate::host::ContainerHandle },
    });
}

use bindings::wasmcloud::blobstore::{blobstore, container, types};

/// The interfaces as spans and metrics name them.
const V1_BLOBSTORE: &str = "wasmcloud:blobstore/blobstore@0.1.0";
const V1_CONTAINER: &str = "wasmcloud:blobstore/container@0.1.0";

type Outcome<T> = wasmtime::Result<Result<T, types::Error>>;

/// What the guest is told for a blob failure.
fn guest_error(error: BlobError) -> types::Error {
    match error {
        BlobError::NoSuchContainer(_) => types::Error::NoSuchContainer,
        BlobError::ContainerExists(_) => types::Error::ContainerAlreadyExists,
        BlobError::NoSuchObject(_) => types::Error::NoSuchObject,
        BlobError::Timeout { .. } | BlobError::TransferTimeout { .. } => types::Error::Timeout,
        BlobError::Full { .. } => types::Error::QuotaExceeded,
        BlobError::Unavailable(_) => types::Error::StoreUnavailable,
        // Names, ranges and backend failures: the words say which.
        other => types::Error::Other(other.to_string()),
    }
}

/// Nanoseconds for the seconds the backends keep.
fn nanos(seconds: u64) -> u64 {
    seconds.saturating_mul(1_000_000_000)
}

/// The component's binding, and the container `handle` names.
fn container_of<T>(
    accessor: &Accessor<T, HasBlobsV1>,
    handle: &Resource<ContainerHandle>,
) -> wasmtime::Result<(BlobBinding, String)> {
    accessor.with(|mut access| {
        let view = access.get();
        let (binding, name) = view.container(handle)?;
        Ok((binding.clone(), name))
    })
}

fn binding_of<T>(accessor: &Accessor<T, HasBlobsV1>) -> wasmtime::Result<BlobBinding> {
    accessor.with(|mut access| access.get().binding().cloned())
}

/// Runs a host function's backend work as one observed plugin call.
async fn observed<T, R>(
    accessor: &Accessor<T, HasBlobsV1>,
    interface: &'static str,
    function: &'static str,
    work: impl Future<Output = Result<R, BlobError>>,
) -> Result<R, BlobError> {
    let observation = accessor.with(|mut access| access.get().calls().start(interface, function));
    let result = observation.run(work).await;
    accessor.with(|mut access| observation.finish(&access.get().calls(), result.is_ok()));
    result
}

fn push_container<T>(
    accessor: &Accessor<T, HasBlobsV1>,
    name: String,
) -> wasmtime::Result<Resource<ContainerHandle>> {
    accessor.with(|mut access| access.get().push_container(name))
}

impl types::Host for BlobView<'_> {}
impl blobstore::Host for BlobView<'_> {}
impl container::Host for BlobView<'_> {}

impl container::HostContainer for BlobView<'_> {}

impl<T> blobstore::HostWithStore<T> for HasBlobsV1 {
    async fn create_container(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> Outcome<Resource<ContainerHandle>> {
        let binding = binding_of(accessor)?;
        let created = observed(accessor, V1_BLOBSTORE, "create-container", async {
            check_container_name(&name)?;
            binding.call(binding.backend.create_container(&name)).await
        })
        .await;
        match created {
            Ok(()) => Ok(Ok(push_container(accessor, name)?)),
            Err(error) => Ok(Err(guest_error(error))),
        }
    }

    async fn get_container(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> Outcome<Resource<ContainerHandle>> {
        let binding = binding_of(accessor)?;
        let found = observed(accessor, V1_BLOBSTORE, "get-container", async {
            binding.require_container(&name).await
        })
        .await;
        match found {
            Ok(_) => Ok(Ok(push_container(accessor, name)?)),
            Err(error) => Ok(Err(guest_error(error))),
        }
    }

    async fn delete_container(accessor: &Accessor<T, Self>, name: String) -> Outcome<()> {
        let binding = binding_of(accessor)?;
        Ok(observed(accessor, V1_BLOBSTORE, "delete-container", async {
            check_container_name(&name)?;
            binding.call(binding.backend.delete_container(&name)).await
        })
        .await
        .map_err(guest_error))
    }

    async fn container_exists(accessor: &Accessor<T, Self>, name: String) -> Outcome<bool> {
        let binding = binding_of(accessor)?;
        Ok(observed(accessor, V1_BLOBSTORE, "container-exists", async {
            check_container_name(&name)?;
            Ok(binding
                .call(binding.backend.container_created_at(&name))
                .await?
                .is_some())
        })
        .await
        .map_err(guest_error))
    }

    async fn copy_object(
        accessor: &Accessor<T, Self>,
        src: types::ObjectId,
        dest: types::ObjectId,
    ) -> Outcome<()> {
        let binding = binding_of(accessor)?;
        Ok(observed(accessor, V1_BLOBSTORE, "copy-object", async {
            binding
                .copy(&src.container, &src.object, &dest.container, &dest.object)
                .await
        })
        .await
        .map_err(guest_error))
    }

    async fn move_object(
        accessor: &Accessor<T, Self>,
        src: types::ObjectId,
        dest: types::ObjectId,
    ) -> Outcome<()> {
        let binding = binding_of(accessor)?;
        Ok(observed(accessor, V1_BLOBSTORE, "move-object", async {
            binding
                .copy(&src.container, &src.object, &dest.container, &dest.object)
                .await?;
            if src.container == dest.container && src.object == dest.object {
                return Ok(());
            }
            binding
                .call(binding.backend.delete_object(&src.container, &src.object))
                .await
        })
        .await
        .map_err(guest_error))
    }
}

impl<T> container::HostContainerWithStore<T> for HasBlobsV1 {
    fn drop(
        mut access: Access<'_, T, Self>,
        handle: Resource<ContainerHandle>,
    ) -> wasmtime::Result<()> {
        access.get().drop_container(handle)
    }

    async fn name(
        accessor: &Accessor<T, Self>,
        handle: Resource<ContainerHandle>,
    ) -> Outcome<String> {
        Ok(Ok(container_of(accessor, &handle)?.1))
    }

    async fn info(
        accessor: &Accessor<T, Self>,
        handle: Resource<ContainerHandle>,
    ) -> Outcome<types::ContainerMetadata> {
        let (binding, name) = container_of(accessor, &handle)?;
        Ok(observed(accessor, V1_CONTAINER, "info", async {
            let created_at = binding.require_container(&name).await?;
            Ok(types::ContainerMetadata {
                name: name.clone(),
                created_at: nanos(created_at),
            })
        })
        .await
        .map_err(guest_error))
    }

    async fn get_data(
        accessor: &Accessor<T, Self>,
        handle: Resource<ContainerHandle>,
        name: String,
        start: u64,
        end: u64,
    ) -> Outcome<StreamReader<u8>> {
        let (binding, container) = container_of(accessor, &handle)?;
        let opened = observed(accessor, V1_CONTAINER, "get-data", async {
            binding.open_range(&container, &name, start, end).await
        })
        .await;
        match opened {
            Ok((reader, _size)) => Ok(Ok(accessor
                .with(|mut access| StreamReader::new(&mut access, ReadProducer::new(reader)))?)),
            Err(error) => Ok(Err(guest_error(error))),
        }
    }

    async fn write_data(
        accessor: &Accessor<T, Self>,
        handle: Resource<ContainerHandle>,
        name: String,
        data: StreamReader<u8>,
    ) -> Outcome<()> {
        let (binding, container) = match container_of(accessor, &handle) {
            Ok(parts) => parts,
            Err(trap) => {
                streams::discard(accessor, data)?;
                return Err(trap);
            }
        };
        let checked = async {
            check_object_name(&name)?;
            binding.require_container(&container).await.map(|_| ())
        }
        .await;
        if let Err(error) = checked {
            streams::discard(accessor, data)?;
            return Ok(Err(guest_error(error)));
        }
        let mut chunks = streams::receive(accessor, data)?;
        Ok(observed(accessor, V1_CONTAINER, "write-data", async {
            let spool = tempfile::NamedTempFile::new_in(binding.backend.spool_dir())
                .map_err(|e| BlobError::Backend(format!("cannot spool the value: {e}")))?;
            let (file, path) = spool.into_parts();
            let mut file = tokio::fs::File::from_std(file);
            let spool_error =
                |e: std::io::Error| BlobError::Backend(format!("cannot spool the value: {e}"));
            while let Some(chunk) = chunks.recv().await {
                file.write_all(&chunk).await.map_err(spool_error)?;
            }
            file.sync_all().await.map_err(spool_error)?;
            drop(file);
            binding.store_spooled(&container, &name, path).await
        })
        .await
        .map_err(guest_error))
    }

    async fn list_objects(
        accessor: &Accessor<T, Self>,
        handle: Resource<ContainerHandle>,
    ) -> Outcome<StreamReader<String>> {
        let (binding, container) = container_of(accessor, &handle)?;
        let listed = observed(accessor, V1_CONTAINER, "list-objects", async {
            binding.call(binding.backend.list_objects(&container)).await
        })
        .await;
        match listed {
            Ok(names) => {
                Ok(Ok(accessor.with(|mut access| {
                    StreamReader::new(&mut access, names)
                })?))
            }
            Err(error) => Ok(Err(guest_error(error))),
        }
    }

    async fn delete_object(
        accessor: &Accessor<T, Self>,
        handle: Resource<ContainerHandle>,
        name: String,
    ) -> Outcome<()> {
        let (binding, container) = container_of(accessor, &handle)?;
        Ok(observed(accessor, V1_CONTAINER, "delete-object", async {
            check_object_name(&name)?;
            binding
                .call(binding.backend.delete_object(&container, &name))
                .await
        })
        .await
        .map_err(guest_error))
    }

    async fn delete_objects(
        accessor: &Accessor<T, Self>,
        handle: Resource<ContainerHandle>,
        names: Vec<String>,
    ) -> Outcome<()> {
        let (binding, container) = container_of(accessor, &handle)?;
        Ok(observed(accessor, V1_CONTAINER, "delete-objects", async {
            let checked = names
                .into_iter()
                .map(|name| check_object_name(&name).map(|()| name));
            binding.delete_each(&container, checked).await
        })
        .await
        .map_err(guest_error))
    }

    async fn has_object(
        accessor: &Accessor<T, Self>,
        handle: Resource<ContainerHandle>,
        name: String,
    ) -> Outcome<bool> {
        let (binding, container) = container_of(accessor, &handle)?;
        Ok(observed(accessor, V1_CONTAINER, "has-object", async {
            check_object_name(&name)?;
            Ok(binding
                .call(binding.backend.object_info(&container, &name))
                .await?
                .is_some())
        })
        .await
        .map_err(guest_error))
    }

    async fn object_info(
        accessor: &Accessor<T, Self>,
        handle: Resource<ContainerHandle>,
        name: String,
    ) -> Outcome<types::ObjectMetadata> {
        let (binding, container) = container_of(accessor, &handle)?;
        Ok(observed(accessor, V1_CONTAINER, "object-info", async {
            check_object_name(&name)?;
            let info = binding
                .call(binding.backend.object_info(&container, &name))
                .await?
                .ok_or_else(|| BlobError::NoSuchObject(name.clone()))?;
            Ok(types::ObjectMetadata {
                name: name.clone(),
                container: container.clone(),
                created_at: nanos(info.created_at),
                size: info.size,
            })
        })
        .await
        .map_err(guest_error))
    }

    async fn clear(accessor: &Accessor<T, Self>, handle: Resource<ContainerHandle>) -> Outcome<()> {
        let (binding, container) = container_of(accessor, &handle)?;
        Ok(observed(accessor, V1_CONTAINER, "clear", async {
            let names = binding
                .call(binding.backend.list_objects(&container))
                .await?;
            binding
                .delete_each(&container, names.into_iter().map(Ok))
                .await
        })
        .await
        .map_err(guest_error))
    }
}

pub(crate) struct HasBlobsV1;

impl wasmtime::component::HasData for HasBlobsV1 {
    type Data<'a> = BlobView<'a>;
}
