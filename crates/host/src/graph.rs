//! A picture of how a workload is wired: which component the HTTP ingress
//! reaches, the middleware in order, which component calls which through
//! what interface, and what each reaches outside the workload (plugins,
//! outgoing HTTP). Rendered as a Mermaid flowchart or as terminal text.
//!
//! Built from the workload and the import/export names of each component
//! ([`component_world`] reads them from the bytes without compiling), by
//! the rules the host applies at start: component links are the model's
//! link plan ([`nimbus_model::links::plan`]) and plugins are found by the
//! interfaces the host's plugins declare, so the picture is what runs. A
//! workload whose components cannot be linked has no picture: its error.

use crate::host::SERVICE_NAME;
use crate::plugins::{PluginDefaults, builtin};
use crate::workload::Workload;
use crate::workload::middleware::P3_HANDLER;
use nimbus_model::links::{self, ComponentInterfaces, LinkError};
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub use nimbus_model::component::{ComponentWorld, component_world};

/// A node of the picture.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Ingress(Vec<String>),
    Component { name: String, role: Role },
    Plugin(String),
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Middleware(usize),
    Handler,
    Component,
    Service,
}

/// An arrow: `from` uses `to` through the interfaces in `labels`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edge {
    from: usize,
    to: usize,
    labels: Vec<String>,
}

impl Edge {
    /// The interfaces, those of one package and version folded together:
    /// `wasi:keyvalue/{store,atomics}@0.2.0-draft`.
    fn label(&self) -> String {
        let mut groups: Vec<(String, Vec<String>, String)> = Vec::new();
        for label in &self.labels {
            let parsed = label.split_once('/').and_then(|(package, rest)| {
                let (name, version) = rest.split_once('@').unwrap_or((rest, ""));
                (!name.contains(' ')).then_some((package, name, version))
            });
            let Some((package, name, version)) = parsed else {
                groups.push((label.clone(), Vec::new(), String::new()));
                continue;
            };
            match groups
                .iter_mut()
                .find(|(p, names, v)| p == package && v == version && !names.is_empty())
            {
                Some((_, names, _)) => names.push(name.to_string()),
                None => groups.push((package.into(), vec![name.into()], version.into())),
            }
        }
        let text: Vec<String> = groups
            .into_iter()
            .map(|(package, names, version)| {
                let at = if version.is_empty() {
                    String::new()
                } else {
                    format!("@{version}")
                };
                match names.len() {
                    0 => package,
                    1 => format!("{package}/{}{at}", names[0]),
                    _ => format!("{package}/{{{}}}{at}", names.join(",")),
                }
            })
            .collect();
        text.join(", ")
    }
}

/// The wiring of one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadGraph {
    title: String,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

/// Host-provided imports that are not drawn: all but sockets (drawn as
/// the loopback to a service) and outgoing HTTP (drawn as outbound).
fn plumbing(import: &str) -> bool {
    links::host_provided(import)
        && !import.starts_with("wasi:sockets/")
        && !is_outgoing_http(import)
}

fn is_outgoing_http(name: &str) -> bool {
    name.starts_with("wasi:http/outgoing-handler@") || name.starts_with("wasi:http/client@")
}

