//! `nimbus serve COMPONENT.wasm` with the flags that set the component up
//! without a manifest (`--env`, `--config`, `--dir`, `--dir-rw`,
//! `--allow-host`, `--memory-limit`, `--timeout`): what the guest sees, and
//! one clear line for every bad value, or for a flag given with a manifest;
//! and the component size cap `--max-component-mb` sets.
//!
//! No one guest reads environment, `wasi:config` and files together:
//! `p2_config` shows environment and config, `p2_behaviors` environment,
//! files, outgoing HTTP, memory and the deadline.

use crate::common::*;
use std::time::Duration;
use test_programs::{P2_BEHAVIORS, P2_CONFIG, P2_HELLO, P3_HELLO};

#[test]
fn env_and_config_flags_reach_the_component() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "serve",
            P2_CONFIG,
            "--addr",
            "127.0.0.1:0",
            "--env",
            "GREETING=hi there",
            "--env",
            "PASSED_ON",
            "--config",
            "mode=fast",
            "--config",
            "url=http://a.test/?x=1",
        ],
        &[("PASSED_ON", "from nimbus")],
        Duration::from_secs(120),
    );
    assert_eq!(
        server.get("/env?name=GREETING"),
        (200, "hi there".to_string())
    );
    assert_eq!(
        server.get("/env?name=PASSED_ON"),
        (200, "from nimbus".to_string())
    );
    // Only the variables given: nimbus's own environment stays its own.
    assert_eq!(server.get("/env?name=PATH").0, 404);
    assert_eq!(server.get("/config?key=mode"), (200, "fast".to_string()));
    assert_eq!(
        server.get("/config-all"),
        (200, "mode=fast\nurl=http://a.test/?x=1\n".to_string())
    );
}

#[test]
fn dir_allow_host_memory_and_timeout_flags_set_the_component_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&data).unwrap();
    std::fs::create_dir(&scratch).unwrap();
    std::fs::write(data.join("hello.txt"), "from the host\n").unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "serve",
            P2_BEHAVIORS,
            "--addr",
            "127.0.0.1:0",
            "--env",
            "MODE=test",
            // Relative to where nimbus runs.
            "--dir",
            "data::/data",
            "--dir-rw",
            "scratch::/scratch",
            "--allow-host",
            "127.0.0.1",
            "--memory-limit",
            "16M",
            "--timeout",
            "2s",
        ],
        &[],
        Duration::from_secs(120),
    );
    assert_eq!(server.get("/env?name=MODE"), (200, "test".to_string()));

    // `--dir` is read-only, `--dir-rw` writable.
    assert_eq!(
        server.get("/read?path=/data/hello.txt"),
        (200, "from the host\n".to_string())
    );
    let (status, body) = request(&server.addr, "POST", "/write?path=/data/new.txt", "no");
    assert_eq!(status, 500, "{body}");
    assert!(!data.join("new.txt").exists());
    let (status, body) = request(&server.addr, "POST", "/write?path=/scratch/new.txt", "yes");
    assert_eq!((status, body.as_str()), (200, "written\n"));
    assert_eq!(
        std::fs::read_to_string(scratch.join("new.txt")).unwrap(),
        "yes"
    );

    // Outgoing HTTP reaches the allowed host (here, the server itself) and
    // nothing else.
    let (status, body) = server.get(&format!("/fetch?url=http://{}/ok", server.addr));
    assert_eq!((status, body.as_str()), (200, "status: 200\nok\n"));
    let (status, body) = server.get("/fetch?url=http://localhost:9/");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");

    // 16 MiB of linear memory: 8 MiB fits, 64 MiB does not (the guest traps).
    assert_eq!(server.get("/grow?mb=8").0, 200);
    assert_eq!(server.get("/grow?mb=64").0, 500);

    // A 2s deadline: a request still running after it gets 504.
    assert_eq!(server.get("/sleep?ms=10").0, 200);
    assert_eq!(server.get("/sleep?ms=10000").0, 504);
}

