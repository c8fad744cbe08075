//! WIT packages in a real OCI registry, for the WIT-fetch tests: a wkg
//! config that points a namespace at a registry, and publishing a package
//! written as WIT text.

use std::path::{Path, PathBuf};

/// Writes a wkg config (`WKG_CONFIG_FILE`) into `dir` that maps
/// `namespace` to the plain-HTTP OCI registry at `registry` (`HOST:PORT`).
pub fn wkg_config(dir: &Path, namespace: &str, registry: &str) -> PathBuf {
    let path = dir.join("wkg-config.toml");
    std::fs::write(
        &path,
        format!(
            "[namespace_registries]\n{namespace} = \"{registry}\"\n\n\
             [registry.\"{registry}\"]\ntype = \"oci\"\n\n\
             [registry.\"{registry}\".oci]\nprotocol = \"http\"\n"
        ),
    )
    .expect("write the wkg config");
    path
}

/// Publishes the WIT package `text` as `name@version` through the registry
/// `config` names, replacing what that tag held.
pub async fn publish(config: &Path, name: &str, version: &str, text: &str) {
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_str("package.wit", text)
        .expect("the test's WIT parses");
    let bytes = wit_component::encode(&resolve, package).expect("the package encodes");
    let config = std::fs::read_to_string(config).expect("the wkg config");
    let config = wasm_pkg_client::Config::from_toml(&config).expect("a valid wkg config");
    wasm_pkg_client::Client::new(config)
        .publish_release_data(
            Box::pin(std::io::Cursor::new(bytes)),
            wasm_pkg_client::PublishOpts {
                package: Some((
                    name.parse().expect("a package name"),
                    version.parse().expect("a version"),
                )),
                skip_semver_check: true,
                ..Default::default()
            },
        )
        .await
        .expect("the registry takes the package");
}

/// A loopback `HOST:PORT` nothing listens on (a registry that is down).
pub fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    addr.to_string()
}
