//! Building a project's component: install what its toolchain needs
//! ([`crate::toolchain`]), run the configured command (default: cargo for
//! `wasm32-wasip2`, release), find what it produced, and check it is a
//! WebAssembly component.

use crate::config::{BuildConfig, RustBuild};
use crate::toolchain::{SetupStep, Toolchain};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The target Rust components are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Where the build's output goes.
pub enum Output<'a> {
    /// Both to this process's stderr, so that its stdout carries only the
    /// result (`nimbus build`).
    Stderr,
    /// Captured and returned, shown only on failure.
    Capture,
    /// Captured as [`Output::Capture`], and each line (stdout and stderr
    /// merged, in arrival order) handed to the callback as it comes
    /// (`nimbus dev`'s progress). `colour` keeps the toolchain's colours.
    Stream {
        /// Called once per line, without its newline.
        on_line: &'a mut (dyn FnMut(&str) + Send),
        /// Ask the toolchain for colours (the output goes to a terminal).
        colour: bool,
    },
}

/// A successful build.
#[derive(Debug, Clone)]
pub struct Built {
    /// The component file.
    pub component: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// How long the build command took.
    pub duration: Duration,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command exited with an error; `output` holds what it printed
    /// (empty when it went to the terminal).
    #[error("`{command}` failed ({status})")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Captured stdout and stderr.
        output: String,
    },
    /// The project's toolchain (Node.js, Python) is not installed.
    #[error("{0}")]
    Toolchain(String),
    /// The Rust target is missing and could not be installed.
    #[error(
        "the {WASM_TARGET} Rust target is not installed and `rustup target add {WASM_TARGET}` failed: {0}; run it yourself, then build again"
    )]
    Target(String),
    /// No component file was found after the build.
    #[error("the build succeeded but no component was found: {0}")]
    NotFound(String),
    /// The file is not a usable component.
    #[error("{}: {message}", path.display())]
    NotComponent {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl BuildError {
    /// What the build printed, when it was captured.
    pub fn output(&self) -> Option<&str> {
        match self {
            Self::Failed { output, .. } if !output.is_empty() => Some(output),
            _ => None,
        }
    }
}

/// The command line `build` runs.
pub fn build_command(build: &BuildConfig) -> String {
    if let Some(command) = &build.command {
        return command.clone();
    }
    let rust = build.rust.clone().unwrap_or(RustBuild {
        release: Some(true),
        ..Default::default()
    });
    if let Some(custom) = &rust.custom_command {
        return custom.join(" ");
    }
    let mut parts = vec![
        "cargo".to_string(),
        "build".to_string(),
        "--target".to_string(),
        rust.target.clone().unwrap_or_else(|| WASM_TARGET.into()),
    ];
    if rust.release.unwrap_or(false) {
        parts.push("--release".into());
    }
    if !rust.features.is_empty() {
        parts.push("--features".into());
        parts.push(rust.features.join(","));
    }
    if rust.no_default_features {
        parts.push("--no-default-features".into());
    }
    parts.extend(rust.cargo_flags.iter().cloned());
    parts.extend(build.additional_args.iter().cloned());
    parts.join(" ")
}

/// Builds the component of the project in `dir`: first what its
/// toolchain needs installed ([`Toolchain::setup_steps`]), then the build
/// command.
pub fn build(dir: &Path, config: &BuildConfig, mut output: Output) -> Result<Built, BuildError> {
    // Absolute: the toolchain's programs and PATH entries are named from
    // it and run from inside it (`nimbus build -C proj`).
    let dir = &std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let command = build_command(config);
    if command.starts_with("cargo ") && command.contains(WASM_TARGET) {
        ensure_rust_target()?;
    }
    let started = Instant::now();
    let toolchain = Toolchain::detect(dir, &command);
    if let Some(toolchain) = toolchain {
        install_dependencies(dir, toolchain, config, &mut output)?;
    }
    // By its path: the shell must run even where `PATH` is what is wrong.
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(&command).current_dir(dir);
    if toolchain.is_some() {
        // componentize-py is Rust: a caller's RUST_BACKTRACE would bury a
        // Python error under its stack frames.
        cmd.env_remove("RUST_BACKTRACE");
    }
    cmd.envs(&config.env);
    let build_path = config
        .env
        .get("PATH")
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let build_path = match toolchain {
        Some(toolchain) => toolchain.path_variable(dir, build_path),
        None => build_path,
    };
    cmd.env("PATH", &build_path);
    let (status, captured) = run(cmd, &mut output).map_err(|source| BuildError::Spawn {
        command: command.clone(),
        source,
    })?;
    let duration = started.elapsed();
    if !status.success() {
        // The shell's "command not found" for the command's own program:
        // say what is missing. (A program the command runs in turn, a
        // script's tool, is the toolchain's to report.)
        let program = command.split_whitespace().next().unwrap_or_default();
        if let (Some(toolchain), Some(127)) = (toolchain, status.code()) {
            if !program.contains(['/', '=']) && !on_path(program, &build_path) {
                return Err(BuildError::Toolchain(toolchain.missing(program)));
            }
            // npm and the tools in node_modules/.bin are scripts run by node.
            if toolchain == Toolchain::Node && !on_path("node", &build_path) {
                return Err(BuildError::Toolchain(toolchain.missing("node")));
            }
        }
        return Err(BuildError::Failed {
            command,
            status,
            output: captured,
        });
    }
    let component = find_component(dir, config)?;
    let bytes = std::fs::read(&component).map_err(|e| BuildError::NotComponent {
        path: component.clone(),
        message: e.to_string(),
    })?;
    nimbus_model::validate_component_bytes(&bytes).map_err(|e| BuildError::NotComponent {
        path: component.clone(),
        message: e.to_string(),
    })?;
    Ok(Built {
        component,
        size: bytes.len() as u64,
        duration,
    })
}

/// Runs the toolchain's install steps that are due, with a progress line
/// each, and records success.
fn install_dependencies(
    dir: &Path,
    toolchain: Toolchain,
    config: &BuildConfig,
    output: &mut Output,
) -> Result<(), BuildError> {
    let steps = toolchain.setup_steps(dir);
    if steps.is_empty() {
        return Ok(());
    }
    for step in steps {
        let SetupStep {
            description,
            command: mut step_command,
            line,
            makes_environment,
        } = step;
        say(output, &format!("{description} ({line})"));
        // An installer must never wait for an answer nobody will type.
        step_command.envs(&config.env).env("PIP_NO_INPUT", "1");
        let program = step_command.get_program().to_string_lossy().into_owned();
        let (status, captured) = run(step_command, output).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                BuildError::Toolchain(toolchain.missing(&program))
            } else {
                BuildError::Spawn {
                    command: line.clone(),
                    source,
                }
            }
        })?;
        if status.success() {
            continue;
        }
        if makes_environment {
            // A half-made environment would be taken as made next time.
            let _ = std::fs::remove_dir_all(dir.join(".venv"));
            let cause = captured.lines().rev().find(|l| !l.trim().is_empty());
            return Err(BuildError::Toolchain(Toolchain::venv_failed(
                cause.unwrap_or_default(),
            )));
        }
        if toolchain == Toolchain::Node && status.code() == Some(127) {
            // npm is a script run by node: node itself is missing.
            return Err(BuildError::Toolchain(toolchain.missing("node")));
        }
        return Err(BuildError::Failed {
            command: line,
            status,
            output: captured,
        });
    }
    toolchain.setup_done(dir);
    Ok(())
}