/// Runs `nimbus serve P2_HELLO ARGS`, expects clap's refusal of a value:
/// `error: invalid value … for '--FLAG …': why` on the first line.
fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = nimbus()
        .args(["serve", P2_HELLO])
        .args(args)
        .env_remove("NIMBUS_SURELY_UNSET")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} was accepted");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("error: invalid value"), "{stderr}");
    assert!(first.contains(args[0]), "{stderr}");
    first
}

#[test]
fn bad_flag_values_are_one_line_each() {
    for (args, needle) in [
        (&["--env", "=x"][..], "names no variable"),
        (
            &["--env", "NIMBUS_SURELY_UNSET"],
            "is not set in nimbus's environment",
        ),
        (&["--config", "novalue"], "has no `=`"),
        (&["--config", "=x"], "names no key"),
        (&["--dir", "::/x"], "names no host directory"),
        (&["--dir", "/nonexistent/nimbus-dir"], "does not exist"),
        (&["--dir", P2_HELLO], "is not a directory"),
        (&["--dir-rw", ".::data"], "must be absolute"),
        (&["--memory-limit", "12Q"], "unknown unit `Q`"),
        (&["--memory-limit", "1000000"], "not a whole number of MiB"),
        (&["--timeout", "5h"], "unknown unit"),
        (&["--allow-host", "*."], "wildcard"),
        (&["--memory-budget-mb", "0"], "not in 1.."),
    ] {
        let line = refused(args);
        assert!(line.contains(needle), "{args:?}: {line}");
    }
}

#[test]
fn the_admin_endpoint_on_the_serving_address_is_refused_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let line = fails_in(
        dir.path(),
        &[
            "serve",
            P2_HELLO,
            "--addr",
            "127.0.0.1:18991",
            "--admin-addr",
            "127.0.0.1:18991",
        ],
    );
    assert_eq!(
        line.trim(),
        "error: --admin-addr 127.0.0.1:18991 is the address requests are served on (--addr): give the admin endpoint another port, or `off`"
    );
}

#[test]
fn component_flags_with_a_manifest_say_to_use_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("w.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: Workload\nmetadata: {{ name: w }}\n\
             spec:\n  components:\n    - name: a\n      image: file://{P2_HELLO}\n"
        ),
    )
    .unwrap();
    let manifest = manifest.to_str().unwrap();
    for (args, flag, field) in [
        (&["--env", "A=1"][..], "--env", "localResources.environment"),
        (&["--config", "a=b"], "--config", "localResources.config"),
        (
            &["--allow-host", "*"],
            "--allow-host",
            "localResources.allowedHosts",
        ),
        (&["--dir", "."], "--dir", "volumeMounts"),
        (
            &["--memory-limit", "64M"],
            "--memory-limit",
            "memoryLimitMb",
        ),
        (&["--timeout", "5s"], "--timeout", "timeoutMs"),
    ] {
        let mut all = vec!["serve", manifest];
        all.extend_from_slice(args);
        let line = fails_in(dir.path(), &all);
        assert!(
            line.contains(&format!(
                "{flag} applies only when serving a component file"
            )) && line.contains(field),
            "{line}"
        );
    }
}

/// `--max-component-mb` is the cap `serve` and `inspect` read a component
/// file with, not the default 100 MB: a file over it is refused by its size
/// before its content is looked at, in one line naming the cap.
#[test]
fn a_component_file_is_read_under_the_cap_given() {
    let dir = tempfile::tempdir().unwrap();
    // A component's header, padded past 1 MiB.
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.resize((1 << 20) + 1, 0);
    std::fs::write(dir.path().join("big.wasm"), &bytes).unwrap();
    for command in ["serve", "inspect"] {
        let line = fails_in(
            dir.path(),
            &[command, "big.wasm", "--max-component-mb", "1"],
        );
        assert!(
            line.contains("`big.wasm` is larger than the limit of 1048576 bytes"),
            "{command}: {line}"
        );
        assert!(line.contains("--max-component-mb"), "{command}: {line}");
        // Under a cap it fits, the file is read (and found malformed).
        let line = fails_in(
            dir.path(),
            &[command, "big.wasm", "--max-component-mb", "2"],
        );
        assert!(!line.contains("larger than the limit"), "{command}: {line}");
    }
}

