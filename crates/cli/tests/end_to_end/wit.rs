//! WIT dependencies from the command line: `nimbus build` fetches what a
//! wash project's WIT lacks before building (from a real registry, or the
//! embedded WIT when none answers), and `nimbus wit fetch` does it alone.

use crate::common::*;
use std::path::Path;
use std::process::Output;
use test_programs::P2_HELLO;
use test_programs::servers::{Kind, Server as Backing};
use test_programs::wit::{closed_port, publish, wkg_config};

/// A wash project whose world imports `imports`; its build command
/// succeeds only if `test CHECK` holds, then "builds" by copying a ready
/// component.
fn wash_project(dir: &Path, imports: &[&str], check: &str, extra_config: &str) {
    std::fs::create_dir_all(dir.join(".wash")).unwrap();
    std::fs::create_dir_all(dir.join("wit")).unwrap();
    std::fs::write(
        dir.join(".wash/config.yaml"),
        format!(
            "build:\n  command: test {check} && cp {P2_HELLO} built.wasm\n  component_path: built.wasm\n{extra_config}"
        ),
    )
    .unwrap();
    let imports: String = imports.iter().map(|i| format!("  import {i};\n")).collect();
    std::fs::write(
        dir.join("wit/world.wit"),
        format!("package test:app;\n\nworld app {{\n{imports}}}\n"),
    )
    .unwrap();
}

fn run(dir: &Path, config: &Path, args: &[&str]) -> Output {
    nimbus()
        .args(args)
        .current_dir(dir)
        .env("WKG_CONFIG_FILE", config)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn build_fetches_what_the_wit_lacks_from_the_embedded_wit_when_no_registry_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = wkg_config(dir.path(), "wasi", &closed_port());
    wash_project(
        dir.path(),
        &[
            "wasi:keyvalue/store@0.2.0-draft",
            "wasi:http/outgoing-handler@0.2.2",
        ],
        "-d wit/deps/wasi-keyvalue-0.2.0-draft",
        "",
    );
    let out = run(dir.path(), &config, &["build"]);
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("fetching WIT dependencies: wasi:http@0.2.2, wasi:keyvalue@0.2.0-draft"),
        "{text}"
    );
    assert!(
        text.contains("note: the registry failed (")
            && text
                .contains("used the WIT Nimbus embeds for wasi:http@0.2.2 (from wasi:http@0.2.12)"),
        "{text}"
    );
    assert!(
        !text.contains("backtrace") && !text.contains("WARN"),
        "{text}"
    );
    assert!(dir.path().join("wit/deps/wasi-io-0.2.2").is_dir());

    // Nothing is missing now: the next build does not fetch.
    let again = run(dir.path(), &config, &["build"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(!stderr(&again).contains("fetching"), "{}", stderr(&again));
}

#[test]
fn wit_fetch_takes_packages_from_the_registry_and_writes_the_lock() {
    let Some(registry) = Backing::start(Kind::Registry) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = wkg_config(dir.path(), "acme", &registry.url());
    tokio::runtime::Runtime::new().unwrap().block_on(publish(
        &config,
        "acme:greeting",
        "0.1.0",
        "package acme:greeting@0.1.0;\n\ninterface hello {\n  greet: func(name: string) -> string;\n}\n",
    ));
    wash_project(
        dir.path(),
        &["acme:greeting/hello@0.1.0"],
        "-d wit/deps/acme-greeting-0.1.0",
        "",
    );
    let out = run(dir.path(), &config, &["wit", "fetch"]);
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.trim(),
        "fetched acme:greeting@0.1.0 (wkg.lock written)"
    );
    let lock = std::fs::read_to_string(dir.path().join("wkg.lock")).unwrap();
    assert!(
        lock.contains("acme:greeting") && lock.contains("sha256:"),
        "{lock}"
    );
    // The build finds its WIT complete and fetches nothing.
    let build = run(dir.path(), &config, &["build"]);
    assert!(build.status.success(), "{}", stderr(&build));
    assert!(!stderr(&build).contains("fetching"), "{}", stderr(&build));
}

#[test]
fn a_package_no_source_has_fails_the_build_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = wkg_config(dir.path(), "acme", &closed_port());
    wash_project(dir.path(), &["acme:nothing/here@1.0.0"], "-d wit/deps", "");
    let out = run(dir.path(), &config, &["build"]);
    let text = stderr(&out);
    assert!(!out.status.success(), "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(
        errors[0].starts_with("error: cannot fetch acme:nothing@1.0.0: "),
        "{text}"
    );
    assert!(
        !text.contains("backtrace") && !text.contains("panicked"),
        "{text}"
    );
    assert!(!dir.path().join("built.wasm").exists());
}

#[test]
fn skip_fetch_leaves_the_wit_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = wkg_config(dir.path(), "wasi", &closed_port());
    wash_project(
        dir.path(),
        &["wasi:keyvalue/store@0.2.0-draft"],
        "! -e wit/deps",
        "wit:\n  skip_fetch: true\n",
    );
    let out = run(dir.path(), &config, &["build"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("fetching"), "{}", stderr(&out));
    assert!(!dir.path().join("wit/deps").exists());
}

#[test]
fn a_wit_dir_outside_the_project_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("project");
    std::fs::create_dir_all(parent.path().join("elsewhere")).unwrap();
    std::fs::write(
        parent.path().join("elsewhere/world.wit"),
        "package test:app;\nworld app { import wasi:keyvalue/store@0.2.0-draft; }\n",
    )
    .unwrap();
    let config = wkg_config(parent.path(), "wasi", &closed_port());
    wash_project(
        &dir,
        &["wasi:keyvalue/store@0.2.0-draft"],
        "-d wit",
        "wit:\n  wit_dir: ../elsewhere\n",
    );
    let out = run(&dir, &config, &["build"]);
    let text = stderr(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("error: wit.wit_dir: "), "{text}");
    assert!(!parent.path().join("elsewhere/deps").exists());
}