/// Whether `program`, a bare name, is a file in one of `path`'s folders.
fn on_path(program: &str, path: &std::ffi::OsStr) -> bool {
    std::env::split_paths(path).any(|folder| folder.join(program).is_file())
}

/// Before anything else of a build (the WIT fetch included): a project
/// whose toolchain has dependencies to install, and is itself not
/// installed, fails here in one line.
pub fn check_toolchain(dir: &Path, config: &BuildConfig) -> Result<(), BuildError> {
    let Some(toolchain) = Toolchain::detect(dir, &build_command(config)) else {
        return Ok(());
    };
    for step in toolchain.setup_steps(dir) {
        let program = Path::new(step.command.get_program());
        // A program named by its path (the environment's own python) was
        // made by an earlier step.
        if program.components().count() > 1 {
            continue;
        }
        let probe = Command::new(program)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let missing = match probe {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some(program.to_string_lossy().into_owned())
            }
            // npm without node: its `#!/usr/bin/env node` finds nothing.
            Ok(status) if status.code() == Some(127) => Some("node".to_string()),
            _ => None,
        };
        if let Some(missing) = missing {
            return Err(BuildError::Toolchain(toolchain.missing(&missing)));
        }
    }
    Ok(())
}

/// Runs `cmd` with its output where `output` says; its status and, when
/// captured, what it printed.
fn run(
    mut cmd: Command,
    output: &mut Output,
) -> std::io::Result<(std::process::ExitStatus, String)> {
    match output {
        Output::Stderr => {
            cmd.stdout(std::io::stderr()).stdin(Stdio::null());
            Ok((cmd.status()?, String::new()))
        }
        Output::Capture => {
            // Colours survive capture so errors read as they would in a terminal.
            cmd.env("CARGO_TERM_COLOR", "always").stdin(Stdio::null());
            let out = cmd.output()?;
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            Ok((out.status, text))
        }
        Output::Stream { on_line, colour } => {
            cmd.env("CARGO_TERM_COLOR", if *colour { "always" } else { "never" })
                .stdin(Stdio::null());
            stream_lines(cmd, &mut **on_line)
        }
    }
}

