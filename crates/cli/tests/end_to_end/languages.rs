//! The templates of every language as a new user meets them: `nimbus new
//! --lang`, `nimbus dev` installing the npm or pip dependencies and
//! building, each template answering exactly as its namesakes in the other
//! languages do (the same checks run on the Rust, TypeScript and Python
//! versions), reloads on an edit, a broken edit that keeps the last
//! version serving, and a missing toolchain said in one line. The Rust
//! hello world's reload under load is in `dev.rs`.
//!
//! Node.js, npm and Python come with the machine; the test script warms
//! the npm and pip caches with the templates' pinned packages.

use crate::common;

use common::*;
use std::time::{Duration, Instant};

/// A first build: the npm or pip install, the WIT fetch, componentizing,
/// and compiling a component that carries a JavaScript engine or a Python
/// interpreter.
const FIRST_BUILD: Duration = Duration::from_secs(600);
/// A rebuild.
const REBUILD: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Language {
    Rust,
    TypeScript,
    Python,
}

impl Language {
    fn flag(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::TypeScript => "typescript",
            Language::Python => "python",
        }
    }

    /// The file holding the handler.
    fn source(self) -> &'static str {
        match self {
            Language::Rust => "src/main.rs",
            Language::TypeScript => "src/index.ts",
            Language::Python => "app.py",
        }
    }

    /// Code that does not build: a type error TypeScript's checker
    /// refuses, a syntax error.
    fn broken(self) -> &'static str {
        match self {
            Language::Rust => "\nfn broken( {\n",
            Language::TypeScript => "\nconst broken: number = \"not a number\";\n",
            Language::Python => "\ndef broken(:\n",
        }
    }
}

fn new_in(
    language: Language,
    template: &str,
    name: &str,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let parent = tempfile::tempdir().unwrap();
    succeeds_in(
        parent.path(),
        &["new", "--lang", language.flag(), template, name],
    );
    let dir = parent.path().join(name);
    assert!(dir.join(".nimbus/config.yaml").is_file());
    assert!(dir.join(".gitignore").is_file());
    assert!(dir.join("README.md").is_file());
    (parent, dir)
}

fn dev(dir: &std::path::Path) -> Server {
    Server::start(
        dir,
        &["dev", "--addr", "127.0.0.1:0", "--debounce-ms", "200"],
        &[],
        FIRST_BUILD,
    )
}

fn wait_until(what: &str, wait: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {wait:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn hello_world_answers_reloads_and_survives_a_broken_edit(language: Language) {
    let (_parent, dir) = new_in(language, "http-hello-world", "greeter");
    let server = dev(&dir);
    assert_eq!(server.get("/"), (200, "Hello from greeter!\n".into()));
    assert_eq!(
        server.get("/any/path?q=1"),
        (200, "Hello from greeter!\n".into())
    );
    // The first build installed the dependencies, with the installer's
    // progress shown.
    let installed = match language {
        Language::Rust => unreachable!("the Rust hello world's loop is in dev.rs"),
        Language::TypeScript => dir.join("node_modules/.bin/componentize-js"),
        Language::Python => dir.join(".venv/bin/componentize-py"),
    };
    assert!(installed.exists(), "{}", installed.display());
    let stdout = server.stdout() + &server.stderr();
    assert!(stdout.contains("installing"), "{stdout}");

    let source = dir.join(language.source());
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace("Hello from", "Hello again from")).unwrap();
    wait_until("the edited text is served", REBUILD, || {
        server.get("/").1 == "Hello again from greeter!\n"
    });
    server.wait_for_stdout("✓ reloaded", 1, Duration::from_secs(10));

    let good = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, format!("{good}{}", language.broken())).unwrap();
    server.wait_for_stderr("✗ build of greeter failed", 1, REBUILD);
    // The next line, read on the stderr thread: waited for, not raced.
    server.wait_for_stderr(
        "still serving the last good version",
        1,
        Duration::from_secs(5),
    );
    assert_eq!(server.get("/"), (200, "Hello again from greeter!\n".into()));
    // Installing once is enough: the rebuilds did not install again.
    let log = server.stdout() + &server.stderr();
    assert_eq!(
        log.matches("installing").count(),
        stdout.matches("installing").count(),
        "{log}"
    );
    assert!(server.interrupt(), "Ctrl-C must exit 0");
}

