//! Which packages a `wit/` folder uses and neither it nor its `deps/`
//! defines: what a build would stop on (`package 'wasi:keyvalue@0.2.0-draft'
//! not found`).
//!
//! Every file is read with a bound and must be a regular file, so a FIFO or
//! a huge file in a project cannot hang or flood the CLI.

use crate::WitError;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use wit_parser::{PackageName, UnresolvedPackage, UnresolvedPackageGroup};

/// The largest WIT file read (the largest WASI package is about 60 KiB).
const MAX_WIT_FILE_BYTES: u64 = 4 << 20;
/// The largest binary WIT package (`deps/*.wasm`) read.
pub(crate) const MAX_WASM_PACKAGE_BYTES: u64 = 16 << 20;
/// The most entries one folder may hold.
const MAX_ENTRIES: usize = 1024;

/// A WIT package name: `namespace:name`, with an optional version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Package {
    /// `wasi` in `wasi:http@0.2.2`.
    pub namespace: String,
    /// `http` in `wasi:http@0.2.2`.
    pub name: String,
    /// `0.2.2` in `wasi:http@0.2.2`.
    pub version: Option<semver::Version>,
}

impl From<&PackageName> for Package {
    fn from(name: &PackageName) -> Self {
        Package {
            namespace: name.namespace.clone(),
            name: name.name.clone(),
            version: name.version.clone(),
        }
    }
}

impl std::fmt::Display for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.namespace, self.name)?;
        if let Some(version) = &self.version {
            write!(f, "@{version}")?;
        }
        Ok(())
    }
}

/// The packages the WIT in `wit_dir` (its own files and `deps/`) uses but
/// does not define, sorted.
pub fn missing_packages(wit_dir: &Path) -> Result<BTreeSet<Package>, WitError> {
    let mut defined = BTreeSet::new();
    let mut wanted = BTreeSet::new();
    let note = |group: &UnresolvedPackageGroup,
                defined: &mut BTreeSet<Package>,
                wanted: &mut BTreeSet<Package>| {
        for package in std::iter::once(&group.main).chain(&group.nested) {
            note_package(package, defined, wanted);
        }
    };
    note(&parse_dir(wit_dir)?, &mut defined, &mut wanted);
    let deps = wit_dir.join("deps");
    if deps.is_dir() {
        for path in entries(&deps)? {
            if path.is_dir() {
                note(&parse_dir(&path)?, &mut defined, &mut wanted);
            } else if path.extension().is_some_and(|e| e == "wit") {
                note(&parse_files(&[path])?, &mut defined, &mut wanted);
            } else if path.extension().is_some_and(|e| e == "wasm") {
                // A binary package carries every package it uses.
                let bytes =
                    nimbus_model::files::read_bounded_blocking(&path, MAX_WASM_PACKAGE_BYTES)?;
                let decoded = wit_parser::decoding::decode(&bytes)
                    .map_err(|e| WitError::Parse(format!("{}: {e}", path.display())))?;
                for (_, package) in decoded.resolve().packages.iter() {
                    defined.insert(Package::from(&package.name));
                }
            }
        }
    }
    Ok(wanted.difference(&defined).cloned().collect())
}

fn note_package(
    package: &UnresolvedPackage,
    defined: &mut BTreeSet<Package>,
    wanted: &mut BTreeSet<Package>,
) {
    defined.insert(Package::from(&package.name));
    wanted.extend(package.foreign_deps.keys().map(Package::from));
}

/// The entries of `dir`, sorted, bounded in number.
pub(crate) fn entries(dir: &Path) -> Result<Vec<PathBuf>, WitError> {
    let unreadable = |source| WitError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        if paths.len() >= MAX_ENTRIES {
            return Err(WitError::TooManyEntries {
                dir: dir.to_path_buf(),
                limit: MAX_ENTRIES,
            });
        }
        let path = entry.map_err(unreadable)?.path();
        // Dotfiles are an editor's or a tool's, not packages.
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// The package group of the `*.wit` files directly in `dir`.
fn parse_dir(dir: &Path) -> Result<UnresolvedPackageGroup, WitError> {
    let files: Vec<PathBuf> = entries(dir)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wit") && !p.is_dir())
        .collect();
    if files.is_empty() {
        return Err(WitError::Parse(format!(
            "{} holds no .wit file",
            dir.display()
        )));
    }
    parse_files(&files)
}

fn parse_files(files: &[PathBuf]) -> Result<UnresolvedPackageGroup, WitError> {
    let mut map = wit_parser::SourceMap::default();
    for file in files {
        map.push(
            file,
            nimbus_model::files::read_text_bounded(file, MAX_WIT_FILE_BYTES)?,
        );
    }
    map.parse()
        .map_err(|(map, error)| WitError::Parse(one_line(&error.render(&map))))
}

/// wit-parser renders an error as a message and a source snippet; one line
/// with the message and its location is enough here.
fn one_line(rendered: &str) -> String {
    let mut lines = rendered.lines();
    let message = lines.next().unwrap_or_default().trim();
    match lines.find_map(|l| l.trim().strip_prefix("--> ")) {
        Some(location) => format!("{location}: {message}"),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn lists_what_the_world_uses_and_deps_lack() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "world.wit",
            "package acme:app;\nworld app {\n  import wasi:keyvalue/store@0.2.0-draft;\n  import acme:greeting/hello@0.1.0;\n}\n",
        );
        write(
            dir.path(),
            "deps/greeting/hello.wit",
            "package acme:greeting@0.1.0;\ninterface hello { use wasi:io/streams@0.2.12.{input-stream}; }\n",
        );
        let missing: Vec<String> = missing_packages(dir.path())
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(missing, ["wasi:io@0.2.12", "wasi:keyvalue@0.2.0-draft"]);
    }

    #[test]
    fn a_syntax_error_is_one_line_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "world.wit",
            "package acme:app;\nworld app {\n  import\n",
        );
        let error = missing_packages(dir.path()).unwrap_err().to_string();
        assert!(!error.contains('\n'), "{error}");
        assert!(error.contains("world.wit:"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_in_wit_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("world.wit");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let error = missing_packages(dir.path()).unwrap_err().to_string();
        assert!(error.contains("world.wit"), "{error}");
    }
}