/// A progress line of the build's own, where the build's output goes.
fn say(output: &mut Output, line: &str) {
    match output {
        Output::Stderr => eprintln!("{line}"),
        Output::Capture => {}
        Output::Stream { on_line, .. } => on_line(line),
    }
}

/// The largest dep-info file read: a few thousand paths take a few hundred
/// KiB; anything far larger is not cargo's.
const MAX_DEP_INFO_BYTES: u64 = 16 << 20;

/// The files the toolchain says it read to build `component`: cargo's
/// dep-info (`NAME.d` beside `NAME.wasm`, absolute paths). Empty when
/// there is none (another toolchain, or no build yet).
pub fn sources_read(component: &Path) -> Vec<PathBuf> {
    let dep_info = component.with_extension("d");
    match nimbus_model::files::read_text_bounded(&dep_info, MAX_DEP_INFO_BYTES) {
        Ok(text) => parse_dep_info(&text),
        Err(_) => Vec::new(),
    }
}

/// Parses Makefile-style dep-info: `target: dep dep …` rules, lines
/// continued with a trailing backslash, spaces in paths escaped as `\ `.
fn parse_dep_info(text: &str) -> Vec<PathBuf> {
    let joined = text.replace("\\\n", " ");
    let mut files = Vec::new();
    for line in joined.lines() {
        if line.starts_with('#') {
            continue;
        }
        // The target ends at the first `: ` (a path may hold a colon).
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        let mut current = String::new();
        let mut chars = deps.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => {
                    current.push(' ');
                    chars.next();
                }
                ' ' | '\t' => {
                    if !current.is_empty() {
                        files.push(PathBuf::from(std::mem::take(&mut current)));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            files.push(PathBuf::from(current));
        }
    }
    // `include_str!("../x")` reports `src/../x`: the same file as `x`.
    let mut files: Vec<PathBuf> = files.iter().map(|f| lexically_normal(f)).collect();
    files.sort();
    files.dedup();
    files
}

/// `path` with `.` and `..` components resolved without touching the disk.
fn lexically_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !normal.pop() {
                    normal.push("..");
                }
            }
            other => normal.push(other.as_os_str()),
        }
    }
    normal
}

/// Runs `cmd`, handing each line of its stdout and stderr to `on_line` as
/// it arrives, and returns its status with everything it printed.
fn stream_lines(
    mut cmd: Command,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> std::io::Result<(std::process::ExitStatus, String)> {
    use std::io::BufRead as _;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    // One reader per pipe, so neither fills up while the other is read.
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|pipe| {
        let lines_tx = lines_tx.clone();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(pipe);
            let mut line = Vec::new();
            // Bytes, not `lines()`: a tool printing invalid UTF-8 must not
            // cut its own output short.
            while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                let text = String::from_utf8_lossy(&line);
                let _ = lines_tx.send(text.trim_end_matches(['\n', '\r']).to_string());
                line.clear();
            }
        })
    })
    .collect();
    drop(lines_tx);
    let mut captured = String::new();
    for line in lines {
        on_line(&line);
        captured.push_str(&line);
        captured.push('\n');
    }
    for reader in readers {
        let _ = reader.join();
    }
    Ok((child.wait()?, captured))
}

