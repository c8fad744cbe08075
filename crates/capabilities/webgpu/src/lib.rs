//! `wasi:webgpu@0.3.0-rc.2` (experimental): WebGPU for components, served
//! by the `wasi-webgpu-wasmtime` crate on the host's GPU (Vulkan; Mesa's
//! lavapipe where there is no GPU).
//!
//! The GPU is a shared, scarce device, so it is granted per workload: a
//! component importing `wasi:webgpu` starts only in a workload that lists
//! a `wasi:webgpu` host interface. The store gives the GPU context
//! ([`WasiWebGpuCtxView`], implemented by the runtime's store behind its
//! `webgpu` feature): its resource table and the host's one GPU instance.
//!
//! What the GPU does is not metered: GPU memory and time count against no
//! limit of the workload's, which is one reason the grant is explicit.

use nimbus_plugin::{BindContext, Binding, Plugin, PluginError, PluginState};
use std::sync::Arc;

pub use wasi_webgpu_wasmtime::{WasiWebGpuCtx, WasiWebGpuCtxView, WasiWebGpuOptions};

const ID: &str = "webgpu";

/// Serves `wasi:webgpu` to the workloads granted it.
#[derive(Debug, Default)]
pub struct WebGpuPlugin;

impl<T: PluginState + WasiWebGpuCtxView> Plugin<T> for WebGpuPlugin {
    fn id(&self) -> &'static str {
        ID
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &["wasi:webgpu/webgpu@0.3.0-rc.2"]
    }

    fn add_to_linker(&self, linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
        wasi_webgpu_wasmtime::add_to_linker(linker)
    }

    fn bind(&self, ctx: &BindContext<'_>) -> Result<Binding, PluginError> {
        let Some(entry) = ctx.host_interface("wasi", "webgpu") else {
            return Err(PluginError::new(
                ID,
                format!(
                    "component `{}` imports wasi:webgpu, which is granted per workload: list a `wasi:webgpu` host interface to give it the GPU",
                    ctx.component
                ),
            ));
        };
        // Nothing to set yet: a key is a mistake, said now.
        if let Some(key) = entry.config.keys().next() {
            return Err(PluginError::new(ID, format!("unknown setting `{key}`")));
        }
        Ok(Arc::new(()))
    }
}
