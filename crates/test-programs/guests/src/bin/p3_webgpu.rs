//! `wasi:webgpu@0.3.0-rc.2` from a `wasi:http/service@0.3.0` component
//! (wasip3 0.9): `GET /double?n=1,2,3` doubles the numbers in a WGSL
//! compute shader on the host's GPU and answers them (`2,4,6`); `503 no GPU
//! adapter` when the host has no Vulkan device; `502` with the error for
//! anything else that fails. `GET /misuse` ends a compute pass twice, a
//! guest mistake the host must survive.

#[path = "../shared/p3_response.rs"]
mod response;

use response::text_response;
use wasip3::http::types::{ErrorCode, Request, Response};

wit_bindgen_p3::generate!({
    inline: "
        package nimbus:test-webgpu;
        world guest {
            import wasi:webgpu/webgpu@0.3.0-rc.2;
        }
    ",
    path: "../../capabilities/webgpu/wit",
    world: "nimbus:test-webgpu/guest",
    runtime_path: "wit_bindgen_p3::rt",
    generate_all,
});

use wasi::webgpu::webgpu as gpu;

const NO_ADAPTER: &str = "no GPU adapter";

/// Doubles each element in place, one invocation per element.
const SHADER: &str = "
@group(0) @binding(0) var<storage, read_write> data: array<u32>;

@compute @workgroup_size(1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    data[id.x] = data[id.x] * 2u;
}
";

fn err(e: impl std::fmt::Debug) -> String {
    format!("{e:?}")
}

async fn double(input: &[u32]) -> Result<Vec<u32>, String> {
    let adapter = gpu::get_gpu()
        .request_adapter(None)
        .await
        .ok_or_else(|| NO_ADAPTER.to_string())?;
    let device = adapter.request_device(None).await.map_err(err)?;
    let bytes: Vec<u8> = input.iter().flat_map(|n| n.to_le_bytes()).collect();
    let size = bytes.len() as u64;
    let data = device.create_buffer(&gpu::GpuBufferDescriptor {
        size,
        usage: gpu::GpuBufferUsage::STORAGE
            | gpu::GpuBufferUsage::COPY_SRC
            | gpu::GpuBufferUsage::COPY_DST,
        mapped_at_creation: None,
        label: Some("data".into()),
    });
    let readback = device.create_buffer(&gpu::GpuBufferDescriptor {
        size,
        usage: gpu::GpuBufferUsage::MAP_READ | gpu::GpuBufferUsage::COPY_DST,
        mapped_at_creation: None,
        label: Some("readback".into()),
    });
    let queue = device.queue();
    queue
        .write_buffer_with_copy(&data, 0, &bytes, None, None)
        .map_err(err)?;
    let module = device.create_shader_module(&gpu::GpuShaderModuleDescriptor {
        code: SHADER.into(),
        compilation_hints: None,
        label: None,
    });
    let pipeline = device.create_compute_pipeline(gpu::GpuComputePipelineDescriptor {
        compute: gpu::GpuProgrammableStage {
            module: &module,
            entry_point: Some("main".into()),
            constants: None,
        },
        layout: gpu::GpuLayoutMode::Auto,
        label: None,
    });
    let layout = pipeline.get_bind_group_layout(0);
    let group = device.create_bind_group(&gpu::GpuBindGroupDescriptor {
        layout: &layout,
        entries: vec![gpu::GpuBindGroupEntry {
            binding: 0,
            resource: gpu::GpuBindingResource::GpuBuffer(&data),
        }],
        label: None,
    });
    let encoder = device.create_command_encoder(None);
    let pass = encoder.begin_compute_pass(None);
    pass.set_pipeline(&pipeline);
    pass.set_bind_group(0, Some(&group), None, None, None)
        .map_err(err)?;
    pass.dispatch_workgroups(input.len() as u32, None, None);
    pass.end();
    encoder.copy_buffer_to_buffer(&data, Some(0), &readback, Some(0), Some(size));
    let commands = encoder.finish(None);
    queue.submit(&[&commands]);
    readback
        .map_async(gpu::GpuMapMode::READ, None, None)
        .await
        .map_err(err)?;
    let out = readback
        .get_mapped_range_get_with_copy(None, None)
        .map_err(err)?;
    Ok(out
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Ends one compute pass twice.
async fn misuse() -> Result<(), String> {
    let adapter = gpu::get_gpu()
        .request_adapter(None)
        .await
        .ok_or_else(|| NO_ADAPTER.to_string())?;
    let device = adapter.request_device(None).await.map_err(err)?;
    let encoder = device.create_command_encoder(None);
    let pass = encoder.begin_compute_pass(None);
    pass.end();
    pass.end();
    Ok(())
}

struct Service;

wasip3::http::service::export!(Service);

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path_and_query = request.get_path_with_query().unwrap_or_default();
        let numbers: Vec<u32> = path_and_query
            .split_once("n=")
            .map(|(_, list)| list.split(',').filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default();
        if path_and_query.starts_with("/misuse") {
            let (status, body) = match misuse().await {
                Ok(()) => (200, "survived".to_string()),
                Err(error) => (502, error),
            };
            return Ok(text_response(status, body.into_bytes()));
        }
        let (status, body) = if numbers.is_empty() {
            (400, "give numbers: /double?n=1,2,3".to_string())
        } else {
            match double(&numbers).await {
                Ok(doubled) => (
                    200,
                    doubled
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                Err(error) if error == NO_ADAPTER => (503, error),
                Err(error) => (502, error),
            }
        };
        Ok(text_response(status, body.into_bytes()))
    }
}

fn main() {
    unreachable!("a component, not a command")
}
