//! Project config and secrets through the `nimbus` binary: `config show`
//! redacts, `config validate` points at file and line, and the guardrails
//! around secret files hold. A secret value never reaches the logs.

use crate::common;

use common::*;
use std::time::Duration;

const SECRET: &str = "s3cret-value-that-must-not-leak";

fn project(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".nimbus")).unwrap();
    std::fs::write(dir.path().join(".nimbus/config.yaml"), config).unwrap();
    dir
}

#[test]
fn config_show_redacts_every_secret_and_validate_passes() {
    let dir = project(
        "configs:\n  app: { inline: { MODE: fast } }\n\
         secrets:\n  db: { file: secrets/db.env }\n  inl: { inline: { TOKEN: inline-secret-value } }\n",
    );
    write_private(
        &dir.path().join("secrets/db.env"),
        &format!("DB_PASSWORD={SECRET}\n"),
    );
    let (shown, stderr) = succeeds_in(dir.path(), &["config", "show"]);
    for leak in [SECRET, "inline-secret-value"] {
        assert!(
            !shown.contains(leak) && !stderr.contains(leak),
            "{shown}{stderr}"
        );
    }
    assert!(shown.contains("DB_PASSWORD: <redacted>"), "{shown}");
    assert!(shown.contains("MODE: fast"), "{shown}");
    assert!(stderr.contains("inline"), "inline secret warning: {stderr}");
    let (ok, _) = succeeds_in(dir.path(), &["config", "validate"]);
    assert!(ok.starts_with("ok: "), "{ok}");
    assert!(
        ok.contains("1 config source(s), 2 secret source(s)"),
        "{ok}"
    );
}

#[test]
fn unknown_keys_are_one_line_errors_with_file_and_line() {
    let dir = project("build:\n  command: true\ndev:\n  adress: 127.0.0.1:1\n");
    let err = fails_in(dir.path(), &["config", "validate"]);
    assert!(err.contains(".nimbus/config.yaml:4:"), "{err}");
    assert!(err.contains("unknown field `dev.adress`"), "{err}");
}

#[test]
fn validate_checks_the_sources_an_extra_component_names() {
    let dir = project(
        "configs:\n  shared: { inline: { A: b } }\ndev:\n  components:\n    - name: helper\n      file: helper.wasm\n      environment:\n        configFrom: [shared, missing-one]\n",
    );
    let err = fails_in(dir.path(), &["config", "validate"]);
    assert!(err.contains("dev.components[0].environment"), "{err}");
    assert!(err.contains("missing-one"), "{err}");
}

/// An unknown `secretFrom` name, wherever the config lists one, fails
/// `config validate` in one line naming it and the names that exist.
#[test]
fn validate_names_an_unknown_secret_source() {
    for (place, listed) in [
        (
            "workload.environment",
            "workload:\n  environment:\n    secretFrom: [{ name: nope-secret }]\n",
        ),
        (
            "dev.host_interfaces[0]",
            "dev:\n  host_interfaces:\n    - namespace: wasi\n      package: config\n      interfaces: [store]\n      secretFrom: [nope-secret]\n",
        ),
        (
            "dev.components[0].environment",
            "dev:\n  components:\n    - name: helper\n      file: helper.wasm\n      environment:\n        secretFrom: [db, nope-secret]\n",
        ),
    ] {
        let dir = project(&format!("secrets:\n  db: {{ file: db.env }}\n{listed}"));
        write_private(&dir.path().join("db.env"), "K=v\n");
        let err = fails_in(dir.path(), &["config", "validate"]);
        assert!(err.contains(place), "{err}");
        assert!(
            err.contains("secret source `nope-secret` is not defined (known: db)"),
            "{err}"
        );
    }
}

#[test]
fn secret_files_must_be_private_and_inside_the_project() {
    use std::os::unix::fs::PermissionsExt;
    let dir = project("secrets:\n  db: { file: db.env }\n");
    let path = dir.path().join("db.env");
    write_private(&path, &format!("P={SECRET}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = fails_in(dir.path(), &["config", "validate"]);
    assert!(err.contains("readable by group or others"), "{err}");
    assert!(!err.contains(SECRET));

    let outer = tempfile::tempdir().unwrap();
    let inner = outer.path().join("proj");
    std::fs::create_dir_all(inner.join(".nimbus")).unwrap();
    std::fs::write(
        inner.join(".nimbus/config.yaml"),
        "secrets:\n  db: { file: ../outside.env }\n",
    )
    .unwrap();
    write_private(&outer.path().join("outside.env"), "P=x\n");
    let err = fails_in(&inner, &["config", "validate"]);
    assert!(err.contains("outside the project root"), "{err}");
}

#[test]
fn a_wash_project_config_is_read_when_it_is_all_there_is() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".wash")).unwrap();
    std::fs::write(
        dir.path().join(".wash/config.yaml"),
        "version: 2.0.0\nbuild:\n  rust:\n    release: true\ndev:\n  address: 0.0.0.0:8000\n  wasi_config: { key: value }\n",
    )
    .unwrap();
    let (shown, _) = succeeds_in(dir.path(), &["config", "show"]);
    assert!(shown.contains(".wash/config.yaml"), "{shown}");
    assert!(shown.contains("release: true"), "{shown}");
}

