//! The WIT Nimbus embeds: every interface it implements (the WASI 0.2 and
//! 0.3 packages of wasmtime 48, and each capability crate's own WIT), and
//! writing one into a project's `wit/deps/` when no registry answers.
//!
//! A project asks for an exact version (`wasi:http@0.2.2`); Nimbus embeds
//! one release of each line (`wasi:http@0.2.12`). A request the embedded
//! release is compatible with and not older than (the same 0.x minor, or the
//! same major; a pre-release or a 0.0.x only exactly) is served with the
//! embedded text under the requested version. Every reference in it to the
//! embedded version is renamed too: the WASI packages of one release share
//! their version, so `wasi:http@0.2.2` then uses `wasi:io@0.2.2`, and those
//! packages are written the same way. Items newer than the requested version
//! carry `@since` gates, clamped to it; they are harmless to a guest that
//! does not use them, and Nimbus's host implements all of them.

use crate::{Package, WitError};
use semver::Version;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod files {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// One embedded package.
#[derive(Debug)]
pub struct EmbeddedPackage {
    /// Its name and version.
    pub package: Package,
    /// Its files: name and WIT text.
    files: Vec<(&'static str, &'static str)>,
}

/// Every package Nimbus embeds, sorted by name and version.
pub fn embedded_packages() -> &'static [EmbeddedPackage] {
    static INDEX: OnceLock<Vec<EmbeddedPackage>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index: Vec<EmbeddedPackage> = Vec::new();
        for &(name, file, text) in files::FILES {
            let package = parse_name(name);
            match index.iter_mut().find(|p| p.package == package) {
                Some(existing) => existing.files.push((file, text)),
                None => index.push(EmbeddedPackage {
                    package,
                    files: vec![(file, text)],
                }),
            }
        }
        index.sort_by(|a, b| a.package.cmp(&b.package));
        index
    })
}

/// `ns:name@version` as written in a `package` line (by build.rs, from
/// files in this repository: a malformed one is a bug here).
fn parse_name(text: &str) -> Package {
    let (name, version) = match text.split_once('@') {
        Some((name, version)) => (
            name,
            Some(Version::parse(version).expect("an embedded package's version")),
        ),
        None => (text, None),
    };
    let (namespace, name) = name.split_once(':').expect("an embedded package's name");
    Package {
        namespace: namespace.to_string(),
        name: name.to_string(),
        version,
    }
}

/// The embedded package that can stand in for `wanted`: its exact version,
/// else the newest compatible one (for an unversioned request, the newest).
pub(crate) fn find(wanted: &Package) -> Option<&'static EmbeddedPackage> {
    let mut candidates = embedded_packages()
        .iter()
        .filter(|e| e.package.namespace == wanted.namespace && e.package.name == wanted.name);
    let Some(version) = &wanted.version else {
        return candidates.next_back();
    };
    let candidates: Vec<_> = candidates.collect();
    if let Some(exact) = candidates
        .iter()
        .find(|e| e.package.version.as_ref() == Some(version))
    {
        return Some(exact);
    }
    candidates.into_iter().rev().find(|e| {
        e.package
            .version
            .as_ref()
            .is_some_and(|v| compatible(version, v))
    })
}

/// Whether a request for `wanted` may be served by `embedded`: semver
/// compatible, and the embedded release not older (an older one would lack
/// what the project asks for).
fn compatible(wanted: &Version, embedded: &Version) -> bool {
    if !wanted.pre.is_empty() || !embedded.pre.is_empty() {
        return wanted == embedded;
    }
    let same_line = match (wanted.major, wanted.minor) {
        (0, 0) => wanted == embedded,
        (0, minor) => embedded.major == 0 && embedded.minor == minor,
        (major, _) => embedded.major == major,
    };
    same_line && embedded >= wanted
}

impl EmbeddedPackage {
    /// Writes this package into `deps_dir` as `wanted` (its name, at the
    /// version asked for), in a folder named as wkg names them. Returns the
    /// folder.
    pub(crate) fn write_as(&self, wanted: &Package, deps_dir: &Path) -> Result<PathBuf, WitError> {
        let folder = deps_dir.join(folder_name(wanted));
        let failed = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WitError::Write { path, source }
        };
        std::fs::create_dir_all(&folder).map_err(failed(&folder))?;
        let from = self.package.version.as_ref();
        for (file, text) in &self.files {
            let text = match from {
                Some(from) if wanted.version.as_ref() != Some(from) => clamp_gates(
                    &rename_version(text, from, wanted.version.as_ref()),
                    wanted.version.as_ref(),
                ),
                _ => text.to_string(),
            };
            let path = folder.join(file);
            std::fs::write(&path, text).map_err(failed(&path))?;
        }
        Ok(folder)
    }
}

/// `wasi-http-0.2.2`: `ns:name@version` with `:` and `@` as `-`, as wkg
/// names the folders it writes.
fn folder_name(package: &Package) -> String {
    package.to_string().replace([':', '@'], "-")
}

