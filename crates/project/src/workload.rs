//! The workload `nimbus dev` runs for a project: the built component (plus
//! any extra components the config lists) with the project's config,
//! environment, allowed hosts, volumes and host interfaces.

use crate::config::ProjectConfig;
use nimbus_model::{
    ComponentSpec, HostInterface, HostPathVolume, LocalResources, Volume, VolumeMount, Workload,
    WorkloadSpec,
};
use std::path::Path;

/// The dev workload's namespace.
pub const DEV_NAMESPACE: &str = "dev";

/// The workload for `component` (the freshly built file) in `project_dir`.
pub fn dev_workload(
    name: &str,
    component: &Path,
    config: &ProjectConfig,
    project_dir: &Path,
) -> Workload {
    let volumes: Vec<Volume> = config
        .dev
        .volumes
        .iter()
        .enumerate()
        .map(|(i, v)| Volume {
            name: format!("volume-{i}"),
            host_path: Some(HostPathVolume {
                path: project_dir
                    .join(&v.host_path)
                    .to_string_lossy()
                    .into_owned(),
            }),
            empty_dir: None,
        })
        .collect();
    let volume_mounts: Vec<VolumeMount> = config
        .dev
        .volumes
        .iter()
        .enumerate()
        .map(|(i, v)| VolumeMount {
            name: format!("volume-{i}"),
            mount_path: v.guest_path.clone(),
            read_only: v.read_only,
        })
        .collect();
    let mut main_config = config.dev.wasi_config.clone();
    main_config.extend(config.workload.config.clone());
    let mut components = vec![ComponentSpec {
        name: name.to_string(),
        image: format!("file://{}", component.display()),
        local_resources: LocalResources {
            config: main_config,
            environment: config.workload.environment.clone(),
            allowed_hosts: config.workload.allowed_hosts.clone(),
            volume_mounts: volume_mounts.clone(),
            ..Default::default()
        },
        ..Default::default()
    }];
    for extra in &config.dev.components {
        let spec = extra.spec();
        components.push(ComponentSpec {
            name: spec.name,
            image: format!("file://{}", project_dir.join(&spec.file).display()),
            local_resources: LocalResources {
                config: spec.config,
                allowed_hosts: spec.allowed_hosts,
                volume_mounts: volume_mounts.clone(),
                ..Default::default()
            },
            ..Default::default()
        });
    }
    let mut host_interfaces = config.dev.host_interfaces.clone();
    if !host_interfaces.iter().any(|i| i.is("wasi", "http")) {
        host_interfaces.push(HostInterface {
            namespace: "wasi".into(),
            package: "http".into(),
            interfaces: vec!["incoming-handler".into()],
            ..Default::default()
        });
    }
    let middleware = config
        .dev
        .middleware
        .iter()
        .map(|m| {
            if m == "self" {
                name.to_string()
            } else {
                m.clone()
            }
        })
        .collect();
    Workload {
        namespace: DEV_NAMESPACE.into(),
        name: name.to_string(),
        spec: WorkloadSpec {
            components,
            host_interfaces,
            volumes,
            middleware,
            ..Default::default()
        },
    }
}

/// A workload name for the project: its directory name, reduced to
/// lower-case letters, digits and dashes.
pub fn project_name(project_dir: &Path) -> String {
    let dir = std::fs::canonicalize(project_dir).unwrap_or_else(|_| project_dir.to_path_buf());
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').to_string();
    if name.is_empty() { "app".into() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    #[test]
    fn maps_project_sections_onto_the_workload() {
        let config = parse_config(
            "dev:\n  volumes: [{ host_path: data, guest_path: /data }]\n  components: [extra/helper.wasm]\n  wasi_config: { a: dev }\n\
             workload:\n  config: { a: workload, b: x }\n  allowedHosts: [example.com]\n  environment: { config: { K: v } }\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        let w = dev_workload("demo", Path::new("/p/out.wasm"), &config, Path::new("/p"));
        assert_eq!(w.id(), "dev/demo");
        let main = &w.spec.components[0];
        assert_eq!(main.image, "file:///p/out.wasm");
        assert_eq!(main.local_resources.config["a"], "workload");
        assert_eq!(main.local_resources.environment.config["K"], "v");
        assert_eq!(main.local_resources.volume_mounts[0].mount_path, "/data");
        assert_eq!(w.spec.components[1].name, "helper");
        assert!(w.spec.http_interface().is_some());
        nimbus_model::validate_workload(&w, "spec").unwrap();
    }

    #[test]
    fn dev_middleware_names_the_project_as_self() {
        let config = parse_config(
            "dev:\n  components: [{ name: app, file: app.wasm }]\n  middleware: [self]\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        let w = dev_workload("guard", Path::new("/p/out.wasm"), &config, Path::new("/p"));
        assert_eq!(w.spec.middleware, ["guard"]);
        nimbus_model::validate_workload(&w, "spec").unwrap();
    }

    #[test]
    fn project_name_is_a_clean_identifier() {
        assert_eq!(project_name(Path::new("/x/My_Project.v2")), "my-project-v2");
    }
}