impl WorkloadGraph {
    /// The wiring of `workload`, given each component's world by name.
    /// Components missing from `worlds` are drawn without links; components
    /// that cannot be linked (two exporters of one import, a circle) are
    /// the start's error.
    pub fn build(
        workload: &Workload,
        worlds: &BTreeMap<String, ComponentWorld>,
    ) -> Result<Self, LinkError> {
        let spec = &workload.spec;
        let empty = ComponentWorld::default();
        let world = |name: &str| worlds.get(name).unwrap_or(&empty);
        let mut graph = Self {
            title: workload.id(),
            nodes: Vec::new(),
            edges: Vec::new(),
        };
        let handler = spec
            .components
            .iter()
            .find(|c| {
                !spec.middleware.contains(&c.name)
                    && world(&c.name)
                        .exports
                        .iter()
                        .any(|e| links::is_http_handler(e))
            })
            .map(|c| c.name.clone());

        // Nodes: the ingress, the HTTP chain outermost first, the rest.
        let ingress = spec
            .http_interface()
            .map(|_| graph.add(Node::Ingress(spec.http_hosts())));
        let mut chain: Vec<&str> = spec.middleware.iter().map(String::as_str).collect();
        chain.extend(handler.as_deref());
        let mut index_of = BTreeMap::new();
        for (position, name) in chain.iter().enumerate() {
            let role = if Some(*name) == handler.as_deref() {
                Role::Handler
            } else {
                Role::Middleware(position + 1)
            };
            let node = graph.add(Node::Component {
                name: name.to_string(),
                role,
            });
            index_of.insert(name.to_string(), node);
        }
        for component in &spec.components {
            if !index_of.contains_key(&component.name) {
                let node = graph.add(Node::Component {
                    name: component.name.clone(),
                    role: Role::Component,
                });
                index_of.insert(component.name.clone(), node);
            }
        }

        let service = spec.service.as_ref().map(|_| {
            let node = graph.add(Node::Component {
                name: SERVICE_NAME.into(),
                role: Role::Service,
            });
            index_of.insert(SERVICE_NAME.to_string(), node);
            node
        });

        // The HTTP path: ingress → a → b → … → handler.
        let http_label = |name: &str| {
            world(name)
                .exports
                .iter()
                .find(|e| links::is_http_handler(e))
                .cloned()
                .unwrap_or_else(|| "wasi:http".into())
        };
        if let (Some(ingress), Some(first)) = (ingress, chain.first()) {
            let label = http_label(first);
            graph.link(ingress, index_of[*first], label);
        }
        for pair in chain.windows(2) {
            let (outer, inner) = (pair[0], pair[1]);
            let label = if world(outer).imports.iter().any(|i| i == P3_HANDLER) {
                P3_HANDLER.to_string()
            } else {
                format!("{} (in memory)", http_label(inner))
            };
            graph.link(index_of[outer], index_of[inner], label);
        }

        // Component to component: the link plan the host starts with.
        let interfaces: Vec<ComponentInterfaces<'_>> = spec
            .components
            .iter()
            .map(|c| ComponentInterfaces {
                name: &c.name,
                imports: world(&c.name).imports.clone(),
                exports: world(&c.name).exports.clone(),
            })
            .collect();
        let plan = links::plan(&interfaces)?;
        let linked: BTreeMap<(&str, &str), &str> = spec
            .components
            .iter()
            .zip(&plan)
            .flat_map(|(c, links)| {
                links.iter().map(|(interface, exporter)| {
                    (
                        (c.name.as_str(), interface.as_str()),
                        spec.components[*exporter].name.as_str(),
                    )
                })
            })
            .collect();
        let plugins = builtin(
            &PluginDefaults::default(),
            &crate::plugins::otel::GuestTelemetry::default(),
        );
        let mut plugin_nodes: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut outbound = None;
        let parts = spec
            .components
            .iter()
            .map(|c| (c.name.as_str(), &c.local_resources))
            .chain(
                spec.service
                    .as_ref()
                    .map(|s| (SERVICE_NAME, &s.local_resources)),
            );
        for (name, local_resources) in parts {
            let from = index_of[name];
            let is_middleware = spec.middleware.iter().any(|m| m == name);
            for import in &world(name).imports {
                // A link wins over the host and plugins, as at start.
                if let Some(exporter) = linked.get(&(name, import.as_str())) {
                    graph.link(from, index_of[*exporter], import.clone());
                    continue;
                }
                if plumbing(import) || import == P3_HANDLER {
                    continue;
                }
                // With a service, TCP to loopback stays in the workload.
                if let Some(service) = service
                    && from != service
                    && import.starts_with("wasi:sockets/tcp@")
                {
                    graph.link(from, service, "loopback TCP (virtual)".into());
                    continue;
                }
                if let Some(plugin) = plugins.iter().find(|p| p.interfaces().contains(&&**import)) {
                    let to = *plugin_nodes
                        .entry(plugin.id())
                        .or_insert_with(|| graph.add(Node::Plugin(plugin.id().into())));
                    graph.link(from, to, import.clone());
                    continue;
                }
                let allowed = &local_resources.allowed_hosts;
                if is_outgoing_http(import) && (!is_middleware || !allowed.is_empty()) {
                    let to = *outbound.get_or_insert_with(|| graph.add(Node::Outbound));
                    let hosts = if allowed.is_empty() {
                        "none allowed".to_string()
                    } else {
                        allowed.join(", ")
                    };
                    graph.link(from, to, format!("{import} ({hosts})"));
                }
            }
            // Exports a plugin drives (message handlers): the plugin calls in.
            for export in &world(name).exports {
                if let Some(plugin) = plugins.iter().find(|p| p.exports().contains(&&**export)) {
                    let plugin_node = *plugin_nodes
                        .entry(plugin.id())
                        .or_insert_with(|| graph.add(Node::Plugin(plugin.id().into())));
                    graph.link(plugin_node, from, export.clone());
                }
            }
        }
        Ok(graph)
    }