/// `text` with every `@from` (a package version: in the `package` line and
/// in references to the package's own version) made `@to`, or removed when
/// `to` is `None`. A longer version that merely starts with `from` (`@0.2.120`
/// for `0.2.12`) is left alone.
fn rename_version(text: &str, from: &Version, to: Option<&Version>) -> String {
    let needle = format!("@{from}");
    let replacement = to.map(|v| format!("@{v}")).unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let after = &rest[at + needle.len()..];
        let continues = after.chars().next().is_some_and(|c| {
            c.is_ascii_alphanumeric()
                || c == '-'
                || c == '+'
                || (c == '.' && after[1..].starts_with(|d: char| d.is_ascii_digit()))
        });
        out.push_str(&rest[..at]);
        out.push_str(if continues { &needle } else { &replacement });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// `text` with every `@since(version = X)` and `@deprecated(version = X)`
/// later than `to` set to `to`: wit-parser refuses a gate naming a version
/// after the package's own. With no version (`to` is `None`) the gates go.
fn clamp_gates(text: &str, to: Option<&Version>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["@since(version = ", "@deprecated(version = "]
            .iter()
            .filter_map(|gate| rest.find(gate).map(|at| (at, *gate)))
            .min();
        let Some((at, gate)) = next else {
            break;
        };
        let after = &rest[at + gate.len()..];
        let Some(close) = after.find(')') else {
            break;
        };
        let version = Version::parse(after[..close].trim()).ok();
        out.push_str(&rest[..at]);
        match (to, version) {
            (Some(to), Some(version)) if version > *to => {
                out.push_str(gate);
                out.push_str(&to.to_string());
                out.push(')');
            }
            (None, Some(_)) => {}
            _ => out.push_str(&rest[at..at + gate.len() + close + 1]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(text: &str) -> Package {
        parse_name(text)
    }

    #[test]
    fn every_interface_nimbus_implements_is_embedded() {
        let names: Vec<String> = embedded_packages()
            .iter()
            .map(|p| p.package.to_string())
            .collect();
        for expected in [
            "wasi:http@0.2.12",
            "wasi:io@0.2.12",
            "wasi:http@0.3.0",
            "wasi:keyvalue@0.2.0-draft",
            "wasi:blobstore@0.2.0-draft",
            "wasi:config@0.2.0-rc.1",
            "wasi:logging@0.1.0-draft",
            "wasmcloud:messaging@0.2.0",
            "wasmcloud:secrets@0.1.0-draft",
            "wasmcloud:secrets@2.1.0",
            "wasi:otel@0.2.0-rc.2",
        ] {
            assert!(
                names.contains(&expected.to_string()),
                "{expected} in {names:?}"
            );
        }
        // Every embedded package parses on its own.
        for embedded in embedded_packages() {
            let mut map = wit_parser::SourceMap::default();
            for (file, text) in &embedded.files {
                map.push(Path::new(file), *text);
            }
            let group = map.parse().map_err(|(_, e)| e.to_string()).unwrap();
            assert_eq!(Package::from(&group.main.name), embedded.package);
        }
    }

    #[test]
    fn a_request_is_served_by_its_exact_or_a_compatible_version_only() {
        let served = |wanted: &str| find(&package(wanted)).map(|e| e.package.to_string());
        assert_eq!(
            served("wasi:http@0.2.12").as_deref(),
            Some("wasi:http@0.2.12")
        );
        assert_eq!(
            served("wasi:http@0.2.2").as_deref(),
            Some("wasi:http@0.2.12")
        );
        assert_eq!(
            served("wasi:http@0.3.0").as_deref(),
            Some("wasi:http@0.3.0")
        );
        assert_eq!(served("wasi:http@0.4.0"), None);
        // Newer than what is embedded: it would lack what is asked for.
        assert_eq!(served("wasi:http@0.2.20"), None);
        assert_eq!(served("wasmcloud:secrets@2.5.0"), None);
        assert_eq!(
            served("wasmcloud:secrets@2.0.0").as_deref(),
            Some("wasmcloud:secrets@2.1.0")
        );
        assert_eq!(
            served("wasi:keyvalue@0.2.0-draft").as_deref(),
            Some("wasi:keyvalue@0.2.0-draft")
        );
        assert_eq!(served("wasi:keyvalue@0.2.0-draft2"), None);
        assert_eq!(served("acme:greeting@0.1.0"), None);
    }

    #[test]
    fn gates_after_the_version_asked_for_are_clamped_to_it() {
        let text = "@since(version = 0.2.0)\nf: func();\n@since(version = 0.2.12)\ng: func();\n@deprecated(version = 0.2.2)\nh: func();\n";
        assert_eq!(
            clamp_gates(text, Some(&Version::new(0, 2, 1))),
            "@since(version = 0.2.0)\nf: func();\n@since(version = 0.2.1)\ng: func();\n@deprecated(version = 0.2.1)\nh: func();\n"
        );
        assert_eq!(
            clamp_gates(text, None),
            "\nf: func();\n\ng: func();\n\nh: func();\n"
        );
    }

    #[test]
    fn renaming_a_version_touches_that_version_only() {
        let text = "package wasi:io@0.2.12;\nuse wasi:io/error@0.2.12.{error};\nuse wasi:x/y@0.2.120;\nuse wasi:z/w@0.2.12-rc;\n";
        let renamed = rename_version(text, &Version::new(0, 2, 12), Some(&Version::new(0, 2, 2)));
        assert_eq!(
            renamed,
            "package wasi:io@0.2.2;\nuse wasi:io/error@0.2.2.{error};\nuse wasi:x/y@0.2.120;\nuse wasi:z/w@0.2.12-rc;\n"
        );
        assert_eq!(
            rename_version("package wasi:io@0.2.12;", &Version::new(0, 2, 12), None),
            "package wasi:io;"
        );
    }
}
