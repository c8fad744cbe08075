//! `nimbus inspect`: a component's imports and exports, as WIT-style text
//! or JSON, plus which HTTP world (if any) Nimbus would serve it as.

use anyhow::Context as _;
use clap::Args;
use nimbus_host::artifact::Digest;
use serde::Serialize;
use std::path::PathBuf;
use wit_parser::{Resolve, WorldItem, WorldKey};

/// Arguments of `nimbus inspect`.
#[derive(Args)]
pub(crate) struct InspectCommand {
    /// The component (`.wasm`).
    path: PathBuf,
    /// Output format: WIT-style text (`table`), `json` or `yaml`.
    #[arg(short, long, value_enum, default_value = "table")]
    output: super::OutputFormat,
    /// Same as `-o json`.
    #[arg(long, hide = true, conflicts_with = "output")]
    json: bool,
    // `--max-component-mb`.
    #[command(flatten)]
    limit: super::ComponentLimitArgs,
}

#[derive(Serialize)]
struct Report {
    path: String,
    size: usize,
    digest: String,
    http: Option<&'static str>,
    imports: Vec<Item>,
    exports: Vec<Item>,
}

#[derive(Serialize)]
struct Item {
    name: String,
    kind: &'static str,
    functions: Vec<String>,
    /// An experimental interface's opt-in host interface entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    experimental: Option<&'static str>,
}

impl InspectCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let bytes = super::read_component(&self.path, self.limit.bytes())?;
        let decoded = wit_component::decode(&bytes).with_context(|| {
            format!(
                "cannot decode the component types of `{}`",
                self.path.display()
            )
        })?;
        let resolve = decoded.resolve();
        let world = &resolve.worlds[decoded.package_world()?];
        let items = |map: &wit_parser::IndexMap<WorldKey, WorldItem>| {
            map.iter()
                .filter_map(|(k, v)| item(resolve, k, v))
                .collect::<Vec<_>>()
        };
        let imports = items(&world.imports);
        let exports = items(&world.exports);
        let http = if exports
            .iter()
            .any(|e| e.name.starts_with("wasi:http/handler@0.3"))
        {
            Some("p3")
        } else if exports
            .iter()
            .any(|e| e.name.starts_with("wasi:http/incoming-handler@0.2"))
        {
            Some("p2")
        } else {
            None
        };
        let report = Report {
            path: self.path.display().to_string(),
            size: bytes.len(),
            digest: Digest::of(&bytes).to_string(),
            http,
            imports,
            exports,
        };
        let format = if self.json {
            super::OutputFormat::Json
        } else {
            self.output
        };
        if !super::print_structured(format, &report)? {
            print_text(&report)?;
        }
        Ok(())
    }
}

trait PackageWorld {
    fn package_world(&self) -> anyhow::Result<wit_parser::WorldId>;
}

impl PackageWorld for wit_component::DecodedWasm {
    fn package_world(&self) -> anyhow::Result<wit_parser::WorldId> {
        match self {
            wit_component::DecodedWasm::Component(_, world) => Ok(*world),
            wit_component::DecodedWasm::WitPackage(..) => {
                anyhow::bail!("this is a WIT package, not a runnable component")
            }
        }
    }
}

fn item(resolve: &Resolve, key: &WorldKey, item: &WorldItem) -> Option<Item> {
    match item {
        WorldItem::Interface { id, .. } => {
            let name = resolve.name_world_key(key);
            Some(Item {
                experimental: nimbus_model::links::experimental(&name),
                name,
                kind: "interface",
                functions: resolve.interfaces[*id].functions.keys().cloned().collect(),
            })
        }
        WorldItem::Function(f) => Some(Item {
            name: f.name.clone(),
            kind: "function",
            functions: Vec::new(),
            experimental: None,
        }),
        WorldItem::Type { .. } => None,
    }
}

fn print_text(report: &Report) -> Result<(), crate::StdoutError> {
    outln!(
        "// {} ({} bytes, {})",
        report.path,
        report.size,
        report.digest
    )?;
    match report.http {
        Some(kind) => outln!("// serves HTTP as wasi:http {kind}")?,
        None => outln!("// exports no wasi:http handler")?,
    }
    outln!("world component {{")?;
    for (direction, items) in [("import", &report.imports), ("export", &report.exports)] {
        for item in items.iter() {
            if let Some(entry) = item.experimental {
                outln!(
                    "  // experimental: served only to workloads listing a `{entry}` host interface"
                )?;
            }
            match item.kind {
                "function" => outln!("  {direction} {}: func;", item.name)?,
                _ if item.functions.is_empty() => outln!("  {direction} {};", item.name)?,
                _ => outln!(
                    "  {direction} {}; // {}",
                    item.name,
                    item.functions.join(", ")
                )?,
            }
        }
    }
    outln!("}}")
}