    fn add(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn link(&mut self, from: usize, to: usize, label: String) {
        match self.edges.iter_mut().find(|e| e.from == from && e.to == to) {
            Some(edge) if !edge.labels.contains(&label) => edge.labels.push(label),
            Some(_) => {}
            None => self.edges.push(Edge {
                from,
                to,
                labels: vec![label],
            }),
        }
    }

    fn node_label(&self, index: usize) -> String {
        match &self.nodes[index] {
            Node::Ingress(hosts) if hosts.is_empty() => "HTTP ingress".into(),
            Node::Ingress(hosts) => format!("HTTP ingress: {}", hosts.join(", ")),
            Node::Component { name, role } => match role {
                Role::Middleware(n) => format!("{name} (middleware {n})"),
                Role::Handler => format!("{name} (handler)"),
                Role::Component => name.clone(),
                Role::Service => format!("{name} (wasi:cli/run)"),
            },
            Node::Plugin(id) => format!("{id} plugin"),
            Node::Outbound => "outgoing HTTP".into(),
        }
    }

    /// A Mermaid flowchart (left to right).
    pub fn mermaid(&self) -> String {
        let mut out = format!("---\ntitle: {}\n---\nflowchart LR\n", self.title);
        for (i, node) in self.nodes.iter().enumerate() {
            let label = escape_mermaid(&self.node_label(i));
            let _ = match node {
                Node::Ingress(_) | Node::Outbound => writeln!(out, "    n{i}([\"{label}\"])"),
                Node::Component { .. } => writeln!(out, "    n{i}[\"{label}\"]"),
                Node::Plugin(_) => writeln!(out, "    n{i}[(\"{label}\")]"),
            };
        }
        for edge in &self.edges {
            let _ = writeln!(
                out,
                "    n{} -->|\"{}\"| n{}",
                edge.from,
                escape_mermaid(&edge.label()),
                edge.to
            );
        }
        out
    }

    /// Terminal text: the HTTP path top to bottom, then each component's
    /// other links.
    pub fn ascii(&self) -> String {
        let mut out = format!("workload {}\n", self.title);
        let mut on_path = Vec::new();
        // Follow the HTTP path from the ingress, if there is one.
        let mut current = self
            .nodes
            .iter()
            .position(|n| matches!(n, Node::Ingress(_)));
        let is_path_edge = |e: &Edge| {
            matches!(self.nodes[e.from], Node::Ingress(_))
                || matches!(
                    (&self.nodes[e.from], &self.nodes[e.to]),
                    (
                        Node::Component {
                            role: Role::Middleware(_),
                            ..
                        },
                        Node::Component {
                            role: Role::Middleware(_) | Role::Handler,
                            ..
                        }
                    )
                )
        };
        while let Some(node) = current {
            on_path.push(node);
            let _ = writeln!(out, "[{}]", self.node_label(node));
            self.side_links(&mut out, node, &is_path_edge);
            current = self
                .edges
                .iter()
                .find(|e| e.from == node && is_path_edge(e))
                .map(|e| {
                    let _ = writeln!(out, "   │ {}\n   ▼", e.label());
                    e.to
                });
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if matches!(node, Node::Component { .. }) && !on_path.contains(&i) {
                let _ = writeln!(out, "[{}]", self.node_label(i));
                self.side_links(&mut out, i, &is_path_edge);
            }
        }
        out
    }

    fn side_links(&self, out: &mut String, node: usize, is_path_edge: &dyn Fn(&Edge) -> bool) {
        let links: Vec<&Edge> = self
            .edges
            .iter()
            .filter(|e| (e.from == node || e.to == node) && !is_path_edge(e))
            .filter(|e| !matches!(self.nodes[e.from], Node::Ingress(_)))
            .collect();
        for (k, edge) in links.iter().enumerate() {
            let branch = if k + 1 == links.len() { "└" } else { "├" };
            let (arrow, other) = if edge.from == node {
                ("──▶", edge.to)
            } else {
                ("◀──", edge.from)
            };
            let _ = writeln!(
                out,
                "   {branch}─ {} {arrow} {}",
                edge.label(),
                self.node_label(other)
            );
        }
    }
}

/// The wiring as data, for the console to draw: nodes and labelled edges.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GraphView {
    /// Ingress, components, plugins, outbound.
    pub nodes: Vec<NodeView>,
    /// Who uses whom, through what.
    pub edges: Vec<EdgeView>,
}