fn handler_answers_json_routes(language: Language) {
    let (_parent, dir) = new_in(language, "http-handler", "routes");
    let server = dev(&dir);
    assert_eq!(
        server.get("/"),
        (
            200,
            r#"{"service":"routes","routes":["GET /","GET /hello/{name}","POST /echo"]}"#.into()
        )
    );
    let (status, head, body) = request_with_headers(&server.addr, "GET", "/hello/world", &[], "");
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"greeting":"Hello, world!"}"#)
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    // The path is routed as sent: no `..` resolved, nothing decoded.
    assert_eq!(server.get("/hello/x/../y").0, 404);
    assert_eq!(
        server.get("/hello/a%20b"),
        (200, r#"{"greeting":"Hello, a%20b!"}"#.into())
    );
    assert_eq!(
        request(&server.addr, "POST", "/echo", r#"{"a":[1,2]}"#),
        (200, r#"{"received":{"a":[1,2]},"bytes":11}"#.into())
    );
    // Keys come back sorted, as serde_json writes them in the Rust version.
    assert_eq!(
        request(
            &server.addr,
            "POST",
            "/echo",
            r#"{"b":{"d":1,"c":2},"a":"é"}"#
        ),
        (
            200,
            r#"{"received":{"a":"é","b":{"c":2,"d":1}},"bytes":28}"#.into()
        )
    );
    // Not JSON: text, and what some parsers take but JSON has not.
    for bad in ["nope", "[NaN]", "1e400", r#"{"a":Infinity}"#, "\u{feff}{}"] {
        let (status, body) = request(&server.addr, "POST", "/echo", bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body.starts_with(r#"{"error":"body is not JSON: "#),
            "{body}"
        );
    }
    let (status, body) = server.get("/missing");
    assert_eq!(status, 404);
    assert_eq!(body, r#"{"error":"no route for /missing"}"#);
    assert_eq!(server.get("/hello/").0, 404);
    assert_eq!(request(&server.addr, "POST", "/hello/x", "").0, 404);
}

fn client_reaches_allowed_hosts_only(language: Language) {
    let upstream_addr = fixed_upstream("upstream!");
    let (_parent, dir) = new_in(language, "http-client", "caller");
    let config = dir.join(".nimbus/config.yaml");
    let template_config = std::fs::read_to_string(&config).unwrap();
    let allowed = template_config
        .replace(
            "UPSTREAM_URL: https://example.com/",
            &format!("UPSTREAM_URL: http://{upstream_addr}/"),
        )
        .replace("    - example.com", &format!("    - {upstream_addr}"));
    assert_ne!(allowed, template_config);
    std::fs::write(&config, &allowed).unwrap();
    let server = dev(&dir);
    assert_eq!(
        server.get("/"),
        (
            200,
            format!("upstream http://{upstream_addr}/ answered 200\nupstream!")
        )
    );
    // Without the upstream among the allowed hosts the host refuses the
    // request and the component answers 502 (a config edit reloads).
    std::fs::write(
        &config,
        allowed.replace(&format!("    - {upstream_addr}"), "    - example.com"),
    )
    .unwrap();
    wait_until("the refusal is answered", REBUILD, || {
        server.get("/").0 == 502
    });
    let (_, body) = server.get("/");
    assert!(
        body.starts_with(&format!("upstream http://{upstream_addr}/ failed: ")),
        "{body}"
    );
}

fn kv_counter_counts_and_builds_a_component_importing_keyvalue(language: Language) {
    let (parent, dir) = new_in(language, "http-kv-counter", "hits");
    let server = dev(&dir);
    assert_eq!(server.get("/a"), (200, "a: 1\n".into()));
    assert_eq!(server.get("/a"), (200, "a: 2\n".into()));
    assert_eq!(server.get("/b"), (200, "b: 1\n".into()));
    assert_eq!(server.get("/"), (200, "hits: 1\n".into()));
    // The key is the path as sent.
    assert_eq!(server.get("/a/../b"), (200, "a/../b: 1\n".into()));
    drop(server);

    // `nimbus build` alone, from outside the project (`-C` relative): the
    // path and size of the component, which imports what the world says.
    let (stdout, _) = succeeds_in(parent.path(), &["build", "-C", "hits"]);
    assert_eq!(stdout.lines().count(), 1, "only the result: {stdout}");
    assert!(stdout.contains("hits.wasm"), "{stdout}");
    assert!(stdout.contains("KiB") || stdout.contains("MiB"), "{stdout}");
    let path = stdout.split(" (").next().unwrap().trim();
    let (inspect, _) = succeeds_in(&dir, &["inspect", path]);
    assert!(
        inspect.contains("import wasi:keyvalue/atomics@0.2.0-draft"),
        "{inspect}"
    );
    assert!(
        inspect.contains("import wasi:keyvalue/store@0.2.0-draft"),
        "{inspect}"
    );
    assert!(
        inspect.contains("export wasi:http/incoming-handler@0.2"),
        "{inspect}"
    );
}

#[test]
fn typescript_hello_world_answers_reloads_and_survives_a_broken_edit() {
    hello_world_answers_reloads_and_survives_a_broken_edit(Language::TypeScript);
}

#[test]
fn python_hello_world_answers_reloads_and_survives_a_broken_edit() {
    hello_world_answers_reloads_and_survives_a_broken_edit(Language::Python);
}

#[test]
fn rust_handler_answers_json_routes() {
    handler_answers_json_routes(Language::Rust);
}

#[test]
fn typescript_handler_answers_json_routes() {
    handler_answers_json_routes(Language::TypeScript);
}

#[test]
fn python_handler_answers_json_routes() {
    handler_answers_json_routes(Language::Python);
}

#[test]
fn rust_client_reaches_allowed_hosts_only() {
    client_reaches_allowed_hosts_only(Language::Rust);
}

#[test]
fn typescript_client_reaches_allowed_hosts_only() {
    client_reaches_allowed_hosts_only(Language::TypeScript);
}

#[test]
fn python_client_reaches_allowed_hosts_only() {
    client_reaches_allowed_hosts_only(Language::Python);
}

#[test]
fn rust_kv_counter_counts_and_builds_a_component_importing_keyvalue() {
    kv_counter_counts_and_builds_a_component_importing_keyvalue(Language::Rust);
}

#[test]
fn typescript_kv_counter_counts_and_builds_a_component_importing_keyvalue() {
    kv_counter_counts_and_builds_a_component_importing_keyvalue(Language::TypeScript);
}

#[test]
fn python_kv_counter_counts_and_builds_a_component_importing_keyvalue() {
    kv_counter_counts_and_builds_a_component_importing_keyvalue(Language::Python);
}

#[test]
fn a_missing_toolchain_is_one_line_naming_it_before_anything_runs() {
    for (language, program, advice) in [
        (Language::TypeScript, "npm", "install Node.js"),
        (Language::Python, "python3", "install Python"),
    ] {
        let (_parent, dir) = new_in(language, "http-hello-world", "bare");
        // A PATH with no toolchain on it (the build's own shell included).
        let empty = tempfile::tempdir().unwrap();
        let out = nimbus()
            .arg("build")
            .current_dir(&dir)
            .env("PATH", empty.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].starts_with("error: "), "{stderr}");
        assert!(
            lines[0].contains(&format!("`{program}` is not installed")),
            "{stderr}"
        );
        assert!(lines[0].contains(advice), "{stderr}");
        // Nothing was fetched or installed.
        assert!(!dir.join("wit/deps").exists());
    }
}

#[test]
fn new_lists_every_language_and_points_to_the_one_with_a_template() {
    let parent = tempfile::tempdir().unwrap();
    let (list, _) = succeeds_in(parent.path(), &["new", "--list"]);
    let sections: Vec<&str> = list.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(sections, ["rust:", "typescript:", "python:"], "{list}");
    for language in ["typescript:", "python:"] {
        let section: Vec<&str> = list
            .split(language)
            .nth(1)
            .unwrap()
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with(' '))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            section,
            [
                "http-client",
                "http-handler",
                "http-hello-world",
                "http-kv-counter"
            ],
            "{list}"
        );
    }
    let error = fails_in(
        parent.path(),
        &["new", "--lang", "py", "http-postgres", "x"],
    );
    assert!(error.contains("`--lang rust`"), "{error}");
    let out = nimbus()
        .args(["new", "--lang", "go", "http-hello-world", "x"])
        .current_dir(parent.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rust, typescript, python"), "{stderr}");
    assert!(!parent.path().join("x").exists());
}
