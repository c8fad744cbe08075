//! The language toolchains a build needs beside cargo, and what they need
//! installed before the build command runs.
//!
//! A project with a `package.json` is a Node.js project (TypeScript or
//! JavaScript through componentize-js): its npm dependencies go into
//! `node_modules/`. A project with a `requirements.txt` is a Python project
//! (componentize-py): a virtual environment is made in `.venv/` and the
//! requirements installed into it. Either install runs again when the
//! manifests differ from what the last one installed. The build command
//! then runs with the toolchain's `bin` folder first on its `PATH`, so
//! `componentize-py` or `tsc` need no path. A toolchain that is not
//! installed is named in one line, never as a shell's `not found`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A toolchain found from a project's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// `package.json`: npm.
    Node,
    /// `requirements.txt`: a virtual environment and pip.
    Python,
}

/// The file, inside what was installed, recording the manifests it was
/// installed from.
const INSTALLED_RECORD: &str = ".nimbus-installed";

/// One thing to run before the build.
pub struct SetupStep {
    /// What it does, for the progress line.
    pub description: &'static str,
    /// The command.
    pub command: Command,
    /// Its command line, for errors.
    pub line: String,
    /// It makes the virtual environment (a failure removes what it left).
    pub makes_environment: bool,
}

impl Toolchain {
    /// The toolchain of the project in `dir` built by `command`: none for
    /// a cargo project (a `Cargo.toml`, or a build command that runs cargo),
    /// whatever other manifests it holds.
    pub fn detect(dir: &Path, command: &str) -> Option<Self> {
        if dir.join("Cargo.toml").is_file() || command.trim_start().starts_with("cargo ") {
            None
        } else if dir.join("package.json").is_file() {
            Some(Self::Node)
        } else if dir.join("requirements.txt").is_file() {
            Some(Self::Python)
        } else {
            None
        }
    }

    /// The one line said when `program`, which the build runs, is not
    /// installed: the toolchain itself, or a tool the project should have
    /// installed.
    pub fn missing(self, program: &str) -> String {
        match self {
            Self::Node if ["node", "npm", "npx"].contains(&program) => format!(
                "this project builds with Node.js (it has a package.json) but `{program}` is not installed: install Node.js 20 or later with npm, then build again"
            ),
            Self::Python if ["python3", "python", "pip", "pip3"].contains(&program) => format!(
                "this project builds with Python (it has a requirements.txt) but `{program}` is not installed: install Python 3.10 or later with its venv module, then build again"
            ),
            Self::Node => format!(
                "the build command runs `{program}`, which is neither in node_modules/.bin nor installed: add it to package.json's dependencies, or fix build.command"
            ),
            Self::Python => format!(
                "the build command runs `{program}`, which is neither in .venv/bin nor installed: add it to requirements.txt, or fix build.command"
            ),
        }
    }

    /// The one line said when a virtual environment could not be made
    /// (`cause`: the last line the venv module printed).
    pub fn venv_failed(cause: &str) -> String {
        let cause = cause.trim();
        let cause = if cause.is_empty() { "it failed" } else { cause };
        format!(
            "python3 cannot make a virtual environment ({cause}): install its venv module (on Debian or Ubuntu: apt-get install python3-venv), then build again"
        )
    }

    /// Folders put first on the build command's `PATH`.
    pub fn bin_dirs(self, dir: &Path) -> Vec<PathBuf> {
        match self {
            Self::Node => vec![dir.join("node_modules").join(".bin")],
            Self::Python => vec![dir.join(".venv").join("bin")],
        }
    }

    /// `PATH` for the build command: [`bin_dirs`](Self::bin_dirs), then
    /// `inherited` (the build's own `PATH`).
    pub fn path_variable(self, dir: &Path, inherited: OsString) -> OsString {
        let dirs = self
            .bin_dirs(dir)
            .into_iter()
            .chain(std::env::split_paths(&inherited));
        std::env::join_paths(dirs).unwrap_or(inherited)
    }

