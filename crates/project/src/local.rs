//! The local projects a dev workload is built from: the project itself and
//! every `dev.components` entry that names a `project` directory. `nimbus
//! dev` builds, watches and reloads each of them; `nimbus graph` finds
//! their components the same way.

use crate::config::{self, BuildConfig, ConfigError, DevComponent, LoadedConfig, WitSection};
use std::path::{Path, PathBuf};

/// One project the dev workload builds.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalProject {
    /// `None` for the project itself; otherwise the workload component
    /// this project's build becomes.
    pub component: Option<String>,
    /// The project directory (canonical).
    pub dir: PathBuf,
    /// How it is built: that project's own dev build settings, with the
    /// entry's `file` as the component path when given.
    pub build: BuildConfig,
    /// Further files (globs relative to `dir`) whose change rebuilds it.
    pub watch: Vec<String>,
    /// Where its WIT is and whether a build fetches what it lacks.
    pub wit: WitSection,
    /// Its config files: a change to one reloads the whole dev config.
    pub config_files: Vec<PathBuf>,
}

impl LocalProject {
    /// How the project is named in messages: the component's name, or the
    /// directory's for the project itself.
    pub fn label(&self) -> String {
        match &self.component {
            Some(name) => name.clone(),
            None => crate::workload::project_name(&self.dir),
        }
    }
}

/// Why a component's project cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LocalProjectError {
    /// The directory is missing or not a directory.
    #[error("`dev.components[{index}].project`: `{}` is not a directory", path.display())]
    NotADirectory {
        /// Index in `dev.components`.
        index: usize,
        /// The directory as resolved.
        path: PathBuf,
    },
    /// The directory holds neither a config nor a `Cargo.toml`.
    #[error(
        "`dev.components[{index}].project`: `{}` is not a project (no .nimbus/config.yaml, .wash/config.yaml or Cargo.toml)",
        path.display()
    )]
    NotAProject {
        /// Index in `dev.components`.
        index: usize,
        /// The directory.
        path: PathBuf,
    },
    /// The component project's own config is invalid.
    #[error("`dev.components[{index}].project`: {source}")]
    Config {
        /// Index in `dev.components`.
        index: usize,
        /// What is wrong with it.
        source: ConfigError,
    },
}

/// Whether `dir` holds something `nimbus build` can build: a project config
/// or a `Cargo.toml`.
pub fn is_project(dir: &Path) -> bool {
    config::project_config_path(dir).is_some() || dir.join("Cargo.toml").is_file()
}

/// Every local project of the dev workload of `loaded`, the project itself
/// first. `user_file` is the user config merged under each component
/// project's own config, as under the main one.
pub fn local_projects(
    loaded: &LoadedConfig,
    user_file: Option<&Path>,
) -> Result<Vec<LocalProject>, LocalProjectError> {
    let root = &loaded.project_dir;
    let mut projects = vec![LocalProject {
        component: None,
        dir: std::fs::canonicalize(root).unwrap_or_else(|_| root.clone()),
        build: loaded.config.dev_build(),
        watch: loaded.config.build.watch.clone(),
        wit: loaded.config.wit.clone(),
        config_files: config_files(loaded),
    }];
    for (index, entry) in loaded.config.dev.components.iter().enumerate() {
        let DevComponent::Full(spec) = entry else {
            continue;
        };
        let Some(project) = &spec.project else {
            continue;
        };
        let joined = root.join(project);
        let dir = std::fs::canonicalize(&joined)
            .ok()
            .filter(|d| d.is_dir())
            .ok_or(LocalProjectError::NotADirectory {
                index,
                path: joined.clone(),
            })?;
        if !is_project(&dir) {
            return Err(LocalProjectError::NotAProject { index, path: dir });
        }
        let own = config::load(&dir, user_file)
            .map_err(|source| LocalProjectError::Config { index, source })?;
        let mut build = own.config.dev_build();
        if let Some(file) = &spec.file {
            // `file` is written relative to the main project.
            build.component_path = Some(root.join(file));
        }
        let mut watch = own.config.build.watch.clone();
        watch.extend(spec.watch.iter().cloned());
        projects.push(LocalProject {
            component: Some(spec.name.clone()),
            dir,
            build,
            watch,
            wit: own.config.wit.clone(),
            config_files: config_files(&own),
        });
    }
    Ok(projects)
}

fn config_files(loaded: &LoadedConfig) -> Vec<PathBuf> {
    loaded
        .project_file
        .iter()
        .chain(loaded.user_file.iter())
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn component_projects_are_found_with_their_own_build_and_watch() {
        let root = tempfile::tempdir().unwrap();
        let main = root.path().join("guard");
        let app = root.path().join("app");
        write(
            &main.join(".nimbus/config.yaml"),
            "build:\n  watch: [static/**]\ndev:\n  components:\n    - name: app\n      project: ../app\n      watch: [templates/*.html]\n    - name: other\n      file: other.wasm\n  middleware: [self]\n",
        );
        write(
            &app.join(".nimbus/config.yaml"),
            "build:\n  command: make\n  component_path: out/app.wasm\n  watch: [Makefile]\n",
        );
        let loaded = config::load(&main, None).unwrap();
        let projects = local_projects(&loaded, None).unwrap();
        assert_eq!(projects.len(), 2, "{projects:?}");
        assert_eq!(projects[0].component, None);
        assert_eq!(projects[0].watch, ["static/**"]);
        let app_project = &projects[1];
        assert_eq!(app_project.component.as_deref(), Some("app"));
        assert_eq!(app_project.dir, std::fs::canonicalize(&app).unwrap());
        assert_eq!(app_project.build.command.as_deref(), Some("make"));
        assert_eq!(app_project.watch, ["Makefile", "templates/*.html"]);
        assert_eq!(
            app_project.config_files,
            [std::fs::canonicalize(app.join(".nimbus/config.yaml")).unwrap()]
        );
    }

    #[test]
    fn a_component_project_that_is_no_project_is_refused_by_index() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("empty")).unwrap();
        for (target, needle) in [
            ("missing", "`dev.components[0].project`: "),
            ("empty", "is not a project (no .nimbus/config.yaml"),
        ] {
            write(
                &root.path().join(".nimbus/config.yaml"),
                &format!("dev:\n  components:\n    - name: app\n      project: {target}\n"),
            );
            let loaded = config::load(root.path(), None).unwrap();
            let err = local_projects(&loaded, None).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
