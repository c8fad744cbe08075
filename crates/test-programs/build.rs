//! Builds the guest programs in `guests/` (a separate cargo workspace) for
//! `wasm32-wasip2`, which yields components directly, and writes
//! `$OUT_DIR/guests.rs` with the path of each one.
//!
//! The nested build goes to `<target dir>/guests` whatever profile the host is
//! built with, so `cargo build`, `cargo test` and `cargo build --release` share
//! one guest build and an up-to-date one costs a fraction of a second.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const GUEST_TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let guests_dir = manifest_dir.join("guests");
    let guests_manifest = guests_dir.join("Cargo.toml");

    for path in [
        guests_dir.join("src"),
        guests_dir.join("wit"),
        guests_manifest.clone(),
        guests_dir.join("Cargo.lock"),
    ]
    .into_iter()
    // Plugin guests bind each capability crate's own WIT.
    .chain(
        [
            "blobstore/wit",
            "keyvalue/wit",
            "logging/wit",
            "messaging/wit",
            "otel/wit",
            "secrets/wit",
            "secrets/wit-2.1.0",
            "tls/wit",
            "postgres/wit",
            "postgres/wit-0.2.0",
            "websocket/wit",
            "nats/wit",
            "webgpu/wit",
        ]
        .map(|wit| manifest_dir.join("../capabilities").join(wit)),
    ) {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    check_target_installed();

    let target_dir = root_target_dir(&manifest_dir, &out_dir).join("guests");
    build_guests(&guests_manifest, &target_dir);

    let artifacts = target_dir.join(GUEST_TARGET).join("release");
    let guests = guest_bins(&guests_dir.join("src").join("bin"));
    let code = generate(&guests, &artifacts);
    fs::write(out_dir.join("guests.rs"), code).expect("write guests.rs");
}

/// A guest binary: its name and the `//!` doc of its source.
struct Guest {
    name: String,
    doc: String,
}

/// Fails early, and clearly, if the standard library for the guest target is
/// missing (rustc's own error would come from deep inside the nested build).
fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", GUEST_TARGET])
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("failed to run {rustc:?}: {e}"));
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || libdir.is_empty() || !Path::new(&libdir).is_dir() {
        panic!(
            "\n\nthe `{GUEST_TARGET}` Rust target is not installed, but Nimbus's test guests \
             are compiled for it.\nInstall it with:\n\n    rustup target add {GUEST_TARGET}\n\n"
        );
    }
}

/// The target directory of the build that runs this script.
///
/// `OUT_DIR` is `<target>/[<triple>/]<profile>/build/<pkg>-<hash>/out`, and
/// cargo marks `<target>` with a `CACHEDIR.TAG`; this also finds target
/// directories set in a `.cargo/config.toml`. A relative `CARGO_TARGET_DIR`
/// cannot be resolved from here (it is relative to where cargo was started),
/// so it is used only when absolute.
fn root_target_dir(manifest_dir: &Path, out_dir: &Path) -> PathBuf {
    if let Some(dir) = out_dir
        .ancestors()
        .skip(4)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
    {
        return dir.to_path_buf();
    }
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR").map(PathBuf::from)
        && dir.is_absolute()
    {
        return dir;
    }
    manifest_dir.join("..").join("..").join("target")
}

/// Runs the nested `cargo build` of the guest workspace.
fn build_guests(manifest: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(GUEST_TARGET)
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);

    // Settings of the host build that must not reach the guest build: flags
    // meant for the host target, the host's target dir and target, clippy's
    // driver (`cargo clippy` sets RUSTC_WORKSPACE_WRAPPER), the host
    // profile's overrides and this package's own cfg/feature/metadata.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
        {
            cmd.env_remove(key);
        }
    }
    // The jobserver (CARGO_MAKEFLAGS/MAKEFLAGS) is deliberately kept, as in
    // wasmtime's test-programs build: the nested cargo then takes its job
    // slots from the outer build instead of starting `-j NCPU` more rustcs.

    // Everything the nested cargo prints goes to stderr: this script's stdout
    // is read by cargo for `cargo:` directives.
    cmd.stdout(Stdio::from(std::io::stderr()));

    eprintln!("running: {cmd:?}");
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("failed to run the nested cargo build of {manifest:?}: {e}"));
    if !status.success() {
        panic!(
            "building the guest programs in {manifest:?} failed ({status}); see the output above"
        );
    }
}

/// The guest binaries, one per `src/bin/*.rs`, sorted by name.
fn guest_bins(bin_dir: &Path) -> Vec<Guest> {
    let mut guests: Vec<Guest> = fs::read_dir(bin_dir)
        .unwrap_or_else(|e| panic!("read {bin_dir:?}: {e}"))
        .map(|entry| entry.expect("read_dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("guest file names are UTF-8")
                .to_string();
            let source = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));
            let doc = source
                .lines()
                .map_while(|line| line.strip_prefix("//!"))
                .map(|line| line.strip_prefix(' ').unwrap_or(line))
                .collect::<Vec<_>>()
                .join("\n");
            Guest { name, doc }
        })
        .collect();
    guests.sort_by(|a, b| a.name.cmp(&b.name));
    guests
}

/// The contents of `guests.rs`.
fn generate(guests: &[Guest], artifacts: &Path) -> String {
    let mut code = String::from("// @generated by crates/test-programs/build.rs\n\n");
    let mut all = String::new();
    let mut each = String::new();
    for guest in guests {
        let wasm = artifacts.join(format!("{}.wasm", guest.name));
        assert!(wasm.is_file(), "the guest build did not produce {wasm:?}");
        let wasm = wasm.to_str().expect("target dir path is UTF-8");
        let konst = guest.name.to_uppercase().replace('-', "_");
        let doc = format!(
            "Path of the `{}` guest component (`guests/src/bin/{}.rs`).\n\n{}",
            guest.name, guest.name, guest.doc
        );
        writeln!(code, "#[doc = {doc:?}]").unwrap();
        writeln!(code, "pub const {konst}: &str = {wasm:?};\n").unwrap();
        writeln!(all, "    ({:?}, {konst}),", guest.name).unwrap();
        writeln!(each, "        $mac!({});", guest.name).unwrap();
    }
    code.push_str(
        "/// Every guest component as `(name, path)`, sorted by name.\n\
         pub const ALL: &[(&str, &str)] = &[\n",
    );
    code.push_str(&all);
    code.push_str("];\n\n");
    code.push_str(
        "/// Invokes `$mac!(name)` once per guest, with the binary's name as an\n\
         /// identifier (`p2_hello`, ...), in the style of wasmtime's `foreach_*!`\n\
         /// macros: a test suite can use it to assert that it covers every guest.\n\
         #[macro_export]\n\
         macro_rules! foreach_guest {\n    ($mac:ident) => {\n",
    );
    code.push_str(&each);
    code.push_str("    };\n}\n");
    code
}
