//! `nimbus push` and `nimbus pull` against a real registry
//! (`docker-registry` on a free loopback port), and their one-line errors.

use crate::common;

use common::*;
use test_programs::servers::{Kind, Server};

#[test]
fn push_then_pull_gives_back_the_same_component() {
    let Some(server) = Server::start(Kind::Registry) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let registry = server.url();
    let reference = format!("{registry}/team/hello:1.0");
    let insecure = ["--insecure-registry", registry.as_str()];
    let mut push = vec!["push", reference.as_str(), test_programs::P2_HELLO];
    push.extend(insecure);
    let (stdout, _) = succeeds_in(dir.path(), &push);
    let digest =
        nimbus_host::artifact::Digest::of(&std::fs::read(test_programs::P2_HELLO).unwrap())
            .to_string();
    assert!(stdout.contains(&digest), "{stdout}");
    assert!(
        stdout.contains(&format!("pin it as {registry}/team/hello@sha256:")),
        "{stdout}"
    );

    let mut pull = vec!["pull", reference.as_str()];
    pull.extend(insecure);
    let (stdout, _) = succeeds_in(dir.path(), &pull);
    assert!(stdout.contains("into hello.wasm"), "{stdout}");
    assert_eq!(
        std::fs::read(dir.path().join("hello.wasm")).unwrap(),
        std::fs::read(test_programs::P2_HELLO).unwrap()
    );

    // A loopback registry needs no --insecure-registry (as with Docker):
    // its failed TLS handshake is followed by plain HTTP, under either name.
    std::fs::remove_file(dir.path().join("hello.wasm")).unwrap();
    let port = registry.rsplit(':').next().unwrap();
    let by_name = format!("localhost:{port}/team/hello:1.0");
    for reference in [reference.as_str(), by_name.as_str()] {
        let (stdout, _) = succeeds_in(dir.path(), &["pull", reference, "-o", "again.wasm"]);
        assert!(stdout.contains("into again.wasm"), "{stdout}");
    }
    let missing = format!("{registry}/team/missing:1");
    let mut pull_missing = vec!["pull", missing.as_str()];
    pull_missing.extend(insecure);
    let stderr = fails_in(dir.path(), &pull_missing);
    assert!(stderr.starts_with("error: `"), "{stderr}");
    assert!(stderr.contains("team/missing:1"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn push_refuses_what_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    // Refused before any network: the registry here does not exist.
    let stderr = fails_in(
        dir.path(),
        &["push", "127.0.0.1:1/team/notes:1", "notes.txt"],
    );
    assert!(stderr.contains("not a WebAssembly component"), "{stderr}");
    // A registry that cannot be reached says why, down to the root cause.
    let stderr = fails_in(dir.path(), &["pull", "127.0.0.1:1/team/notes:1"]);
    assert!(
        stderr.contains("cannot reach the registry 127.0.0.1:1")
            && stderr.contains("Connection refused"),
        "{stderr}"
    );
    let stderr = fails_in(dir.path(), &["pull", "not a reference"]);
    assert!(
        stderr.contains("is not a valid image reference"),
        "{stderr}"
    );
}