/// One node of a [`GraphView`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeView {
    /// `n0`, `n1`, …
    pub id: String,
    /// `ingress`, `middleware`, `handler`, `component`, `service`,
    /// `plugin` or `outbound`.
    pub kind: &'static str,
    /// What `nimbus graph` writes in the node.
    pub label: String,
    /// The component the node is, whose figures it shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// A middleware's place in the chain, 1 outermost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<usize>,
    /// A plugin node's plugin id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
}

/// One edge of a [`GraphView`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EdgeView {
    /// The using node's id.
    pub from: String,
    /// The used node's id.
    pub to: String,
    /// The interfaces, folded as in `nimbus graph`.
    pub label: String,
}

impl WorkloadGraph {
    /// The graph as data.
    pub fn view(&self) -> GraphView {
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let mut view = NodeView {
                    id: format!("n{i}"),
                    kind: "",
                    label: self.node_label(i),
                    component: None,
                    order: None,
                    plugin: None,
                };
                match node {
                    Node::Ingress(_) => view.kind = "ingress",
                    Node::Outbound => view.kind = "outbound",
                    Node::Plugin(id) => {
                        view.kind = "plugin";
                        view.plugin = Some(id.clone());
                    }
                    Node::Component { name, role } => {
                        view.component = Some(name.clone());
                        view.kind = match role {
                            Role::Middleware(order) => {
                                view.order = Some(*order);
                                "middleware"
                            }
                            Role::Handler => "handler",
                            Role::Component => "component",
                            Role::Service => "service",
                        };
                    }
                }
                view
            })
            .collect();
        let edges = self
            .edges
            .iter()
            .map(|edge| EdgeView {
                from: format!("n{}", edge.from),
                to: format!("n{}", edge.to),
                label: edge.label(),
            })
            .collect();
        GraphView { nodes, edges }
    }
}

