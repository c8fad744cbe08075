//! What a component is, read from its bytes without compiling it: whether
//! it is a valid component at all, and its top-level imports and exports.

/// The four bytes every WebAssembly file, module or component, starts with.
pub const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Why bytes are not a valid component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComponentError {
    /// The bytes do not start with the WebAssembly magic number.
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    /// A core module was given where a component is needed.
    #[error(
        "this is a core WebAssembly module, not a component; build for the `wasm32-wasip2` target \
         (`cargo build --target wasm32-wasip2`) or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    /// The binary ends early or is malformed.
    #[error("the component is truncated or malformed: {0}")]
    Malformed(String),
}

/// Checks the header and structure of `bytes` without compiling, so bad
/// input gets a precise message before any expensive work.
pub fn validate_component_bytes(bytes: &[u8]) -> Result<(), ComponentError> {
    if bytes.len() < 8 || !bytes.starts_with(WASM_MAGIC) {
        return Err(ComponentError::NotWasm);
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err(ComponentError::CoreModule);
    }
    let mut validator = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    validator
        .validate_all(bytes)
        .map_err(|e| ComponentError::Malformed(e.to_string()))?;
    Ok(())
}

/// The top-level import and export names of one component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentWorld {
    /// Imported names, e.g. `wasi:keyvalue/store@0.2.0-draft`.
    pub imports: Vec<String>,
    /// Exported names, e.g. `wasi:http/incoming-handler@0.2.6`.
    pub exports: Vec<String>,
}

/// Reads a component's top-level imports and exports (nested components and
/// modules are skipped).
pub fn component_world(bytes: &[u8]) -> Result<ComponentWorld, ComponentError> {
    use wasmparser::{Parser, Payload};
    let mut world = ComponentWorld::default();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| ComponentError::Malformed(e.to_string()))? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != wasmparser::Encoding::Component {
                    return Err(ComponentError::CoreModule);
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 1 => {
                for import in section {
                    let import = import.map_err(|e| ComponentError::Malformed(e.to_string()))?;
                    world.imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    let export = export.map_err(|e| ComponentError::Malformed(e.to_string()))?;
                    world.exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(world)
}
