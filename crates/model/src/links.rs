//! How the components of one workload link to each other, decided from
//! their import and export names alone: an import another component
//! exports is linked to it, even one the host could provide (two
//! exporters, or a circle, is an error); the HTTP handler interfaces are
//! never linked (they belong to the ingress and middleware chains); the
//! rest the host provides itself ([`host_provided`]) or a plugin does. The runtime links by this plan, composition composes by it,
//! and `nimbus graph` draws it.

use std::collections::BTreeMap;

/// Why a workload's components cannot be linked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Two or more components export what a third imports.
    #[error(
        "component `{importer}` imports `{interface}`, which {} all export; a workload can link an interface to one exporter only",
        quoted_list(exporters)
    )]
    Ambiguous {
        /// The importing component.
        importer: String,
        /// The interface.
        interface: String,
        /// Every component exporting it.
        exporters: Vec<String>,
    },
    /// Components import from each other in a circle.
    #[error("components link in a cycle: {0}; a component cannot reach itself through its imports")]
    Cycle(String),
    /// An exporter lacks a function or resource the importer expects.
    #[error(
        "component `{importer}` imports `{interface}` from `{exporter}`, which does not export {item}"
    )]
    Mismatch {
        /// The importing component.
        importer: String,
        /// The exporting component.
        exporter: String,
        /// The interface.
        interface: String,
        /// What is missing or different, e.g. "function `greet` with 1 parameter(s)".
        item: String,
    },
}

fn quoted_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}

/// What linking needs to know of one component: its name and the
/// interfaces it imports and exports.
pub struct ComponentInterfaces<'a> {
    /// The component's name in the workload.
    pub name: &'a str,
    /// Its top-level imports, fully qualified.
    pub imports: Vec<String>,
    /// Its top-level exports, fully qualified.
    pub exports: Vec<String>,
}

/// Interfaces the host itself provides (wasmtime-wasi and
/// wasmtime-wasi-http), never a plugin: the packages every component may
/// import without a host interface entry.
pub const HOST_PACKAGES: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:io/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "wasi:http/",
];

/// Packages the host provides as experimental drafts, with the host
/// interface entry (`namespace:package`) a workload opts in with: they may
/// change, and a component importing one starts only where its workload
/// lists that entry.
pub const EXPERIMENTAL_PACKAGES: &[(&str, &str)] =
    &[("wasi:tls/", "wasi:tls"), ("wasi:webgpu/", "wasi:webgpu")];

/// The opt-in entry of `interface` when it is experimental (see
/// [`EXPERIMENTAL_PACKAGES`]).
pub fn experimental(interface: &str) -> Option<&'static str> {
    EXPERIMENTAL_PACKAGES
        .iter()
        .find(|(package, _)| interface.starts_with(package))
        .map(|(_, entry)| *entry)
}

/// Whether the host itself provides `interface` (see [`HOST_PACKAGES`]).
pub fn host_provided(interface: &str) -> bool {
    HOST_PACKAGES.iter().any(|p| interface.starts_with(p))
}

/// Whether `interface` is one of the HTTP handler interfaces a component
/// serves requests through (P2 `incoming-handler`, P3 `handler`).
pub fn is_http_handler(interface: &str) -> bool {
    interface.starts_with("wasi:http/incoming-handler@")
        || interface.starts_with("wasi:http/handler@")
}

/// Interfaces never linked between components: the HTTP handler
/// interfaces belong to the ingress and to middleware chains.
fn linkable(interface: &str) -> bool {
    !is_http_handler(interface)
}

/// For each component (same order as given), the imports another component
/// satisfies: `(interface, index of the exporter)`.
pub type LinkPlan = Vec<Vec<(String, usize)>>;

/// Resolves every import that another component of the workload exports.
pub fn plan(components: &[ComponentInterfaces<'_>]) -> Result<LinkPlan, LinkError> {
    let mut exporters: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, component) in components.iter().enumerate() {
        for export in component.exports.iter().filter(|e| linkable(e)) {
            exporters.entry(export).or_default().push(index);
        }
    }
    let mut plan: LinkPlan = Vec::with_capacity(components.len());
    for (index, component) in components.iter().enumerate() {
        let mut links = Vec::new();
        for import in component.imports.iter().filter(|i| linkable(i)) {
            let others: Vec<usize> = exporters
                .get(import.as_str())
                .into_iter()
                .flatten()
                .copied()
                .filter(|&e| e != index)
                .collect();
            match others.as_slice() {
                [] => {}
                [exporter] => links.push((import.clone(), *exporter)),
                _ => {
                    return Err(LinkError::Ambiguous {
                        importer: component.name.to_string(),
                        interface: import.clone(),
                        exporters: others
                            .iter()
                            .map(|&e| components[e].name.to_string())
                            .collect(),
                    });
                }
            }
        }
        plan.push(links);
    }
    if let Some(cycle) = find_cycle(&plan) {
        let steps: Vec<String> = cycle
            .iter()
            .map(|(from, interface, to)| {
                format!(
                    "`{}` imports `{interface}` from `{}`",
                    components[*from].name, components[*to].name
                )
            })
            .collect();
        return Err(LinkError::Cycle(steps.join(", ")));
    }
    Ok(plan)
}