/// Installs the wasm target through rustup when it is missing.
fn ensure_rust_target() -> Result<(), BuildError> {
    let Ok(list) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
    else {
        // No rustup: let cargo say what is wrong.
        return Ok(());
    };
    if String::from_utf8_lossy(&list.stdout)
        .lines()
        .any(|l| l.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    eprintln!("installing the {WASM_TARGET} Rust target (rustup target add {WASM_TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status()
        .map_err(|e| BuildError::Target(e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Target(status.to_string()))
    }
}

/// The configured `component_path`, or the newest `.wasm` cargo produced
/// for this package's library or binary targets.
pub fn find_component(dir: &Path, config: &BuildConfig) -> Result<PathBuf, BuildError> {
    if let Some(path) = &config.component_path {
        let path = dir.join(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(BuildError::NotFound(format!(
                "`build.component_path` is {}, which does not exist",
                path.display()
            )))
        };
    }
    if let Some(toolchain) = Toolchain::detect(dir, &build_command(config)) {
        // The newest component where such builds put theirs.
        let newest = toolchain
            .output_dirs()
            .iter()
            .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "wasm"))
            .filter_map(|path| Some((std::fs::metadata(&path).ok()?.modified().ok()?, path)))
            .max();
        return newest.map(|(_, path)| path).ok_or_else(|| {
            BuildError::NotFound(format!(
                "no .wasm file in {}; set `build.component_path` in .nimbus/config.yaml",
                toolchain.output_dirs().join(" or ")
            ))
        });
    }
    let metadata = Command::new("cargo")
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(dir)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| BuildError::NotFound(format!("cannot run `cargo metadata`: {e}")))?;
    if !metadata.status.success() {
        return Err(BuildError::NotFound(
            "not a cargo project; set `build.component_path` in .nimbus/config.yaml".into(),
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout)
        .map_err(|e| BuildError::NotFound(format!("unreadable `cargo metadata`: {e}")))?;
    let target_dir = PathBuf::from(metadata["target_directory"].as_str().unwrap_or("target"));
    let manifest = std::fs::canonicalize(dir.join("Cargo.toml")).ok();
    let mut names = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let path = package["manifest_path"].as_str().map(PathBuf::from);
        if manifest.is_some()
            && path.as_deref().and_then(|p| std::fs::canonicalize(p).ok()) != manifest
        {
            continue;
        }
        for target in package["targets"].as_array().into_iter().flatten() {
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str())
                .collect();
            if kinds.iter().any(|k| matches!(*k, "cdylib" | "bin"))
                && let Some(name) = target["name"].as_str()
            {
                names.push(name.replace('-', "_"));
            }
        }
    }
    let mut candidates = Vec::new();
    for profile in ["release", "debug"] {
        for name in &names {
            let path = target_dir
                .join(WASM_TARGET)
                .join(profile)
                .join(format!("{name}.wasm"));
            if let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) {
                candidates.push((modified, path));
            }
        }
    }
    candidates.sort();
    candidates.pop().map(|(_, path)| path).ok_or_else(|| {
        BuildError::NotFound(format!(
            "looked for {} under {}; set `build.component_path` in .nimbus/config.yaml",
            if names.is_empty() {
                "a cdylib or bin target".to_string()
            } else {
                names
                    .iter()
                    .map(|n| format!("{n}.wasm"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            target_dir.join(WASM_TARGET).display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_command_is_a_release_wasip2_cargo_build() {
        assert_eq!(
            build_command(&BuildConfig::default()),
            "cargo build --target wasm32-wasip2 --release"
        );
    }

    #[test]
    fn wash_rust_section_becomes_the_cargo_command() {
        let config = BuildConfig {
            rust: Some(RustBuild {
                features: vec!["a".into(), "b".into()],
                cargo_flags: vec!["--locked".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            build_command(&config),
            "cargo build --target wasm32-wasip2 --features a,b --locked"
        );
    }

    #[test]
    fn failing_command_reports_status_and_captured_output() {
        let dir = tempfile::tempdir().unwrap();
        let config = BuildConfig {
            command: Some("echo compiler says no >&2; exit 3".into()),
            ..Default::default()
        };
        let err = build(dir.path(), &config, Output::Capture).unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
        assert!(err.output().unwrap().contains("compiler says no"));
    }

    #[test]
    fn dep_info_lists_every_source_once_with_escaped_spaces() {
        let text = "/p/target/wasm32-wasip2/release/app.wasm: /p/src/main.rs /p/src/my\\ mod.rs \\\n  /p/build.rs /p/src/../README.md\n\n/p/target/wasm32-wasip2/release/app.d: /p/src/main.rs\n";
        assert_eq!(
            parse_dep_info(text),
            [
                PathBuf::from("/p/README.md"),
                PathBuf::from("/p/build.rs"),
                PathBuf::from("/p/src/main.rs"),
                PathBuf::from("/p/src/my mod.rs"),
            ]
        );
    }

    #[test]
    fn streamed_output_reaches_the_callback_line_by_line_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("out.wasm"), b"not wasm").unwrap();
        let config = BuildConfig {
            command: Some("echo one; echo two >&2; exit 4".into()),
            ..Default::default()
        };
        let mut seen = Vec::new();
        let mut on_line = |line: &str| seen.push(line.to_string());
        let err = build(
            dir.path(),
            &config,
            Output::Stream {
                on_line: &mut on_line,
                colour: false,
            },
        )
        .unwrap_err();
        seen.sort();
        assert_eq!(seen, ["one", "two"]);
        let output = err.output().unwrap();
        assert!(
            output.contains("one\n") && output.contains("two\n"),
            "{output}"
        );
    }

    #[test]
    fn a_non_component_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("out.wasm"), b"not wasm").unwrap();
        let config = BuildConfig {
            command: Some("true".into()),
            component_path: Some("out.wasm".into()),
            ..Default::default()
        };
        let err = build(dir.path(), &config, Output::Capture).unwrap_err();
        assert!(matches!(err, BuildError::NotComponent { .. }), "{err}");
    }

    #[test]
    fn a_node_or_python_build_is_found_as_the_newest_wasm_in_dist_or_build() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("requirements.txt"), "").unwrap();
        let config = BuildConfig {
            command: Some("make".into()),
            ..Default::default()
        };
        let err = find_component(dir.path(), &config).unwrap_err().to_string();
        assert!(err.contains("no .wasm file in dist or build"), "{err}");
        for (sub, age) in [("dist", 60), ("build", 0)] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            let file = dir.path().join(sub).join("app.wasm");
            std::fs::write(&file, b"").unwrap();
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_modified(std::time::SystemTime::now() - Duration::from_secs(age))
                .unwrap();
        }
        std::fs::write(dir.path().join("build/notes.txt"), "").unwrap();
        assert_eq!(
            find_component(dir.path(), &config).unwrap(),
            dir.path().join("build/app.wasm")
        );
    }

    #[test]
    fn a_build_command_the_shell_cannot_find_names_the_toolchain() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package.json"), "{}").unwrap();
        // Installed already; the build command's program is missing: the
        // shell's exit 127 becomes the toolchain's one line.
        std::fs::create_dir_all(dir.path().join("node_modules")).unwrap();
        crate::toolchain::Toolchain::Node.setup_done(dir.path());
        let config = BuildConfig {
            command: Some("no-such-program-anywhere --build".into()),
            ..Default::default()
        };
        let err = build(dir.path(), &config, Output::Capture).unwrap_err();
        assert_eq!(
            err.to_string(),
            crate::toolchain::Toolchain::Node.missing("no-such-program-anywhere")
        );
        assert!(err.to_string().contains("add it to package.json"), "{err}");
        // A program the command's own program runs in turn is not blamed
        // on the toolchain: the failure comes with what it printed.
        let config = BuildConfig {
            command: Some("sh -c 'no-such-program-anywhere'".into()),
            ..Default::default()
        };
        let err = build(dir.path(), &config, Output::Capture).unwrap_err();
        assert!(matches!(err, BuildError::Failed { .. }), "{err}");
        assert!(err.output().unwrap().contains("not found"), "{err:?}");
    }
}