/// Keys wash users write: honoured, or one warning each, never fatal.
#[test]
fn wash_keys_are_warnings_never_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".wash")).unwrap();
    std::fs::write(
        dir.path().join(".wash/config.yaml"),
        "new:\n  command: cargo update\nbuild:\n  command: cargo build\ndev:\n  wasi_keyvalue_path: tmp/kv\n  environment: { RUST_LOG: debug }\n  not_a_wash_key: 1\n\
         workload:\n  environment: { configFrom: [app] }\nconfigs:\n  app: { fromEnv: [HOME] }\n",
    )
    .unwrap();
    let (ok, stderr) = succeeds_in(dir.path(), &["config", "validate"]);
    assert!(ok.starts_with("ok: "), "{ok}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 3, "{stderr}");
    for key in ["`new`", "`dev.environment`", "`dev.not_a_wash_key`"] {
        assert!(
            warnings.iter().filter(|w| w.contains(key)).count() == 1,
            "{key}: {stderr}"
        );
    }
}

/// A project whose "build" just copies a prebuilt guest into place, so the
/// test runs the real dev loop without compiling anything.
fn prebuilt_project(config_extra: &str) -> tempfile::TempDir {
    project(&format!(
        "build:\n  command: cp {} out.wasm\n  component_path: out.wasm\n{config_extra}",
        test_programs::P2_CONFIG
    ))
}

#[test]
fn secrets_reach_the_guest_as_asked_and_never_the_logs() {
    let dir = prebuilt_project(
        "dev:\n  host_interfaces:\n    - namespace: wasi\n      package: config\n      interfaces: [store]\n      secretFrom: [{ name: db }]\n\
         workload:\n  config: { greeting: hi }\n  environment:\n    secretFrom: [{ name: api }]\n\
         secrets:\n  db: { file: secrets/db.env }\n  api: { fromEnv: API_TOKEN }\n",
    );
    write_private(
        &dir.path().join("secrets/db.env"),
        &format!("DB_PASSWORD={SECRET}\n"),
    );
    let server = Server::start(
        dir.path(),
        &["dev", "--addr", "127.0.0.1:0"],
        &[
            ("API_TOKEN", "api-token-value"),
            (
                "NIMBUS_LOG",
                "trace,cranelift_codegen=info,cranelift_frontend=info,regalloc2=info,wasmtime_cranelift=info,wasmtime_environ=info",
            ),
        ],
        Duration::from_secs(120),
    );
    assert_eq!(server.get("/config?key=greeting"), (200, "hi".into()));
    assert_eq!(server.get("/config?key=DB_PASSWORD"), (200, SECRET.into()));
    assert_eq!(
        server.get("/env?name=API_TOKEN"),
        (200, "api-token-value".into())
    );
    // Listed for wasi:config only, so not in the environment.
    assert_eq!(server.get("/env?name=DB_PASSWORD").0, 404);
    let stderr = server.stderr();
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "no logs captured"
    );
    for leak in [SECRET, "api-token-value"] {
        assert!(!stderr.contains(leak), "secret in the logs:\n{stderr}");
    }
    assert!(server.interrupt());
}

#[test]
fn a_secrets_file_git_would_commit_gets_a_loud_warning() {
    let dir = prebuilt_project("secrets:\n  db: { file: secrets/db.env }\n");
    write_private(&dir.path().join("secrets/db.env"), "K=v\n");
    let git_init = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir.path())
        .status()
        .expect("git is needed for this test");
    assert!(git_init.success());
    let (_, stderr) = succeeds_in(dir.path(), &["config", "validate"]);
    assert!(
        stderr.contains("SECRETS FILE NOT IGNORED BY GIT"),
        "{stderr}"
    );
    assert!(stderr.contains("/secrets/db.env"), "{stderr}");
    std::fs::write(dir.path().join(".gitignore"), "/secrets/\n").unwrap();
    let (_, stderr) = succeeds_in(dir.path(), &["config", "validate"]);
    assert!(!stderr.contains("NOT IGNORED"), "{stderr}");
}