/// Ctrl-C with P3 instances alive (kept for reuse) stops them as part of
/// the shutdown: none is reported as failed, or as a worker that panicked.
#[test]
fn shutdown_with_live_instances_reports_no_failure() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["serve", P3_HELLO, "--addr", "127.0.0.1:0"],
        &[],
        Duration::from_secs(120),
    );
    for _ in 0..3 {
        assert_eq!(server.get("/").0, 200);
    }
    let (clean, stderr) = server.interrupt_and_stderr();
    assert!(clean, "Ctrl-C must exit 0; stderr:\n{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("after a failure"),
        "{stderr}"
    );
}

/// With one worker thread (what `nimbus serve` takes on a one-CPU machine
/// or container, here asked for through `TOKIO_WORKER_THREADS`), the whole
/// runtime is the main thread: a request whose guest sleeps must still
/// leave that thread to answer the others, P3 and P2 alike.
#[test]
fn on_one_thread_a_sleeping_request_holds_up_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["serve", P3_HELLO, "--addr", "127.0.0.1:0"],
        &[
            ("TOKIO_WORKER_THREADS", "1"),
            ("NIMBUS_LOG", "warn,nimbus=debug"),
        ],
        Duration::from_secs(120),
    );
    assert!(
        server
            .stderr()
            .contains("the async runtime's threads threads=1"),
        "{}",
        server.stderr()
    );
    let addr = server.addr.clone();
    let sleeper = std::thread::spawn(move || request(&addr, "GET", "/sleep?ms=5000", ""));
    // Time for the sleeping request to reach its guest; the others must
    // then all be answered while it sleeps.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..20 {
        assert_eq!(server.get("/").0, 200);
    }
    assert!(
        !sleeper.is_finished(),
        "twenty requests waited for the sleeping one"
    );
    assert_eq!(sleeper.join().unwrap(), (200, "slept 5000\n".to_string()));

    let p2 = Server::start(
        dir.path(),
        &["serve", P2_BEHAVIORS, "--addr", "127.0.0.1:0"],
        &[("TOKIO_WORKER_THREADS", "1")],
        Duration::from_secs(120),
    );
    let addr = p2.addr.clone();
    let sleeper = std::thread::spawn(move || request(&addr, "GET", "/sleep?ms=5000", ""));
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..20 {
        assert_eq!(p2.get("/ok"), (200, "ok\n".to_string()));
    }
    assert!(
        !sleeper.is_finished(),
        "twenty requests waited for the sleeping one"
    );
    assert_eq!(sleeper.join().unwrap().0, 200);
}

/// A bad `TOKIO_WORKER_THREADS` is one line, not tokio's panic.
#[test]
fn a_bad_tokio_worker_threads_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = nimbus()
        .args(["serve", P3_HELLO, "--addr", "127.0.0.1:0"])
        .env("TOKIO_WORKER_THREADS", "0")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        "error: TOKIO_WORKER_THREADS is `0`: it must be a whole number of threads, 1 or more"
    );
}

/// A filesystem backend flag naming a file (here the component itself) is
/// refused before anything serves, not at the first request that reaches
/// the backend.
#[test]
fn a_filesystem_backend_that_is_not_a_directory_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--keyvalue", "--blobstore"] {
        let stderr = fails_in(dir.path(), &["serve", P2_HELLO, flag, P2_HELLO]);
        assert_eq!(
            stderr.trim(),
            format!(
                "error: {flag} `{P2_HELLO}` is not a directory: a filesystem backend keeps its data in one"
            )
        );
    }
}
