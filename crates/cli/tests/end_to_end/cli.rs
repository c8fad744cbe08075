//! The `nimbus` binary as a user meets it: `inspect`, `serve`, and one clear
//! line (never a panic or backtrace) for every kind of bad input.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use test_programs::{P2_HELLO, P2_TLS, P3_HELLO};

fn nimbus() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nimbus"));
    cmd.env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .env_remove("NIMBUS_LOG");
    cmd
}

fn cache_dir() -> String {
    format!("{}/nimbus-compiled", env!("CARGO_TARGET_TMPDIR"))
}

/// Runs `nimbus ARGS`, expects failure, returns stderr after checking it is
/// one clear line.
fn fails(args: &[&str]) -> String {
    let out = nimbus().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure for {args:?}");
    assert!(
        !stderr.contains("panicked")
            && !stderr.contains("backtrace")
            && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line of error, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path.display().to_string())
}

#[test]
fn inspect_lists_imports_and_exports() {
    let out = nimbus().args(["inspect", P2_HELLO]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("export wasi:http/incoming-handler@0.2"),
        "{text}"
    );
    assert!(text.contains("import wasi:http/types@0.2"), "{text}");
    assert!(text.contains("serves HTTP as wasi:http p2"), "{text}");

    let out = nimbus()
        .args(["inspect", "--json", P3_HELLO])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["http"], "p3");
    assert!(json["digest"].as_str().unwrap().starts_with("sha256:"));
    let exports: Vec<&str> = json["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("wasi:http/handler@0.3.0")),
        "{exports:?}"
    );
    // `-o` as on every command that prints data: the same report as YAML
    // and as JSON.
    let out = nimbus()
        .args(["inspect", "-o", "yaml", P3_HELLO])
        .output()
        .unwrap();
    assert!(out.status.success());
    let yaml: serde_json::Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    assert_eq!(yaml, json);
    let out = nimbus()
        .args(["inspect", "-o", "json", P3_HELLO])
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        json
    );
}

