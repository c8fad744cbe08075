//! The `wasi:blobstore` host functions: the resources a guest holds
//! (containers, name listings, values being read and written) and the view
//! each call gets of its component's binding.

use crate::bindings::wasi::blobstore::{blobstore, container, types};
use crate::{BLOBSTORE, BlobBinding, BlobError, BlobReader, CONTAINER, TYPES};
use crate::{SYNC_READ_LIMIT, WRITE_BUDGET, check_container_name, check_object_name};
use tokio::io::AsyncReadExt;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::{AsyncReadStream, AsyncWriteStream};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

/// An open container.
pub struct ContainerHandle {
    name: String,
}

/// Object names being read out in pages.
pub struct ObjectNames {
    names: Vec<String>,
    position: usize,
}

impl ObjectNames {
    /// Moves past up to `count` names: the names passed, and whether none
    /// are left.
    fn advance(&mut self, count: u64) -> (&[String], bool) {
        let start = self.position;
        let end = start
            .saturating_add(count.min(usize::MAX as u64) as usize)
            .min(self.names.len());
        self.position = end;
        (&self.names[start..end], end == self.names.len())
    }
}

/// A readable range of an object.
pub struct IncomingValue {
    reader: BlobReader,
    size: u64,
}

/// A value being written: its spool file, and where `write-data` said it goes.
pub struct OutgoingValue {
    file: Option<std::fs::File>,
    path: tempfile::TempPath,
    target: Option<(String, String)>,
}

pub(crate) struct BlobView<'a> {
    table: &'a mut ResourceTable,
    binding: Option<&'a BlobBinding>,
    calls: nimbus_plugin::PluginCalls<'a>,
}

impl<'a> BlobView<'a> {
    pub(crate) fn new(
        table: &'a mut ResourceTable,
        binding: Option<&'a BlobBinding>,
        calls: nimbus_plugin::PluginCalls<'a>,
    ) -> Self {
        Self {
            table,
            binding,
            calls,
        }
    }

    pub(crate) fn binding(&self) -> wasmtime::Result<&BlobBinding> {
        self.binding
            .ok_or_else(|| wasmtime::format_err!("wasi:blobstore is not bound for this component"))
    }

    pub(crate) fn container(
        &self,
        handle: &Resource<ContainerHandle>,
    ) -> wasmtime::Result<(&BlobBinding, String)> {
        let name = self.table.get(handle)?.name.clone();
        Ok((self.binding()?, name))
    }

    /// What this store's plugin calls are traced and counted by.
    pub(crate) fn calls(&self) -> nimbus_plugin::PluginCalls<'_> {
        self.calls
    }

    /// A handle to container `name` (checked by the caller).
    pub(crate) fn push_container(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Resource<ContainerHandle>> {
        Ok(self.table.push(ContainerHandle { name })?)
    }

    pub(crate) fn drop_container(
        &mut self,
        handle: Resource<ContainerHandle>,
    ) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

type Outcome<T> = wasmtime::Result<Result<T, String>>;

/// Runs a host function's body observed (traced and counted); the guest
/// receives a [`BlobError`] as its message, the interface's error string.
async fn outcome<T>(
    calls: nimbus_plugin::PluginCalls<'_>,
    interface: &'static str,
    function: &'static str,
    body: impl Future<Output = wasmtime::Result<Result<T, BlobError>>>,
) -> Outcome<T> {
    calls
        .observe_outcome(interface, function, body)
        .await
        .map(|result| result.map_err(|error| error.to_string()))
}

impl blobstore::Host for BlobView<'_> {
    async fn create_container(&mut self, name: String) -> Outcome<Resource<ContainerHandle>> {
        let calls = self.calls;
        outcome(calls, BLOBSTORE, "create-container", async move {
            let binding = self.binding()?;
            if let Err(e) = check_container_name(&name) {
                return Ok(Err(e));
            }
            if let Err(e) = binding.call(binding.backend.create_container(&name)).await {
                return Ok(Err(e));
            }
            Ok(Ok(self.table.push(ContainerHandle { name })?))
        })
        .await
    }

    async fn get_container(&mut self, name: String) -> Outcome<Resource<ContainerHandle>> {
        let calls = self.calls;
        outcome(calls, BLOBSTORE, "get-container", async move {
            let binding = self.binding()?;
            if let Err(e) = binding.require_container(&name).await {
                return Ok(Err(e));
            }
            Ok(Ok(self.table.push(ContainerHandle { name })?))
        })
        .await
    }

    async fn delete_container(&mut self, name: String) -> Outcome<()> {
        let calls = self.calls;
        outcome(calls, BLOBSTORE, "delete-container", async move {
            let binding = self.binding()?;
            if let Err(e) = check_container_name(&name) {
                return Ok(Err(e));
            }
            Ok(binding.call(binding.backend.delete_container(&name)).await)
        })
        .await
    }

    async fn container_exists(&mut self, name: String) -> Outcome<bool> {
        let calls = self.calls;
        outcome(calls, BLOBSTORE, "container-exists", async move {
            let binding = self.binding()?;
            if let Err(e) = check_container_name(&name) {
                return Ok(Err(e));
            }
            Ok(binding
                .call(binding.backend.container_created_at(&name))
                .await
                .map(|c| c.is_some()))
        })
        .await
    }

    async fn copy_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> Outcome<()> {
        let calls = self.calls;
        outcome(calls, BLOBSTORE, "copy-object", async move {
            let binding = self.binding()?;
            Ok(binding
                .copy(&src.container, &src.object, &dest.container, &dest.object)
                .await)
        })
        .await
    }

    async fn move_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> Outcome<()> {
        let calls = self.calls;
        outcome(calls, BLOBSTORE, "move-object", async move {
            let binding = self.binding()?;
            let copied = binding
                .copy(&src.container, &src.object, &dest.container, &dest.object)
                .await;
            if let Err(e) = copied {
                return Ok(Err(e));
            }
            if src.container == dest.container && src.object == dest.object {
                return Ok(Ok(()));
            }
            Ok(binding
                .call(binding.backend.delete_object(&src.container, &src.object))
                .await)
        })
        .await
    }
}