    /// What must run before the build: nothing when the dependencies are
    /// installed and current.
    pub fn setup_steps(self, dir: &Path) -> Vec<SetupStep> {
        match self {
            Self::Node => {
                if dir.join("node_modules").is_dir() && self.installed_current(dir) {
                    return Vec::new();
                }
                let mut command = Command::new("npm");
                command
                    .args(["install", "--prefer-offline", "--no-audit", "--no-fund"])
                    .current_dir(dir);
                vec![SetupStep {
                    description: "installing npm dependencies",
                    command,
                    line: "npm install --prefer-offline --no-audit --no-fund".into(),
                    makes_environment: false,
                }]
            }
            Self::Python => {
                let venv = dir.join(".venv");
                let mut steps = Vec::new();
                if !venv.join("bin").join("python").exists() {
                    let mut command = Command::new("python3");
                    command.args(["-m", "venv", ".venv"]).current_dir(dir);
                    steps.push(SetupStep {
                        description: "making a virtual environment in .venv",
                        command,
                        line: "python3 -m venv .venv".into(),
                        makes_environment: true,
                    });
                } else if self.installed_current(dir) {
                    return Vec::new();
                }
                let mut command = Command::new(venv.join("bin").join("python"));
                command
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--disable-pip-version-check",
                        "--requirement",
                        "requirements.txt",
                    ])
                    .current_dir(dir);
                steps.push(SetupStep {
                    description: "installing requirements.txt into .venv",
                    command,
                    line: ".venv/bin/python -m pip install --requirement requirements.txt".into(),
                    makes_environment: false,
                });
                steps
            }
        }
    }

    /// Records that the setup steps succeeded: what the manifests held
    /// then, which the next build compares.
    pub fn setup_done(self, dir: &Path) {
        if let Some(manifests) = self.manifests(dir) {
            // Losing the record only costs a reinstall next time.
            let _ = std::fs::write(self.record(dir), manifests);
        }
    }

    /// Whether the manifests are as they were at the last install.
    fn installed_current(self, dir: &Path) -> bool {
        let recorded = std::fs::read(self.record(dir)).ok();
        recorded.is_some() && recorded == self.manifests(dir)
    }

    /// Where the install is recorded, inside what it installed (removing
    /// that removes the record).
    fn record(self, dir: &Path) -> PathBuf {
        match self {
            Self::Node => dir.join("node_modules").join(INSTALLED_RECORD),
            Self::Python => dir.join(".venv").join(INSTALLED_RECORD),
        }
    }

    /// The manifests' contents, each after its name (npm rewrites its lock
    /// file during an install: the record is taken after).
    fn manifests(self, dir: &Path) -> Option<Vec<u8>> {
        let names: &[&str] = match self {
            Self::Node => &["package.json", "package-lock.json"],
            Self::Python => &["requirements.txt"],
        };
        let mut all = Vec::new();
        for name in names {
            all.extend_from_slice(name.as_bytes());
            all.push(0);
            match std::fs::read(dir.join(name)) {
                Ok(bytes) => all.extend_from_slice(&bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => return None,
            }
            all.push(0);
        }
        Some(all)
    }

    /// Where the toolchain's components usually land, newest first, when
    /// `build.component_path` is not set.
    pub fn output_dirs(self) -> &'static [&'static str] {
        &["dist", "build"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_names_the_toolchain_and_cargo_wins() {
        let dir = tempfile::tempdir().unwrap();
        let detect = |command: &str| Toolchain::detect(dir.path(), command);
        assert_eq!(detect("make"), None);
        std::fs::write(dir.path().join("requirements.txt"), "x\n").unwrap();
        assert_eq!(detect("make"), Some(Toolchain::Python));
        std::fs::write(dir.path().join("package.json"), "{}").unwrap();
        assert_eq!(detect("make"), Some(Toolchain::Node));
        // A Rust project keeps its cargo build, whatever else it holds.
        assert_eq!(detect("cargo build --target wasm32-wasip2"), None);
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        assert_eq!(detect("make"), None);
    }

    #[test]
    fn npm_installs_until_what_it_installed_is_what_the_manifests_say() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package.json"), "{}").unwrap();
        let steps = Toolchain::Node.setup_steps(dir.path());
        assert_eq!(steps.len(), 1);
        assert_eq!(
            steps[0].line,
            "npm install --prefer-offline --no-audit --no-fund"
        );
        std::fs::create_dir(dir.path().join("node_modules")).unwrap();
        assert_eq!(Toolchain::Node.setup_steps(dir.path()).len(), 1);
        Toolchain::Node.setup_done(dir.path());
        assert!(Toolchain::Node.setup_steps(dir.path()).is_empty());
        // A lock file that appears (a pull, another install) is a change.
        std::fs::write(dir.path().join("package-lock.json"), "{}").unwrap();
        assert_eq!(Toolchain::Node.setup_steps(dir.path()).len(), 1);
        Toolchain::Node.setup_done(dir.path());
        assert!(Toolchain::Node.setup_steps(dir.path()).is_empty());
        // So is removing node_modules.
        std::fs::remove_dir_all(dir.path().join("node_modules")).unwrap();
        assert_eq!(Toolchain::Node.setup_steps(dir.path()).len(), 1);
    }

    #[test]
    fn python_makes_the_environment_then_installs_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("requirements.txt"), "a==1\n").unwrap();
        let lines = |dir: &Path| -> Vec<String> {
            Toolchain::Python
                .setup_steps(dir)
                .into_iter()
                .map(|s| s.line)
                .collect()
        };
        assert_eq!(
            lines(dir.path()),
            [
                "python3 -m venv .venv",
                ".venv/bin/python -m pip install --requirement requirements.txt"
            ]
        );
        // An environment whose install was not recorded is filled again.
        std::fs::create_dir_all(dir.path().join(".venv/bin")).unwrap();
        std::fs::write(dir.path().join(".venv/bin/python"), "").unwrap();
        assert_eq!(lines(dir.path()).len(), 1);
        Toolchain::Python.setup_done(dir.path());
        assert!(lines(dir.path()).is_empty());
        std::fs::write(dir.path().join("requirements.txt"), "a==2\n").unwrap();
        assert_eq!(lines(dir.path()).len(), 1);
    }

    #[test]
    fn the_build_path_starts_with_the_toolchain_bin() {
        let dir = Path::new("/p");
        let path = Toolchain::Python.path_variable(dir, "/usr/bin:/bin".into());
        let first = std::env::split_paths(&path).next().unwrap();
        assert_eq!(first, Path::new("/p/.venv/bin"));
        assert_eq!(
            std::env::split_paths(&path).nth(1).unwrap(),
            Path::new("/usr/bin")
        );
        assert!(Toolchain::Node.missing("npm").contains("install Node.js"));
        assert!(
            Toolchain::Python
                .missing("componentize-py")
                .contains("add it to requirements.txt")
        );
    }
}
