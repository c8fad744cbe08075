//! What scripts and people read, checked against files in `tests/expected/`:
//! the `-o json` shapes of `inspect`, `config show` and `build`, and the
//! one-line error of each common mistake. Temporary paths read `$DIR`, the
//! guest's `$GUEST`; values that change from build to build (sizes,
//! durations, digests) read `0` or `sha256:…`. Set
//! `NIMBUS_BLESS=1` to rewrite the files after an intended change.

use crate::common;

use common::*;
use std::path::Path;
use test_programs::P2_HELLO;

fn matches_expected(expected_file: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(expected_file);
    if std::env::var_os("NIMBUS_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (NIMBUS_BLESS=1 writes it)", path.display()));
    assert_eq!(actual, expected, "differs from {}", path.display());
}

/// `text` with `dir` (and its canonical form) written as `$DIR`.
fn normalise(text: &str, dir: &Path) -> String {
    let canonical = std::fs::canonicalize(dir).unwrap();
    text.replace(canonical.to_str().unwrap(), "$DIR")
        .replace(dir.to_str().unwrap(), "$DIR")
}

fn project(dir: &Path, config: &str) {
    std::fs::create_dir_all(dir.join(".nimbus")).unwrap();
    std::fs::write(dir.join(".nimbus/config.yaml"), config).unwrap();
}

#[test]
fn json_outputs_keep_their_shape() {
    let (inspect, _) = succeeds_in(Path::new("."), &["inspect", "-o", "json", P2_HELLO]);
    // Where the guest was built and what the toolchain made of it vary.
    let mut inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["path"], P2_HELLO);
    assert!(
        inspect["digest"].as_str().unwrap().starts_with("sha256:"),
        "{inspect}"
    );
    inspect["path"] = "$GUEST".into();
    inspect["size"] = 0.into();
    inspect["digest"] = "sha256:…".into();
    let inspect = serde_json::to_string_pretty(&inspect).unwrap() + "\n";
    matches_expected("inspect-p2-hello.json", &inspect);

    let dir = tempfile::tempdir().unwrap();
    project(
        dir.path(),
        "build:\n  command: 'true'\n  component_path: app.wasm\n  watch: [static/**]\ndev:\n  address: 127.0.0.1:9000\n  components:\n    - name: app\n      project: .\nworkload:\n  config: { greeting: hello }\nsecrets:\n  db: { inline: { password: hunter2 } }\n",
    );
    let (config, _) = succeeds_in(dir.path(), &["config", "show", "-o", "json"]);
    assert!(!config.contains("hunter2"), "{config}");
    matches_expected("config-show.json", &normalise(&config, dir.path()));

    std::fs::copy(P2_HELLO, dir.path().join("app.wasm")).unwrap();
    let (build, _) = succeeds_in(dir.path(), &["build", "-o", "json"]);
    let mut build: serde_json::Value = serde_json::from_str(&build).unwrap();
    for varying in ["sizeBytes", "buildSeconds"] {
        assert!(build[varying].is_number(), "{build}");
        build[varying] = 0.into();
    }
    let build = serde_json::to_string_pretty(&build).unwrap() + "\n";
    matches_expected("build.json", &normalise(&build, dir.path()));
}

#[test]
fn common_mistakes_each_get_their_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("garbage.wasm"), b"\0asm\x0d\0\x01\0 not really").unwrap();
    std::fs::write(root.join("notes.txt"), "hello").unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let typo = root.join("typo");
    project(&typo, "dev:\n  adress: 127.0.0.1:8000\n");
    let missing_project = root.join("missing-project");
    project(
        &missing_project,
        "dev:\n  components:\n    - name: app\n      project: ../nowhere\n",
    );
    let manifest = root.join("workload.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: { name: w }\nspec:\n  compnents: []\n",
    )
    .unwrap();
    let empty = root.join("empty");
    // Its build would leave a mark: a port in use must fail before it runs.
    let busy_dev = root.join("busy-dev");
    project(
        &busy_dev,
        "build:\n  command: touch built\n  component_path: app.wasm\n",
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();

    let cases: Vec<(&Path, Vec<&str>)> = vec![
        (root, vec!["serve", "missing.wasm"]),
        (root, vec!["serve", "garbage.wasm"]),
        (root, vec!["serve", "notes.txt"]),
        (root, vec!["serve", "workload.yaml"]),
        (root, vec!["serve", P2_HELLO, "--addr", &busy_addr]),
        (root, vec!["serve", "workload.yaml", "--env", "A=1"]),
        (root, vec!["inspect", "missing.wasm"]),
        (&empty, vec!["build"]),
        (&typo, vec!["config", "validate"]),
        (&missing_project, vec!["dev", "--addr", "127.0.0.1:0"]),
        (&busy_dev, vec!["dev", "--addr", &busy_addr]),
    ];
    let mut transcript = String::new();
    for (dir, args) in cases {
        let line = fails_in(dir, &args);
        let line = normalise(&line, root).replace(&busy_addr, "$ADDR");
        let shown: Vec<&str> = args
            .iter()
            .map(|a| {
                if *a == P2_HELLO {
                    "hello.wasm"
                } else if *a == busy_addr {
                    "$ADDR"
                } else {
                    a
                }
            })
            .collect();
        transcript.push_str(&format!("$ nimbus {}\n{line}\n\n", shown.join(" ")));
    }
    assert!(!busy_dev.join("built").exists(), "dev built before binding");
    matches_expected("errors.txt", &transcript);
}