impl container::Host for BlobView<'_> {}

impl container::HostContainer for BlobView<'_> {
    async fn name(&mut self, handle: Resource<ContainerHandle>) -> Outcome<String> {
        Ok(Ok(self.table.get(&handle)?.name.clone()))
    }

    async fn info(
        &mut self,
        handle: Resource<ContainerHandle>,
    ) -> Outcome<types::ContainerMetadata> {
        let calls = self.calls;
        outcome(calls, CONTAINER, "info", async move {
            let (binding, name) = self.container(&handle)?;
            Ok(binding
                .require_container(&name)
                .await
                .map(|created_at| types::ContainerMetadata { name, created_at }))
        })
        .await
    }

    async fn get_data(
        &mut self,
        handle: Resource<ContainerHandle>,
        name: String,
        start: u64,
        end: u64,
    ) -> Outcome<Resource<IncomingValue>> {
        let calls = self.calls;
        outcome(calls, CONTAINER, "get-data", async move {
            let (binding, container) = self.container(&handle)?;
            let (reader, size) = match binding.open_range(&container, &name, start, end).await {
                Ok(opened) => opened,
                Err(e) => return Ok(Err(e)),
            };
            Ok(Ok(self.table.push(IncomingValue { reader, size })?))
        })
        .await
    }

    async fn write_data(
        &mut self,
        handle: Resource<ContainerHandle>,
        name: String,
        data: Resource<OutgoingValue>,
    ) -> Outcome<()> {
        let calls = self.calls;
        outcome(calls, CONTAINER, "write-data", async move {
            let (binding, container) = self.container(&handle)?;
            if let Err(e) = check_object_name(&name) {
                return Ok(Err(e));
            }
            if let Err(e) = binding.require_container(&container).await {
                return Ok(Err(e));
            }
            self.table.get_mut(&data)?.target = Some((container, name));
            Ok(Ok(()))
        })
        .await
    }

    async fn list_objects(
        &mut self,
        handle: Resource<ContainerHandle>,
    ) -> Outcome<Resource<ObjectNames>> {
        let calls = self.calls;
        outcome(calls, CONTAINER, "list-objects", async move {
            let (binding, container) = self.container(&handle)?;
            match binding.call(binding.backend.list_objects(&container)).await {
                Ok(names) => Ok(Ok(self.table.push(ObjectNames { names, position: 0 })?)),
                Err(e) => Ok(Err(e)),
            }
        })
        .await
    }

    async fn delete_object(
        &mut self,
        handle: Resource<ContainerHandle>,
        name: String,
    ) -> Outcome<()> {
        let calls = self.calls;
        outcome(calls, CONTAINER, "delete-object", async move {
            let (binding, container) = self.container(&handle)?;
            if let Err(e) = check_object_name(&name) {
                return Ok(Err(e));
            }
            Ok(binding
                .call(binding.backend.delete_object(&container, &name))
                .await)
        })
        .await
    }

    async fn delete_objects(
        &mut self,
        handle: Resource<ContainerHandle>,
        names: Vec<String>,
    ) -> Outcome<()> {
        let calls = self.calls;
        outcome(calls, CONTAINER, "delete-objects", async move {
            let (binding, container) = self.container(&handle)?;
            let checked = names
                .into_iter()
                .map(|name| check_object_name(&name).map(|()| name));
            Ok(binding.delete_each(&container, checked).await)
        })
        .await
    }

    async fn has_object(
        &mut self,
        handle: Resource<ContainerHandle>,
        name: String,
    ) -> Outcome<bool> {
        let calls = self.calls;
        outcome(calls, CONTAINER, "has-object", async move {
            let (binding, container) = self.container(&handle)?;
            if let Err(e) = check_object_name(&name) {
                return Ok(Err(e));
            }
            Ok(binding
                .call(binding.backend.object_info(&container, &name))
                .await
                .map(|info| info.is_some()))
        })
        .await
    }

    async fn object_info(
        &mut self,
        handle: Resource<ContainerHandle>,
        name: String,
    ) -> Outcome<types::ObjectMetadata> {
        let calls = self.calls;
        outcome(calls, CONTAINER, "object-info", async move {
            let (binding, container) = self.container(&handle)?;
            if let Err(e) = check_object_name(&name) {
                return Ok(Err(e));
            }
            Ok(
                match binding
                    .call(binding.backend.object_info(&container, &name))
                    .await
                {
                    Ok(Some(info)) => Ok(types::ObjectMetadata {
                        name,
                        container,
                        created_at: info.created_at,
                        size: info.size,
                    }),
                    Ok(None) => Err(BlobError::NoSuchObject(name.clone())),
                    Err(e) => Err(e),
                },
            )
        })
        .await
    }

    async fn clear(&mut self, handle: Resource<ContainerHandle>) -> Outcome<()> {
        let calls = self.calls;
        outcome(calls, CONTAINER, "clear", async move {
            let (binding, container) = self.container(&handle)?;
            let names = match binding.call(binding.backend.list_objects(&container)).await {
                Ok(names) => names,
                Err(e) => return Ok(Err(e)),
            };
            Ok(binding
                .delete_each(&container, names.into_iter().map(Ok))
                .await)
        })
        .await
    }

    async fn drop(&mut self, handle: Resource<ContainerHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl container::HostStreamObjectNames for BlobView<'_> {
    async fn read_stream_object_names(
        &mut self,
        handle: Resource<ObjectNames>,
        len: u64,
    ) -> Outcome<(Vec<String>, bool)> {
        let (page, done) = self.table.get_mut(&handle)?.advance(len);
        Ok(Ok((page.to_vec(), done)))
    }

    async fn skip_stream_object_names(
        &mut self,
        handle: Resource<ObjectNames>,
        num: u64,
    ) -> Outcome<(u64, bool)> {
        let (skipped, done) = self.table.get_mut(&handle)?.advance(num);
        Ok(Ok((skipped.len() as u64, done)))
    }

    async fn drop(&mut self, handle: Resource<ObjectNames>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl types::Host for BlobView<'_> {}

impl types::HostOutgoingValue for BlobView<'_> {
    async fn new_outgoing_value(&mut self) -> wasmtime::Result<Resource<OutgoingValue>> {
        let binding = self.binding()?;
        let spool = tempfile::NamedTempFile::new_in(binding.backend.spool_dir())
            .map_err(|e| wasmtime::format_err!("cannot create a blob spool file: {e}"))?;
        let (file, path) = spool.into_parts();
        Ok(self.table.push(OutgoingValue {
            file: Some(file),
            path,
            target: None,
        })?)
    }

    async fn outgoing_value_write_body(
        &mut self,
        handle: Resource<OutgoingValue>,
    ) -> wasmtime::Result<Result<Resource<DynOutputStream>, ()>> {
        let Some(file) = self.table.get_mut(&handle)?.file.take() else {
            return Ok(Err(()));
        };
        let stream: DynOutputStream = Box::new(AsyncWriteStream::new(
            WRITE_BUDGET,
            tokio::fs::File::from_std(file),
        ));
        Ok(Ok(self.table.push(stream)?))
    }

    async fn finish(&mut self, handle: Resource<OutgoingValue>) -> Outcome<()> {
        let calls = self.calls;
        outcome(calls, TYPES, "finish", async move {
            let value = self.table.delete(handle)?;
            let binding = self.binding()?;
            let Some((container, name)) = value.target else {
                return Ok(Err(BlobError::NothingWritten));
            };
            Ok(binding.store_spooled(&container, &name, value.path).await)
        })
        .await
    }

    async fn drop(&mut self, handle: Resource<OutgoingValue>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl types::HostIncomingValue for BlobView<'_> {
    async fn incoming_value_consume_sync(
        &mut self,
        handle: Resource<IncomingValue>,
    ) -> Outcome<Vec<u8>> {
        let mut value = self.table.delete(handle)?;
        // The whole value becomes host memory first: bound it.
        if value.size > SYNC_READ_LIMIT {
            return Ok(Err(format!(
                "the value is {} bytes, over the {} MiB incoming-value-consume-sync reads; \
                 stream it with incoming-value-consume-async",
                value.size,
                SYNC_READ_LIMIT >> 20
            )));
        }
        let mut bytes = Vec::with_capacity(value.size as usize);
        Ok(value
            .reader
            .read_to_end(&mut bytes)
            .await
            .map(|_| bytes)
            .map_err(|e| format!("cannot read the object: {e}")))
    }

    async fn incoming_value_consume_async(
        &mut self,
        handle: Resource<IncomingValue>,
    ) -> Outcome<Resource<DynInputStream>> {
        let value = self.table.delete(handle)?;
        let stream: DynInputStream = Box::new(AsyncReadStream::new(value.reader));
        Ok(Ok(self.table.push(stream)?))
    }

    async fn size(&mut self, handle: Resource<IncomingValue>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&handle)?.size)
    }

    async fn drop(&mut self, handle: Resource<IncomingValue>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

pub(crate) struct HasBlobs;

impl wasmtime::component::HasData for HasBlobs {
    type Data<'a> = BlobView<'a>;
}