/// Mermaid labels are quoted; quotes inside become `#quot;`.
fn escape_mermaid(text: &str) -> String {
    text.replace('"', "#quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::ComponentSpec;

    fn world(imports: &[&str], exports: &[&str]) -> ComponentWorld {
        ComponentWorld {
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn draws_the_service_and_the_loopback_to_it() {
        let mut workload = Workload::single_http_component("ns", "app", "app.wasm", "app.test");
        workload.spec.service = Some(crate::workload::ServiceSpec {
            image: "cache.wasm".into(),
            ..Default::default()
        });
        let worlds = BTreeMap::from([
            (
                "app".to_string(),
                world(
                    &["wasi:sockets/tcp@0.2.6", "wasi:sockets/network@0.2.6"],
                    &["wasi:http/incoming-handler@0.2.6"],
                ),
            ),
            (
                SERVICE_NAME.to_string(),
                world(
                    &["wasi:sockets/tcp@0.2.6", "wasi:keyvalue/store@0.2.0-draft"],
                    &["wasi:cli/run@0.2.6"],
                ),
            ),
        ]);
        let mermaid = WorkloadGraph::build(&workload, &worlds).unwrap().mermaid();
        assert!(
            mermaid.contains("n2[\"service (wasi:cli/run)\"]"),
            "{mermaid}"
        );
        assert!(
            mermaid.contains("n1 -->|\"loopback TCP (virtual)\"| n2"),
            "{mermaid}"
        );
        assert!(
            mermaid.contains("n2 -->|\"wasi:keyvalue/store@0.2.0-draft\"| n3"),
            "{mermaid}"
        );
        assert!(!mermaid.contains("n2 -->|\"loopback"), "{mermaid}");
    }

    /// The graph draws the start's link plan: a link wins over what the
    /// host provides, and components that cannot be linked have no picture.
    #[test]
    fn component_links_are_the_start_plan() {
        let mut workload = Workload::single_http_component("ns", "app", "app.wasm", "app.test");
        for name in ["env", "other"] {
            workload.spec.components.push(ComponentSpec {
                name: name.into(),
                image: format!("{name}.wasm"),
                ..Default::default()
            });
        }
        let environment = "wasi:cli/environment@0.2.6";
        let mut worlds = BTreeMap::from([
            (
                "app".to_string(),
                world(&[environment], &["wasi:http/incoming-handler@0.2.6"]),
            ),
            ("env".to_string(), world(&[], &[environment])),
            ("other".to_string(), world(&[], &[])),
        ]);
        let mermaid = WorkloadGraph::build(&workload, &worlds).unwrap().mermaid();
        assert!(
            mermaid.contains(&format!("n1 -->|\"{environment}\"| n2")),
            "{mermaid}"
        );
        worlds.insert("other".to_string(), world(&[], &[environment]));
        let error = WorkloadGraph::build(&workload, &worlds).unwrap_err();
        assert!(matches!(error, LinkError::Ambiguous { .. }), "{error}");
    }

    #[test]
    fn draws_the_chain_links_plugins_and_outbound() {
        let mut workload = Workload::single_http_component("ns", "app", "app.wasm", "app.test");
        workload.spec.components[0].local_resources.allowed_hosts = vec!["api.example".into()];
        for name in ["auth", "lib"] {
            workload.spec.components.push(ComponentSpec {
                name: name.into(),
                image: format!("{name}.wasm"),
                ..Default::default()
            });
        }
        workload.spec.middleware = vec!["auth".into()];
        let worlds = BTreeMap::from([
            (
                "app".to_string(),
                world(
                    &[
                        "wasi:cli/environment@0.2.6",
                        "wasi:keyvalue/store@0.2.0-draft",
                        "my:lib/math@1.0.0",
                        "wasi:keyvalue/atomics@0.2.0-draft",
                        "wasi:http/outgoing-handler@0.2.6",
                        "wasi:tls/types@0.2.0-draft",
                        "wasmcloud:postgres/types@0.1.1-draft",
                        "wasmcloud:postgres/query@0.1.1-draft",
                    ],
                    &["wasi:http/incoming-handler@0.2.6"],
                ),
            ),
            (
                "auth".to_string(),
                world(&[P3_HANDLER], &["wasi:http/handler@0.3.0"]),
            ),
            (
                "lib".to_string(),
                world(
                    &["nimbus:websocket/connections@0.1.0"],
                    &["my:lib/math@1.0.0", "nimbus:websocket/handler@0.1.0"],
                ),
            ),
        ]);
        let graph = WorkloadGraph::build(&workload, &worlds).unwrap();
        let mermaid = graph.mermaid();
        // The WebSocket plugin calls the handler in and is called out to.
        assert!(mermaid.contains("[(\"websocket plugin\")]"), "{mermaid}");
        assert!(
            mermaid.contains("-->|\"nimbus:websocket/handler@0.1.0\"| n3")
                && mermaid.contains("n3 -->|\"nimbus:websocket/connections@0.1.0\"|"),
            "{mermaid}"
        );
        assert!(
            mermaid.contains("n0([\"HTTP ingress: app.test\"])"),
            "{mermaid}"
        );
        assert!(mermaid.contains("n1[\"auth (middleware 1)\"]"), "{mermaid}");
        assert!(mermaid.contains("n2[\"app (handler)\"]"), "{mermaid}");
        assert!(
            mermaid.contains("n0 -->|\"wasi:http/handler@0.3.0\"| n1"),
            "{mermaid}"
        );
        assert!(
            mermaid.contains("n1 -->|\"wasi:http/handler@0.3.0\"| n2"),
            "{mermaid}"
        );
        assert!(
            mermaid.contains("n2 -->|\"my:lib/math@1.0.0\"| n3"),
            "{mermaid}"
        );
        assert!(mermaid.contains("[(\"keyvalue plugin\")]"), "{mermaid}");
        assert!(
            mermaid.contains("|\"wasi:keyvalue/{store,atomics}@0.2.0-draft\"|"),
            "one arrow per pair, one package folded: {mermaid}"
        );
        assert!(mermaid.contains("(api.example)"), "{mermaid}");
        assert!(mermaid.contains("[(\"tls plugin\")]"), "{mermaid}");
        assert!(
            mermaid.contains("|\"wasi:tls/types@0.2.0-draft\"|"),
            "{mermaid}"
        );
        #[cfg(feature = "postgres")]
        assert!(
            mermaid.contains("[(\"postgres plugin\")]")
                && mermaid.contains("|\"wasmcloud:postgres/{types,query}@0.1.1-draft\"|"),
            "{mermaid}"
        );
        assert!(
            !mermaid.contains("wasi:cli"),
            "plumbing is not drawn: {mermaid}"
        );
        let ascii = graph.ascii();
        let order: Vec<usize> = ["[HTTP ingress", "[auth", "[app", "[lib"]
            .iter()
            .map(|n| {
                ascii
                    .find(n)
                    .unwrap_or_else(|| panic!("{n} missing: {ascii}"))
            })
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{ascii}");

        // The console's data: the same nodes, kinds and edges.
        let view = graph.view();
        let kinds: Vec<(&str, Option<&str>)> = view
            .nodes
            .iter()
            .map(|n| (n.kind, n.component.as_deref()))
            .collect();
        assert_eq!(
            &kinds[..4],
            &[
                ("ingress", None),
                ("middleware", Some("auth")),
                ("handler", Some("app")),
                ("component", Some("lib"))
            ]
        );
        assert_eq!(view.nodes[1].order, Some(1));
        let keyvalue = view
            .nodes
            .iter()
            .find(|n| n.plugin.as_deref() == Some("keyvalue"))
            .expect("keyvalue plugin node");
        assert_eq!(keyvalue.kind, "plugin");
        assert!(view.edges.iter().any(|e| e.from == "n2"
            && e.to == keyvalue.id
            && e.label == "wasi:keyvalue/{store,atomics}@0.2.0-draft"));
        assert_eq!(view.edges.len(), mermaid.matches("-->").count());
    }

    #[test]
    fn reads_top_level_names_only() {
        let bytes = wat::parse_str(
            r#"(component
                (import "wasi:cli/environment@0.2.0" (instance))
                (component $inner (import "nested:x/y" (instance)))
                (instance $i (instantiate $inner (with "nested:x/y" (instance))))
                (export "my:pkg/api@1.0.0" (instance $i))
            )"#,
        )
        .unwrap();
        let world = component_world(&bytes).unwrap();
        assert_eq!(world.imports, ["wasi:cli/environment@0.2.0"]);
        assert_eq!(world.exports, ["my:pkg/api@1.0.0"]);
        assert!(component_world(b"\0asm\x01\0\0\0").is_err());
    }
}
