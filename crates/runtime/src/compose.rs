//! Static composition: the links a workload would make at run time
//! ([`crate::workload::links`]) made ahead of time, producing ONE component
//! in which calls between the parts are direct.
//!
//! The same resolution rules apply (one exporter per interface, no
//! cycles); the composition graph is built with wac-graph: every part is
//! instantiated once, each linked import gets its exporter's instance
//! export as argument, imports nobody in the composition satisfies stay
//! imports of the result (the host and its plugins provide them), and the
//! result exports what the root exports. The parts then share one store:
//! the root's environment, config and limits.

use crate::workload::LinkError;
use crate::workload::links::{self, ComponentInterfaces};
use nimbus_model::component_world;
use std::collections::BTreeSet;
#[cfg(feature = "compose")]
use wac_graph::{CompositionGraph, EncodeOptions, types::Package};

/// One component offered to a composition.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    /// Its name in the workload.
    pub name: &'a str,
    /// Its bytes.
    pub bytes: &'a [u8],
}

/// One component made of several.
#[derive(Debug, Clone)]
pub struct Composition {
    /// The composed component.
    pub bytes: Vec<u8>,
    /// The parts inside it besides the root, in the order given.
    pub absorbed: Vec<String>,
}

/// Why a composition could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A part is not a component.
    #[error("component `{component}`: {message}")]
    NotAComponent {
        /// The part.
        component: String,
        /// What is wrong.
        message: String,
    },
    /// The parts cannot be linked.
    #[error(transparent)]
    Links(#[from] LinkError),
    /// No part by that name.
    #[error("no component named `{0}` to compose around")]
    UnknownRoot(String),
    /// The root imports nothing the other parts export.
    #[error(
        "component `{0}` imports nothing the other components export: there is nothing to compose"
    )]
    NothingToCompose(String),
    /// wac-graph refused the composition.
    #[error("cannot compose `{root}`: {message}")]
    Graph {
        /// The root.
        root: String,
        /// wac-graph's explanation, with its causes.
        message: String,
    },
    /// This build of nimbus has no composer.
    #[error(
        "composing components is not in this build of nimbus (rebuild it with the cargo feature `compose`)"
    )]
    NotBuilt,
}

/// The interfaces of every part, as linking sees them.
fn interfaces<'a>(parts: &[Part<'a>]) -> Result<Vec<ComponentInterfaces<'a>>, ComposeError> {
    parts
        .iter()
        .map(|part| {
            let world =
                component_world(part.bytes).map_err(|error| ComposeError::NotAComponent {
                    component: part.name.to_string(),
                    message: error.to_string(),
                })?;
            Ok(ComponentInterfaces {
                name: part.name,
                imports: world.imports,
                exports: world.exports,
            })
        })
        .collect()
}

/// The parts that import from others and that no other part imports from:
/// what a workload composes around.
pub fn roots(parts: &[Part<'_>]) -> Result<Vec<String>, ComposeError> {
    let plan = links::plan(&interfaces(parts)?)?;
    Ok(links::roots(&plan)
        .into_iter()
        .map(|i| parts[i].name.to_string())
        .collect())
}

/// Composes `root` with every part it links to, directly or through other
/// parts, into one component.
pub fn compose(parts: &[Part<'_>], root: &str) -> Result<Composition, ComposeError> {
    let plan = links::plan(&interfaces(parts)?)?;
    let root_index = parts
        .iter()
        .position(|p| p.name == root)
        .ok_or_else(|| ComposeError::UnknownRoot(root.to_string()))?;
    if plan[root_index].is_empty() {
        return Err(ComposeError::NothingToCompose(root.to_string()));
    }
    // Everything reachable from the root through links.
    let mut included = BTreeSet::from([root_index]);
    let mut pending = vec![root_index];
    while let Some(index) = pending.pop() {
        for (_, exporter) in &plan[index] {
            if included.insert(*exporter) {
                pending.push(*exporter);
            }
        }
    }
    let bytes = encode(parts, root, root_index, &plan, &included)?;
    Ok(Composition {
        bytes,
        absorbed: included
            .into_iter()
            .filter(|&i| i != root_index)
            .map(|i| parts[i].name.to_string())
            .collect(),
    })
}

/// Without the `compose` feature there is no encoder.
#[cfg(not(feature = "compose"))]
fn encode(
    _parts: &[Part<'_>],
    _root: &str,
    _root_index: usize,
    _plan: &[Vec<(String, usize)>],
    _included: &BTreeSet<usize>,
) -> Result<Vec<u8>, ComposeError> {
    Err(ComposeError::NotBuilt)
}

/// Encodes the `included` parts as one component with wac-graph: one
/// instantiation per part, `plan`'s links as instantiation arguments, the
/// root's exports as the result's.
#[cfg(feature = "compose")]
fn encode(
    parts: &[Part<'_>],
    root: &str,
    root_index: usize,
    plan: &[Vec<(String, usize)>],
    included: &BTreeSet<usize>,
) -> Result<Vec<u8>, ComposeError> {
    let graph_error = |message: String| ComposeError::Graph {
        root: root.to_string(),
        message,
    };
    let mut graph = CompositionGraph::new();
    let mut instances = std::collections::BTreeMap::new();
    for &index in included {
        let part = &parts[index];
        // Package names only label the parts inside the encoding.
        let package = Package::from_bytes(
            &format!("nimbus:part{index}"),
            None,
            part.bytes.to_vec(),
            graph.types_mut(),
        )
        .map_err(|e| ComposeError::NotAComponent {
            component: part.name.to_string(),
            message: format!("{e:#}"),
        })?;
        let package = graph
            .register_package(package)
            .map_err(|e| graph_error(format!("{:#}", anyhow::Error::from(e))))?;
        instances.insert(index, graph.instantiate(package));
    }
    for &index in included {
        for (interface, exporter) in &plan[index] {
            let export = graph
                .alias_instance_export(instances[exporter], interface)
                .map_err(|e| graph_error(format!("{:#}", anyhow::Error::from(e))))?;
            graph
                .set_instantiation_argument(instances[&index], interface, export)
                .map_err(|e| {
                    graph_error(format!(
                        "`{}` cannot take `{interface}` from `{}`: {:#}",
                        parts[index].name,
                        parts[*exporter].name,
                        anyhow::Error::from(e)
                    ))
                })?;
        }
    }
    let root_exports = component_world(parts[root_index].bytes)
        .map_err(|error| ComposeError::NotAComponent {
            component: root.to_string(),
            message: error.to_string(),
        })?
        .exports;
    for name in root_exports {
        let export = graph
            .alias_instance_export(instances[&root_index], &name)
            .map_err(|e| graph_error(format!("{:#}", anyhow::Error::from(e))))?;
        graph
            .export(export, &name)
            .map_err(|e| graph_error(format!("{:#}", anyhow::Error::from(e))))?;
    }
    graph
        .encode(EncodeOptions::default())
        .map_err(|e| graph_error(format!("{:#}", anyhow::Error::from(e))))
}