/// The first cycle found, as `(importer, interface, exporter)` steps.
fn find_cycle(plan: &LinkPlan) -> Option<Vec<(usize, String, usize)>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        node: usize,
        plan: &LinkPlan,
        marks: &mut [Mark],
        path: &mut Vec<(usize, String, usize)>,
    ) -> Option<Vec<(usize, String, usize)>> {
        marks[node] = Mark::OnPath;
        for (interface, next) in &plan[node] {
            path.push((node, interface.clone(), *next));
            match marks[*next] {
                Mark::OnPath => {
                    let start = path.iter().position(|(n, _, _)| n == next).unwrap_or(0);
                    return Some(path[start..].to_vec());
                }
                Mark::New => {
                    if let Some(cycle) = visit(*next, plan, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
            path.pop();
        }
        marks[node] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; plan.len()];
    for start in 0..plan.len() {
        if marks[start] == Mark::New {
            let mut path = Vec::new();
            if let Some(cycle) = visit(start, plan, &mut marks, &mut path) {
                return Some(cycle);
            }
        }
    }
    None
}

/// The order to prepare `among` in so that every exporter comes before its
/// importers (the plan is acyclic); ties keep the given order.
pub fn exporters_first(plan: &LinkPlan, among: &[usize]) -> Vec<usize> {
    fn visit(node: usize, plan: &LinkPlan, among: &[usize], seen: &mut Vec<usize>) {
        if seen.contains(&node) || !among.contains(&node) {
            return;
        }
        for (_, exporter) in &plan[node] {
            visit(*exporter, plan, among, seen);
        }
        if !seen.contains(&node) {
            seen.push(node);
        }
    }
    let mut order = Vec::with_capacity(among.len());
    for &node in among {
        visit(node, plan, among, &mut order);
    }
    order
}

/// The components that import from others and that no component imports
/// from: the roots a composition is built around.
pub fn roots(plan: &LinkPlan) -> Vec<usize> {
    (0..plan.len())
        .filter(|&i| !plan[i].is_empty() && !plan.iter().flatten().any(|(_, e)| *e == i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component<'a>(name: &'a str, imports: &[&str], exports: &[&str]) -> ComponentInterfaces<'a> {
        ComponentInterfaces {
            name,
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn imports_another_component_exports_are_linked_and_the_rest_left_to_plugins() {
        let plan = plan(&[
            component(
                "app",
                &["x:y/greet", "wasi:keyvalue/store@0.2.0-draft"],
                &["wasi:http/incoming-handler@0.2.6"],
            ),
            component("lib", &[], &["x:y/greet"]),
        ])
        .unwrap();
        assert_eq!(plan, vec![vec![("x:y/greet".to_string(), 1)], vec![]]);
    }

    #[test]
    fn two_exporters_of_one_import_are_refused_naming_all_three() {
        let error = plan(&[
            component("app", &["x:y/greet"], &[]),
            component("one", &[], &["x:y/greet"]),
            component("two", &[], &["x:y/greet"]),
        ])
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "component `app` imports `x:y/greet`, which `one` and `two` all export; a workload can link an interface to one exporter only"
        );
    }

    #[test]
    fn a_cycle_is_spelled_out() {
        let error = plan(&[
            component("a", &["x:y/one"], &["x:y/three"]),
            component("b", &["x:y/two"], &["x:y/one"]),
            component("c", &["x:y/three"], &["x:y/two"]),
        ])
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "components link in a cycle: `a` imports `x:y/one` from `b`, `b` imports `x:y/two` from `c`, `c` imports `x:y/three` from `a`; a component cannot reach itself through its imports"
        );
    }

    #[test]
    fn http_handlers_are_never_linked_and_exporters_come_first() {
        let plan = plan(&[
            component(
                "mw",
                &["wasi:http/handler@0.3.0", "x:y/a"],
                &["wasi:http/handler@0.3.0"],
            ),
            component("app", &["x:y/b"], &["wasi:http/handler@0.3.0", "x:y/a"]),
            component("lib", &[], &["x:y/b"]),
        ])
        .unwrap();
        assert_eq!(plan[0], vec![("x:y/a".to_string(), 1)]);
        assert_eq!(exporters_first(&plan, &[0, 1, 2]), vec![2, 1, 0]);
        assert_eq!(exporters_first(&plan, &[1, 2]), vec![2, 1]);
    }
}
