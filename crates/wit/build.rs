//! Embeds the WIT of every interface Nimbus implements, for offline use:
//! the standard WASI packages in `embedded/` (one package per file) and each
//! capability crate's own WIT (`../capabilities/*/wit/*.wit`, and
//! `wit-<version>/` beside it for another version it serves; one package per
//! directory). Writes `$OUT_DIR/embedded.rs`: a list of (package, file name,
//! text), the text pulled in with `include_str!`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let mut entries = Vec::new();

    let embedded = manifest_dir.join("embedded");
    println!("cargo:rerun-if-changed={}", embedded.display());
    for file in wit_files(&embedded) {
        let package = package_line(&file)
            .unwrap_or_else(|| panic!("{} has no `package` line", file.display()));
        entries.push((package, file));
    }

    let capabilities = manifest_dir.join("../capabilities");
    println!("cargo:rerun-if-changed={}", capabilities.display());
    // Each capability's `wit/`, and `wit-<version>/` for another version
    // it also serves.
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&capabilities)
        .expect("crates/capabilities")
        .flat_map(|entry| {
            let crate_dir = entry.expect("a capability directory").path();
            std::fs::read_dir(&crate_dir)
                .map(|entries| {
                    entries
                        .map(|e| e.expect("a capability's entry").path())
                        .filter(|p| {
                            p.is_dir()
                                && p.file_name().is_some_and(|n| {
                                    n == "wit" || n.to_string_lossy().starts_with("wit-")
                                })
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    dirs.sort();
    for dir in dirs {
        println!("cargo:rerun-if-changed={}", dir.display());
        let files = wit_files(&dir);
        let package = files
            .iter()
            .find_map(|file| package_line(file))
            .unwrap_or_else(|| panic!("no `package` line in {}", dir.display()));
        entries.extend(files.into_iter().map(|file| (package.clone(), file)));
    }

    let mut code =
        String::from("/// (package, file name, WIT text) of every embedded package file.\n");
    code.push_str("pub(crate) static FILES: &[(&str, &str, &str)] = &[\n");
    for (package, file) in entries {
        let path = file.canonicalize().expect("an embedded WIT file");
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        writeln!(
            code,
            "    ({package:?}, {name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("embedded.rs"), code).expect("write embedded.rs");
}

/// The `.wit` files directly in `dir`, sorted.
fn wit_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a WIT file").path())
        .filter(|path| path.extension().is_some_and(|e| e == "wit"))
        .collect();
    files.sort();
    files
}

/// `ns:name@version` from a file's `package ns:name@version;` line.
fn package_line(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).expect("a readable WIT file");
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("package ")?;
        Some(rest.trim_end_matches(';').trim().to_string())
    })
}