/// An experimental import (`wasi:tls`) is labelled, with the host
/// interface entry that opts in, in text and in JSON; others are not.
#[test]
fn inspect_labels_experimental_imports() {
    let out = nimbus().args(["inspect", P2_TLS]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let tls = lines
        .iter()
        .position(|l| l.starts_with("  import wasi:tls/types@0.2.0-draft;"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        lines[tls - 1],
        "  // experimental: served only to workloads listing a `wasi:tls` host interface"
    );
    assert_eq!(text.matches("experimental").count(), 1, "{text}");

    let out = nimbus()
        .args(["inspect", "-o", "json", P2_TLS])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let labelled: Vec<(&str, &str)> = json["imports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| Some((i["name"].as_str()?, i["experimental"].as_str()?)))
        .collect();
    assert_eq!(labelled, [("wasi:tls/types@0.2.0-draft", "wasi:tls")]);
}

#[test]
fn bad_inputs_get_one_clear_line() {
    let line = fails(&["inspect", "/nonexistent/app.wasm"]);
    assert!(
        line.contains("cannot read") && line.contains("/nonexistent/app.wasm"),
        "{line}"
    );
    let line = fails(&["serve", "/nonexistent/app.wasm"]);
    assert!(line.contains("cannot read"), "{line}");

    let (_d, text) = temp_file("notes.wasm", b"this is not wasm");
    assert!(fails(&["inspect", &text]).contains("not a WebAssembly file"));
    assert!(fails(&["serve", &text]).contains("not a WebAssembly file"));

    let good = std::fs::read(P2_HELLO).unwrap();
    let (_d, truncated) = temp_file("truncated.wasm", &good[..good.len() / 3]);
    assert!(fails(&["inspect", &truncated]).contains("truncated or malformed"));
    assert!(fails(&["serve", &truncated]).contains("truncated or malformed"));

    let (_d, core) = temp_file("core.wasm", b"\0asm\x01\0\0\0");
    let line = fails(&["serve", &core]);
    assert!(
        line.contains("core WebAssembly module") && line.contains("wasm32-wasip2"),
        "{line}"
    );

    let component = wat::parse_str(
        r#"(component (import "acme:inventory/store@1.0.0" (instance (export "get" (func (param "key" string) (result u32))))))"#,
    )
    .unwrap();
    let (_d, kv) = temp_file("kv.wasm", &component);
    let line = fails(&["serve", &kv, "--addr", "127.0.0.1:0", "--no-cache"]);
    assert!(
        line.contains("imports `acme:inventory/store@1.0.0`, which no other component of the workload exports and this host does not provide"),
        "{line}"
    );

    let (_d, manifest) = temp_file("w.yaml", b"apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: x\nspec:\n  components:\n    - name: a\n      image: ''\n");
    let line = fails(&["serve", &manifest]);
    assert!(line.contains("spec.components[0].image"), "{line}");
    let (_d, other) = temp_file("readme.txt", b"hello");
    assert!(fails(&["serve", &other]).contains("neither a WebAssembly component"));
}

#[test]
fn serve_answers_and_drains_on_ctrl_c() {
    let mut child = nimbus()
        .args([
            "serve",
            P2_HELLO,
            "--addr",
            "127.0.0.1:0",
            "--cache-dir",
            &cache_dir(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server even when an assertion below fails.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut child = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("serve prints its URL");
    let addr = line
        .strip_prefix("Serving on http://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    let curl = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(curl.starts_with("Try: curl http://"), "{curl}");

    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: anything\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // The body is chunked: `E\r\nhello from p2\n\r\n0\r\n\r\n`.
    assert!(
        response.contains("\r\n\r\nE\r\nhello from p2\n\r\n"),
        "{response}"
    );

    let status = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "serve did not exit after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
}

#[test]
fn serve_backend_flags_are_checked_per_plugin() {
    for (flag, value, needle) in [
        (
            "--blobstore",
            "redis://127.0.0.1:1",
            "blobstore cannot use redis",
        ),
        (
            "--messaging",
            "redis://127.0.0.1:1",
            "messaging cannot use redis",
        ),
        (
            "--keyvalue",
            "mongodb://x",
            "not a backend keyvalue supports",
        ),
    ] {
        let out = nimbus()
            .args(["serve", P2_HELLO, flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value} was accepted");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(needle),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn an_address_in_use_is_one_line_with_a_hint() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let cache = cache_dir();
    // The address is bound before any component is compiled: the failure
    // comes first, and nothing starts.
    let out = nimbus()
        .args(["serve", P2_HELLO, "--addr", &addr, "--cache-dir", &cache])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("started "), "{stderr}");
    let line = errors[0];
    assert!(line.contains(&format!("cannot listen on {addr}")), "{line}");
    assert!(
        line.ends_with("(hint: another process is listening on that address; choose another one)"),
        "{line}"
    );
}

/// A reader that stops early (`nimbus inspect app.wasm | head`) ends a
/// printing command quietly: exit 0, nothing on stderr, no panic.
#[test]
fn a_closed_pipe_ends_printing_commands_quietly() {
    let manifest_text = format!(
        "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {{ name: hello }}\n\
         spec:\n  components:\n    - name: hello\n      image: file://{P2_HELLO}\n"
    );
    let (dir, manifest) = temp_file("workload.yaml", manifest_text.as_bytes());
    std::fs::create_dir_all(dir.path().join(".nimbus")).unwrap();
    std::fs::write(
        dir.path().join(".nimbus/config.yaml"),
        "workload:\n  config: { greeting: hello }\n",
    )
    .unwrap();
    let project = dir.path().to_str().unwrap();
    let commands: [&[&str]; 10] = [
        &["completions", "bash"],
        &["inspect", P2_HELLO],
        &["inspect", "--json", P3_HELLO],
        &["inspect", "-o", "yaml", P3_HELLO],
        &["new", "--list"],
        &["graph", &manifest],
        &["config", "show", "-C", project],
        &["config", "show", "-o", "json", "-C", project],
        &["--help"],
        &["--version"],
    ];
    for args in commands {
        let mut child = nimbus()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the command writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{args:?}: {:?}\n{stderr}",
            out.status
        );
    }
}

/// With workloads routed by `Host`, the first curl `serve` suggests carries
/// a `Host` header that reaches one of them (a bare curl would get 404).
#[test]
fn serve_suggests_a_curl_that_reaches_a_host_routed_workload() {
    let workload = |name: &str, host: &str| {
        format!(
            "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {{ name: {name} }}\n\
             spec:\n  components:\n    - name: {name}\n      image: file://{P2_HELLO}\n\
             \x20 hostInterfaces:\n    - namespace: wasi\n      package: http\n      interfaces: [incoming-handler]\n\
             \x20     config: {{ host: {host} }}\n"
        )
    };
    let text = format!(
        "{}---\n{}",
        workload("a", "a.test"),
        workload("b", "b.test")
    );
    let (dir, manifest) = temp_file("workloads.yaml", text.as_bytes());
    let cache = cache_dir();
    let server = crate::common::Server::start_when(
        dir.path(),
        &[
            "serve",
            &manifest,
            "--addr",
            "127.0.0.1:0",
            "--cache-dir",
            &cache,
        ],
        &[],
        Duration::from_secs(60),
        "Try: curl ",
    );
    let (header, url) = server
        .addr
        .strip_prefix("-H 'Host: a.test' ")
        .map(|url| ("a.test", url))
        .unwrap_or_else(|| panic!("suggested: {}", server.addr));
    let addr = url.strip_prefix("http://").unwrap();
    let (status, _, _) =
        crate::common::request_with_headers(addr, "GET", "/", &[("host", header)], "");
    assert_eq!(status, 200);
}

/// The OTLP flag is offered where telemetry is exported (and still taken
/// before the command), not on every command's help.
#[test]
fn the_otlp_flag_is_offered_only_where_it_applies() {
    let help = |args: &[&str]| {
        let out = nimbus().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for command in ["serve", "dev", "host", "controller"] {
        assert!(
            help(&[command, "--help"]).contains("--otlp-endpoint"),
            "{command}"
        );
    }
    for command in ["build", "inspect", "new", "get", "delete", "push", "graph"] {
        assert!(!help(&[command, "--help"]).contains("otlp"), "{command}");
    }
    assert!(help(&["--help"]).contains("--otlp-endpoint"));
}

/// `--version` names the revision; completion scripts come out whole for
/// each shell.
#[test]
fn version_names_the_revision_and_completions_are_generated() {
    let out = nimbus().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(version.starts_with("nimbus 0."), "{version}");
    assert!(
        version.trim_end().ends_with(')') && version.contains(" ("),
        "{version}"
    );
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef nimbus"),
        ("fish", "complete -c nimbus"),
    ] {
        let out = nimbus().args(["completions", shell]).output().unwrap();
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && script.contains(marker),
            "{shell}: {script}"
        );
        assert!(script.contains("serve"), "{shell}");
    }
}
