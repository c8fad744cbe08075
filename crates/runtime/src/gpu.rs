//! The store's side of `wasi:webgpu` (the `webgpu` feature): the GPU
//! context the `nimbus-webgpu` plugin's host functions reach through
//! [`StoreState`]: the store's resource table and the host's one GPU
//! instance.
//!
//! The instance is made on the first call of any store (so a host that no
//! workload asks for the GPU never loads the Vulkan driver) and shared:
//! adapters and devices live in each store's table.

use crate::wasi::StoreState;
use std::sync::{Arc, OnceLock};
use wasi_webgpu_wasmtime::reexports::{wgpu_core, wgpu_types};
use wasi_webgpu_wasmtime::{WasiWebGpuCtx, WasiWebGpuCtxView, WasiWebGpuOptions};

/// The host's GPU instance: Vulkan only (Mesa's lavapipe serves machines
/// without a GPU).
fn instance() -> &'static Arc<wgpu_core::global::Global> {
    static INSTANCE: OnceLock<Arc<wgpu_core::global::Global>> = OnceLock::new();
    INSTANCE.get_or_init(|| {
        let descriptor = wgpu_types::InstanceDescriptor {
            backends: wgpu_types::Backends::VULKAN,
            ..wgpu_types::InstanceDescriptor::new_without_display_handle()
        };
        Arc::new(wgpu_core::global::Global::new("nimbus", descriptor, None))
    })
}

fn options() -> &'static WasiWebGpuOptions {
    static OPTIONS: OnceLock<WasiWebGpuOptions> = OnceLock::new();
    OPTIONS.get_or_init(WasiWebGpuOptions::default)
}

impl WasiWebGpuCtxView for StoreState {
    fn webgpu_ctx(&mut self) -> WasiWebGpuCtx<'_> {
        WasiWebGpuCtx {
            instance: instance(),
            table: &mut self.table,
            options: options(),
        }
    }
}
