//! The workload `nimbus dev` runs for a project: the built component (plus
//! any extra components the config lists, and its service) with the
//! project's config, environment, allowed hosts, volumes and host
//! interfaces, by the rules `wash dev` uses: a component's own config and
//! environment win over the workload's, its `allowedHosts` replace the
//! workload's, and with no `allowedHosts` at all outgoing HTTP may reach any
//! public host (a deployed workload denies by default).

use crate::config::ProjectConfig;
use nimbus_model::{
    ComponentSpec, HostInterface, HostPathVolume, LocalResources, ServiceSpec, Volume, VolumeMount,
    Workload, WorkloadSpec,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The dev workload's namespace.
pub const DEV_NAMESPACE: &str = "dev";

/// The workload for `component` (the freshly built file) in `project_dir`;
/// `built` holds the files built for the `dev.components` that name a
/// `project`, by component name.
pub fn dev_workload(
    name: &str,
    component: &Path,
    built: &BTreeMap<String, PathBuf>,
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
    // Unset under `nimbus dev`: any public host, as `wash dev` allows
    // (restricted addresses stay refused; a deployed workload denies).
    let allowed_hosts = config
        .workload
        .allowed_hosts
        .clone()
        .unwrap_or_else(|| vec!["*".to_string()]);
    let main_resources = LocalResources {
        config: main_config,
        environment: config.workload.environment.clone(),
        allowed_hosts: allowed_hosts.clone(),
        volume_mounts: volume_mounts.clone(),
        ..Default::default()
    };
    let own_image = format!("file://{}", component.display());
    let mut components = Vec::new();
    let service = if config.dev.service == Some(true) {
        // The project is the workload's service (its `wasi:cli/run`).
        Some(ServiceSpec {
            image: own_image,
            local_resources: main_resources.clone(),
            ..Default::default()
        })
    } else {
        components.push(ComponentSpec {
            name: name.to_string(),
            image: own_image,
            local_resources: main_resources.clone(),
            ..Default::default()
        });
        let image = match (&config.dev.service_file, &config.dev.service_image) {
            (Some(file), _) => Some(format!("file://{}", project_dir.join(file).display())),
            (None, Some(image)) => Some(image.clone()),
            (None, None) => None,
        };
        image.map(|image| ServiceSpec {
            image,
            image_pull_policy: config
                .dev
                .service_file
                .is_none()
                .then_some(config.dev.service_pull_policy)
                .flatten(),
            local_resources: main_resources.clone(),
            ..Default::default()
        })
    };
    for extra in &config.dev.components {
        let spec = extra.spec();
        // Its own config and environment over the workload's (its own win),
        // its allowed hosts instead of the workload's when set: wash's rules.
        let mut config_values = config.dev.wasi_config.clone();
        config_values.extend(config.workload.config.clone());
        config_values.extend(spec.config);
        let mut environment = config.workload.environment.clone();
        if let Some(own) = spec.environment {
            environment.config.extend(own.config);
            environment.config_from.extend(own.config_from);
            environment.secret_from.extend(own.secret_from);
        }
        let image = match (built.get(&spec.name), &spec.file, &spec.image) {
            (Some(built), _, _) => format!("file://{}", built.display()),
            (None, Some(file), _) => format!("file://{}", project_dir.join(file).display()),
            (None, None, Some(image)) => image.clone(),
            (None, None, None) => String::new(),
        };
        components.push(ComponentSpec {
            name: spec.name,
            image,
            image_pull_policy: spec.pull_policy,
            max_invocations: spec.max_invocations,
            max_concurrency: spec.max_concurrency,
            local_resources: LocalResources {
                config: config_values,
                environment,
                allowed_hosts: spec.allowed_hosts.unwrap_or_else(|| allowed_hosts.clone()),
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
            service,
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
        .unwrap()
        .0;
        let w = dev_workload(
            "demo",
            Path::new("/p/out.wasm"),
            &BTreeMap::new(),
            &config,
            Path::new("/p"),
        );
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
        .unwrap()
        .0;
        let w = dev_workload(
            "guard",
            Path::new("/p/out.wasm"),
            &BTreeMap::new(),
            &config,
            Path::new("/p"),
        );
        assert_eq!(w.spec.middleware, ["guard"]);
        nimbus_model::validate_workload(&w, "spec").unwrap();
    }

    fn dev(text: &str) -> Workload {
        let (config, _) = parse_config(text, Path::new("p/.wash/config.yaml")).unwrap();
        let workload = dev_workload(
            "app",
            Path::new("/p/out.wasm"),
            &BTreeMap::new(),
            &config,
            Path::new("/p"),
        );
        nimbus_model::validate_workload(&workload, "spec").unwrap();
        workload
    }

    /// `wash dev`'s rules for the components it adds and its defaults.
    #[test]
    fn components_follow_wash_rules_and_outbound_is_open_by_default() {
        let w = dev(
            "dev:\n  components:\n    - name: own\n      image: ghcr.io/x/own:1\n      pullPolicy: Always\n      config: { k: own }\n      environment: { config: { E: own } }\n      allowedHosts: [own.example.com]\n    - name: plain\n      file: plain.wasm\n\
             workload:\n  config: { k: workload, w: x }\n  environment: { config: { E: workload, F: workload } }\n",
        );
        let [main, own, plain] = &w.spec.components[..] else {
            panic!("{:?}", w.spec.components);
        };
        // No `allowedHosts` anywhere: any public host, as under `wash dev`.
        assert_eq!(main.local_resources.allowed_hosts, ["*"]);
        assert_eq!(plain.local_resources.allowed_hosts, ["*"]);
        assert_eq!(own.local_resources.allowed_hosts, ["own.example.com"]);
        assert_eq!(own.image, "ghcr.io/x/own:1");
        assert_eq!(
            own.image_pull_policy,
            Some(nimbus_model::PullPolicy::Always)
        );
        assert_eq!(own.local_resources.config["k"], "own");
        assert_eq!(own.local_resources.config["w"], "x");
        assert_eq!(own.local_resources.environment.config["E"], "own");
        assert_eq!(own.local_resources.environment.config["F"], "workload");
        assert_eq!(plain.image, "file:///p/plain.wasm");
        // An explicit empty list still denies.
        let w = dev("workload:\n  allowedHosts: []\n");
        assert!(
            w.spec.components[0]
                .local_resources
                .allowed_hosts
                .is_empty()
        );
    }

    #[test]
    fn wash_service_keys_make_the_workload_service() {
        let w = dev("dev:\n  service_file: svc/service.wasm\n");
        let service = w.spec.service.expect("a service");
        assert_eq!(service.image, "file:///p/svc/service.wasm");
        assert_eq!(w.spec.components[0].name, "app");
        let w = dev("dev:\n  service_image: ghcr.io/x/svc:1\n  service_pull_policy: never\n");
        let service = w.spec.service.expect("a service");
        assert_eq!(service.image, "ghcr.io/x/svc:1");
        assert_eq!(
            service.image_pull_policy,
            Some(nimbus_model::PullPolicy::Never)
        );
        // `service: true`: the project itself is the service.
        let w = dev("dev:\n  service: true\n  components: [{ name: web, file: web.wasm }]\n");
        assert_eq!(
            w.spec.service.expect("a service").image,
            "file:///p/out.wasm"
        );
        assert_eq!(w.spec.components.len(), 1);
        assert_eq!(w.spec.components[0].name, "web");
    }

    #[test]
    fn project_name_is_a_clean_identifier() {
        assert_eq!(project_name(Path::new("/x/My_Project.v2")), "my-project-v2");
    }
}
