//! WIT dependencies fetched from a real OCI registry (`docker-registry`),
//! with `wkg.lock` written and respected, and the embedded WIT used when no
//! registry answers.

use nimbus_wit::{FetchOptions, fetch, missing_packages};
use std::path::{Path, PathBuf};
use std::time::Duration;
use test_programs::servers::{Kind, Server};
use test_programs::wit::{closed_port, publish, wkg_config};

fn project(dir: &Path, world: &str) -> PathBuf {
    let wit = dir.join("wit");
    std::fs::create_dir_all(&wit).unwrap();
    std::fs::write(wit.join("world.wit"), world).unwrap();
    wit
}

fn options(dir: &Path, config: &Path, cache: &str) -> FetchOptions {
    FetchOptions {
        cache_dir: dir.join(cache),
        timeout: Duration::from_secs(60),
        config_file: Some(config.to_path_buf()),
    }
}

/// The WIT folder resolves as a build's bindings generator would see it.
fn resolves(wit: &Path) {
    let mut resolve = wit_parser::Resolve::default();
    resolve
        .push_dir(wit)
        .unwrap_or_else(|e| panic!("{wit:?} does not resolve: {e:#}"));
}

fn greeting(function: &str) -> String {
    format!(
        "package acme:greeting@0.1.0;\n\ninterface hello {{\n  {function}: func(name: string) -> string;\n}}\n"
    )
}

#[tokio::test]
async fn packages_come_from_the_registry_and_the_lock_pins_their_digest() {
    let Some(registry) = Server::start(Kind::Registry) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = wkg_config(dir.path(), "acme", &registry.url());
    publish(&config, "acme:greeting", "0.1.0", &greeting("greet")).await;
    let wit = project(
        dir.path(),
        "package test:app;\n\nworld app {\n  import acme:greeting/hello@0.1.0;\n}\n",
    );
    assert_eq!(missing_packages(&wit).unwrap().len(), 1);

    let report = fetch(dir.path(), &wit, &options(dir.path(), &config, "cache-1"))
        .await
        .unwrap();
    assert_eq!(report.registry_error, None);
    assert_eq!(report.from_registry, ["acme:greeting@0.1.0"]);
    assert!(report.from_embedded.is_empty());
    resolves(&wit);
    let fetched = std::fs::read_to_string(wit.join("deps/acme-greeting-0.1.0/package.wit"))
        .or_else(|_| std::fs::read_to_string(wit.join("deps/acme-greeting-0.1.0.wit")))
        .unwrap_or_else(|_| {
            panic!(
                "deps holds {:?}",
                std::fs::read_dir(wit.join("deps"))
                    .unwrap()
                    .collect::<Vec<_>>()
            )
        });
    assert!(fetched.contains("greet:"), "{fetched}");
    let lock = std::fs::read_to_string(dir.path().join("wkg.lock")).unwrap();
    assert!(
        lock.contains("acme:greeting") && lock.contains("sha256:"),
        "{lock}"
    );

    // The tag now points at other content; the lock pins the first digest,
    // so the fetch refuses it and leaves the WIT as it was.
    publish(&config, "acme:greeting", "0.1.0", &greeting("welcome")).await;
    let error = fetch(dir.path(), &wit, &options(dir.path(), &config, "cache-2"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("acme:greeting") && error.contains("lock file specifies digest"),
        "{error}"
    );
    let again = read_deps(&wit);
    assert!(
        again.contains("greet:") && !again.contains("welcome:"),
        "{again}"
    );

    // Without the lock, the tag's new content comes, and a new lock.
    std::fs::remove_file(dir.path().join("wkg.lock")).unwrap();
    fetch(dir.path(), &wit, &options(dir.path(), &config, "cache-3"))
        .await
        .unwrap();
    assert!(read_deps(&wit).contains("welcome:"));
    assert_ne!(
        std::fs::read_to_string(dir.path().join("wkg.lock")).unwrap(),
        lock
    );
}

/// Every WIT file under `wit/deps`, concatenated.
fn read_deps(wit: &Path) -> String {
    let mut text = String::new();
    let mut stack = vec![wit.join("deps")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                text.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    text
}

#[tokio::test]
async fn without_a_registry_the_embedded_wit_stands_in_under_the_version_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = wkg_config(dir.path(), "wasi", &closed_port());
    let wit = project(
        dir.path(),
        "package test:app;\n\nworld app {\n  import wasi:keyvalue/store@0.2.0-draft;\n  export wasi:http/incoming-handler@0.2.2;\n}\n",
    );
    let report = fetch(dir.path(), &wit, &options(dir.path(), &config, "cache"))
        .await
        .unwrap();
    assert!(report.registry_error.is_some());
    assert!(!dir.path().join("wkg.lock").exists(), "no empty lock left");
    let written: Vec<String> = report
        .from_embedded
        .iter()
        .map(|(asked, _)| asked.to_string())
        .collect();
    for expected in [
        "wasi:keyvalue@0.2.0-draft",
        "wasi:http@0.2.2",
        "wasi:io@0.2.2",
        "wasi:clocks@0.2.2",
    ] {
        assert!(
            written.contains(&expected.to_string()),
            "{expected} in {written:?}"
        );
    }
    assert!(missing_packages(&wit).unwrap().is_empty());
    resolves(&wit);
    let http =
        std::fs::read_to_string(wit.join("deps/wasi-http-0.2.2/wasi-http-0.2.12.wit")).unwrap();
    assert!(http.starts_with("package wasi:http@0.2.2;"));
}

#[tokio::test]
async fn a_package_no_source_has_is_an_error_naming_it_and_the_registry_failure() {
    let dir = tempfile::tempdir().unwrap();
    let config = wkg_config(dir.path(), "acme", &closed_port());
    let wit = project(
        dir.path(),
        "package test:app;\n\nworld app {\n  import acme:nothing/here@1.0.0;\n}\n",
    );
    let error = fetch(dir.path(), &wit, &options(dir.path(), &config, "cache"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("cannot fetch acme:nothing@1.0.0: "),
        "{error}"
    );
    assert!(!error.contains('\n'), "{error}");
}
