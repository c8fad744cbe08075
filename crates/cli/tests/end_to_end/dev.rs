//! The developer loop as a new user meets it: `nimbus new`, `nimbus dev`
//! with live reload, `nimbus build`, and every embedded template building
//! and answering.

use crate::common;

use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Long enough for a cold release build of a template's dependencies.
const FIRST_BUILD: Duration = Duration::from_secs(600);
/// Long enough for an incremental rebuild.
const REBUILD: Duration = Duration::from_secs(300);

fn wait_until(what: &str, wait: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {wait:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn new_dev_edit_reload_and_broken_build_keep_serving() {
    let (_parent, dir) = new_project("http-hello-world", "demo");
    let server = Server::start(
        &dir,
        &["dev", "--addr", "127.0.0.1:0", "--debounce-ms", "200"],
        &[],
        FIRST_BUILD,
    );
    assert_eq!(server.get("/"), (200, "Hello from demo!\n".into()));
    // stderr is read on its own thread: wait for the line rather than race it.
    server.wait_for_stdout("✓ serving", 1, Duration::from_secs(10));

    // A client hammers the server through every swap below.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let answered = Arc::new(AtomicUsize::new(0));
    let client = std::thread::spawn({
        let (stop, failures, answered) = (stop.clone(), failures.clone(), answered.clone());
        let addr = server.addr.clone();
        move || {
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = request(&addr, "GET", "/", "");
                if status != 200 || !body.starts_with("Hello") {
                    failures.lock().unwrap().push(format!("{status} {body:?}"));
                }
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let main_rs = dir.join("src/main.rs");
    let source = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(&main_rs, source.replace("Hello from", "Hello again from")).unwrap();
    wait_until("the edited text is served", REBUILD, || {
        server.get("/").1 == "Hello again from demo!\n"
    });
    server.wait_for_stdout("✓ reloaded", 1, Duration::from_secs(5));
    let reload_line = server
        .stdout()
        .lines()
        .find(|l| l.contains("✓ reloaded"))
        .unwrap()
        .to_string();
    assert!(
        reload_line.contains("build") && reload_line.contains("swap"),
        "{reload_line}"
    );

    // A syntax error: the compiler's message is shown and the last good
    // version keeps answering.
    let good = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(&main_rs, format!("{good}\nfn broken( {{\n")).unwrap();
    server.wait_for_stderr("✗ build of demo failed", 1, REBUILD);
    // Its own line, after the failure's: read on the stderr thread, so
    // waited for rather than raced.
    server.wait_for_stderr(
        "still serving the last good version",
        1,
        Duration::from_secs(5),
    );
    let stderr = server.stderr();
    assert!(
        stderr.contains("error"),
        "compiler output missing:\n{stderr}"
    );
    assert_eq!(server.get("/"), (200, "Hello again from demo!\n".into()));

    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during reloads: {:?}",
        failures.len(),
        answered.load(Ordering::Relaxed),
        &failures[..failures.len().min(5)]
    );
    assert!(answered.load(Ordering::Relaxed) > 0);
    assert!(server.interrupt(), "Ctrl-C must exit 0");
}

#[test]
fn build_prints_the_component_path_and_size_for_every_library_template() {
    for (template, name, wasm) in [
        ("http-kv-counter", "counter", "counter.wasm"),
        ("http-blobstore", "files", "files.wasm"),
        ("http-middleware", "guard", "guard.wasm"),
    ] {
        let (_parent, dir) = new_project(template, name);
        let (stdout, _) = succeeds_in(&dir, &["build"]);
        assert!(stdout.contains(wasm), "{stdout}");
        assert!(stdout.contains("KiB") || stdout.contains("MiB"), "{stdout}");
        let path = stdout.split(" (").next().unwrap().trim();
        let (inspect, _) = succeeds_in(&dir, &["inspect", path]);
        match template {
            "http-kv-counter" => {
                assert!(inspect.contains("import wasi:keyvalue/atomics@0.2.0-draft"));
                assert!(inspect.contains("export wasi:http/incoming-handler@0.2"));
            }
            "http-blobstore" => {
                assert!(inspect.contains("import wasi:blobstore/blobstore@0.2.0-draft"));
                assert!(inspect.contains("export wasi:http/incoming-handler@0.2"));
            }
            _ => {
                assert!(inspect.contains("import wasi:http/outgoing-handler@0.2"));
                assert!(inspect.contains("export wasi:http/incoming-handler@0.2"));
            }
        }
    }
}

#[test]
fn http_middleware_template_wraps_a_hello_world_in_dev_and_reloads_the_app() {
    // The middleware's dev config names `../hello` as a project: `nimbus
    // dev` builds it too (under CARGO_TARGET_DIR, the suite's shared
    // target dir: no path in the config names a target dir).
    let (parent, guard) = new_project("http-middleware", "guard");
    succeeds_in(parent.path(), &["new", "http-hello-world", "hello"]);
    let config = std::fs::read_to_string(guard.join(".nimbus/config.yaml")).unwrap();
    assert!(config.contains("project: ../hello"), "{config}");
    assert!(!config.contains("target/wasm32"), "{config}");
    let server = Server::start(&guard, &["dev", "--addr", "127.0.0.1:0"], &[], FIRST_BUILD);

    let (status, head, body) = request_with_headers(&server.addr, "GET", "/", &[], "");
    assert_eq!(
        (status, body.as_str()),
        (200, "Hello from hello!\n"),
        "{head}"
    );
    assert!(head.contains("x-middleware: guard"), "{head}");
    assert!(head.contains("server-timing: guard;dur="), "{head}");

    let (status, _, body) =
        request_with_headers(&server.addr, "GET", "/", &[("x-block", "yes")], "");
    assert_eq!((status, body.as_str()), (403, "blocked by guard\n"));

    // Editing the wrapped app changes the answer, still through the
    // middleware; only the app is rebuilt.
    let main_rs = parent.path().join("hello/src/main.rs");
    let source = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(&main_rs, source.replace("Hello from", "Wrapped hello from")).unwrap();
    wait_until("the edited app answers", REBUILD, || {
        server.get("/").1 == "Wrapped hello from hello!\n"
    });
    let (_, head, _) = request_with_headers(&server.addr, "GET", "/", &[], "");
    assert!(head.contains("x-middleware: guard"), "{head}");
    server.wait_for_stdout("✓ reloaded app", 1, Duration::from_secs(5));
    let reloads: Vec<String> = server
        .stdout()
        .lines()
        .filter(|l| l.contains("✓ reloaded"))
        .map(str::to_string)
        .collect();
    assert_eq!(reloads.len(), 1, "{reloads:?}");
    assert!(
        !reloads[0].contains("guard"),
        "only the app rebuilt: {reloads:?}"
    );
}

/// `nimbus dev` with its output redirected into the project, and a process
/// writing logs and data there: no reload in 10 idle seconds.
#[test]
fn dev_writing_into_its_own_project_stays_idle() {
    let (_parent, dir) = new_project("http-hello-world", "quiet");
    std::fs::write(dir.join(".gitignore"), "/target/\n/data/\n").unwrap();
    let stdout = std::fs::File::create(dir.join("dev.log")).unwrap();
    let stderr = std::fs::File::create(dir.join("dev.err")).unwrap();
    let mut child = nimbus()
        .args(["dev", "--addr", "127.0.0.1:0", "--debounce-ms", "100"])
        .current_dir(&dir)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let started = Instant::now();
    while !read("dev.log").contains("Serving on http://") {
        if started.elapsed() > FIRST_BUILD || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("not serving:\n{}\n{}", read("dev.log"), read("dev.err"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let addr = read("dev.log")
        .lines()
        .find_map(|l| {
            l.strip_prefix("Serving on http://")
                .map(|a| a.trim_end_matches('/').to_string())
        })
        .unwrap();

    // Ten seconds of another process's log lines, git-ignored data, a
    // README edit and a source saved unchanged, with requests (which make
    // nimbus log) all along.
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let main_rs = dir.join("src/main.rs");
    let source = std::fs::read_to_string(&main_rs).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    while Instant::now() < until {
        i += 1;
        let line = format!("line {i}\n");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("app.log"))
            .unwrap();
        std::io::Write::write_all(&mut log, line.as_bytes()).unwrap();
        std::fs::write(dir.join(format!("data/blob-{i}")), &line).unwrap();
        std::fs::write(dir.join("README.md"), format!("# quiet\n{line}")).unwrap();
        std::fs::write(&main_rs, &source).unwrap();
        assert_eq!(request(&addr, "GET", "/", "").0, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    let _ = child.kill();
    let _ = child.wait();
    let (out, err) = (read("dev.log"), read("dev.err"));
    assert_eq!(
        out.matches("✓ ").count(),
        1,
        "one start, no reload:\n{out}\n{err}"
    );
    assert!(out.contains("✓ serving"), "{out}");
    assert_eq!(
        err.matches("building quiet").count(),
        1,
        "one build:\n{err}"
    );
}

/// While the first build runs the port answers 503 with `Retry-After`
/// and says so; after a failed first build it says that instead.
#[test]
fn dev_answers_503_with_retry_after_until_the_first_build_serves() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".nimbus")).unwrap();
    std::fs::write(
        dir.path().join(".nimbus/config.yaml"),
        "build:\n  command: 'for i in $(seq 600); do [ -f go ] && break; sleep 0.1; done; echo \"compiler: $((6 * 7))\" >&2; exit 1'\n  component_path: app.wasm\n",
    )
    .unwrap();
    let server = Server::start_when(
        dir.path(),
        &["dev", "--addr", "127.0.0.1:0"],
        &[],
        Duration::from_secs(30),
        "Listening on http://",
    );
    let addr = server
        .addr
        .split(' ')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let (status, head, body) = request_with_headers(&addr, "GET", "/", &[], "");
    assert_eq!(status, 503, "{head}{body}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 2"),
        "{head}"
    );
    assert!(body.contains("is building (first build)"), "{body}");
    // The build waits for this file: the answer above came while it ran.
    std::fs::write(dir.path().join("go"), "").unwrap();
    server.wait_for_stderr("✗ build of", 1, Duration::from_secs(30));
    let stderr = server.stderr();
    assert_eq!(stderr.matches("compiler: 42").count(), 1, "once:\n{stderr}");
    let (status, head, body) = request_with_headers(&addr, "GET", "/", &[], "");
    assert_eq!(status, 503, "{head}{body}");
    assert!(body.contains("has not built yet"), "{body}");
}

#[test]
fn build_and_dev_outside_a_project_fail_before_running_anything() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["build"][..], &["dev", "--addr", "127.0.0.1:0"]] {
        let line = fails_in(dir.path(), args);
        assert!(line.contains("is not a project"), "{line}");
        assert!(line.contains("nimbus new"), "{line}");
    }
}

#[test]
fn http_kv_counter_template_counts_and_a_filesystem_store_survives_a_restart() {
    let (_parent, dir) = new_project("http-kv-counter", "hits");
    let server = Server::start(&dir, &["dev", "--addr", "127.0.0.1:0"], &[], FIRST_BUILD);
    assert_eq!(server.get("/a"), (200, "a: 1\n".into()));
    assert_eq!(server.get("/a"), (200, "a: 2\n".into()));
    assert_eq!(server.get("/b"), (200, "b: 1\n".into()));
    drop(server);

    // The same project on the filesystem backend (outside the project, so
    // the store's writes do not trigger rebuilds), across two hosts.
    let store = tempfile::tempdir().unwrap();
    let config = dir.join(".nimbus/config.yaml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "keyvalue: memory",
        &format!("keyvalue: {}", store.path().display()),
    );
    std::fs::write(&config, text).unwrap();
    let server = Server::start(&dir, &["dev", "--addr", "127.0.0.1:0"], &[], FIRST_BUILD);
    assert_eq!(server.get("/a"), (200, "a: 1\n".into()));
    drop(server);
    let server = Server::start(&dir, &["dev", "--addr", "127.0.0.1:0"], &[], FIRST_BUILD);
    assert_eq!(server.get("/a"), (200, "a: 2\n".into()));
    assert!(store.path().join("keyvalue.redb").is_file());
}

#[test]
fn http_postgres_template_stores_lists_and_deletes_notes_and_survives_a_database_restart() {
    use test_programs::servers::{Kind, POSTGRES_PASSWORD, POSTGRES_USER, Server as Backing};
    let Some(mut database) = Backing::start(Kind::Postgres) else {
        return;
    };
    let (_parent, dir) = new_project("http-postgres", "notes");
    let config = dir.join(".nimbus/config.yaml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "postgres_url: postgres://postgres:postgres@127.0.0.1:5432",
        &format!(
            "postgres_url: postgres://{POSTGRES_USER}:{POSTGRES_PASSWORD}@{}",
            database.addr()
        ),
    );
    std::fs::write(&config, text).unwrap();
    // The URL is a secret: `config show` does not print it.
    let (shown, _) = succeeds_in(&dir, &["config", "show"]);
    assert!(shown.contains("postgres_url: <redacted>"), "{shown}");
    assert!(!shown.contains(POSTGRES_PASSWORD), "{shown}");

    let server = Server::start(&dir, &["dev", "--addr", "127.0.0.1:0"], &[], FIRST_BUILD);
    assert_eq!(server.get("/notes"), (200, "[]".into()));
    assert_eq!(
        request(&server.addr, "POST", "/notes", "buy \"milk\""),
        (201, "{\"id\":1}".into())
    );
    assert_eq!(
        request(&server.addr, "POST", "/notes", "call home"),
        (201, "{\"id\":2}".into())
    );
    assert_eq!(
        server.get("/notes"),
        (
            200,
            r#"[{"id":1,"body":"buy \"milk\""},{"id":2,"body":"call home"}]"#.into()
        )
    );
    assert_eq!(
        request(&server.addr, "DELETE", "/notes/1", ""),
        (204, String::new())
    );
    assert_eq!(
        server.get("/notes/1"),
        (404, r#"{"error":"no such note"}"#.into())
    );

    // The database goes away: a clear 503; it comes back: answered again.
    database.stop();
    let (status, body) = server.get("/notes/2");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with(r#"{"error":"database unavailable: "#),
        "{body}"
    );
    database.restart();
    assert_eq!(
        server.get("/notes/2"),
        (200, r#"{"id":2,"body":"call home"}"#.into())
    );
}

#[test]
fn http_blobstore_template_uploads_downloads_lists_and_deletes() {
    let (_parent, dir) = new_project("http-blobstore", "files");
    let store = tempfile::tempdir().unwrap();
    // On the filesystem backend, outside the project so writes do not
    // trigger rebuilds; the objects must land there.
    let config = dir.join(".nimbus/config.yaml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "blobstore: memory",
        &format!("blobstore: {}", store.path().display()),
    );
    std::fs::write(&config, text).unwrap();
    let server = Server::start(&dir, &["dev", "--addr", "127.0.0.1:0"], &[], FIRST_BUILD);
    assert_eq!(server.get("/"), (200, String::new()));
    // Larger than one stream chunk in both directions.
    let big: String = (0..3 * 1024 * 1024u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert_eq!(
        request(&server.addr, "PUT", "/big.txt", &big),
        (201, format!("stored big.txt ({} bytes)\n", big.len()))
    );
    assert_eq!(request(&server.addr, "PUT", "/note.txt", "hi").0, 201);
    let (status, body) = server.get("/big.txt");
    assert_eq!(status, 200);
    assert!(
        body == big,
        "download differs: {} of {} bytes",
        body.len(),
        big.len()
    );
    assert_eq!(server.get("/"), (200, "big.txt\nnote.txt\n".into()));
    assert_eq!(request(&server.addr, "DELETE", "/note.txt", "").0, 204);
    assert_eq!(server.get("/note.txt").0, 404);
    assert_eq!(server.get("/"), (200, "big.txt\n".into()));
    assert!(store.path().join("blobstore/files/big.txt").is_file());
}

#[test]
fn new_refuses_bad_names_unknown_templates_and_existing_dirs() {
    let parent = tempfile::tempdir().unwrap();
    let err = fails_in(parent.path(), &["new", "http-hello-world", "Bad_Name"]);
    assert!(err.contains("not a valid project name"), "{err}");
    let err = fails_in(parent.path(), &["new", "no-such-template", "x"]);
    assert!(
        err.contains("no template named `no-such-template`"),
        "{err}"
    );
    assert!(err.contains("http-hello-world"), "{err}");
    succeeds_in(parent.path(), &["new", "http-hello-world", "twice"]);
    let err = fails_in(parent.path(), &["new", "http-hello-world", "twice"]);
    assert!(err.contains("already exists"), "{err}");
    let (list, _) = succeeds_in(parent.path(), &["new", "--list"]);
    for name in [
        "http-hello-world",
        "http-client",
        "http-handler",
        "http-kv-counter",
        "http-blobstore",
        "http-middleware",
    ] {
        assert!(list.contains(name), "{list}");
    }
}

/// A template directory is copied with bounds: never into itself, no
/// file past the size limit, and nothing half-made left after a refusal.
#[test]
fn new_from_a_path_refuses_its_own_inside_and_huge_files() {
    let template = tempfile::tempdir().unwrap();
    std::fs::write(template.path().join("README.md"), "# {{project-name}}\n").unwrap();
    let path = template.path().display().to_string();
    let err = fails_in(template.path(), &["new", "--path", &path, "inside"]);
    assert!(err.contains("is inside the template directory"), "{err}");
    assert!(!template.path().join("inside").exists());

    std::fs::File::create(template.path().join("huge.bin"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = fails_in(out.path(), &["new", "--path", &path, "huge"]);
    assert!(err.contains("huge.bin") && err.contains("larger"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        !out.path().join("huge").exists(),
        "a half-made project was left"
    );

    let err = fails_in(out.path(), &["new", "--path", "/dev/null", "dev"]);
    assert!(err.contains("is not a directory"), "{err}");
}

#[test]
fn new_from_a_local_path_and_from_git_with_subfolder() {
    let source = tempfile::tempdir().unwrap();
    let template = source.path().join("templates/mine");
    std::fs::create_dir_all(template.join("src")).unwrap();
    std::fs::write(template.join("README.md"), "# {{project-name}}\n").unwrap();
    std::fs::write(template.join("src/lib.rs"), "// {{crate_name}}\n").unwrap();
    std::fs::write(template.join("gitignore"), "/target/\n").unwrap();

    let out = tempfile::tempdir().unwrap();
    let path = template.display().to_string();
    succeeds_in(out.path(), &["new", "--path", &path, "from-path"]);
    assert_eq!(
        std::fs::read_to_string(out.path().join("from-path/README.md")).unwrap(),
        "# from-path\n"
    );
    assert!(out.path().join("from-path/.gitignore").is_file());

    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(source.path())
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "template"]);
    let url = format!("file://{}", source.path().display());
    succeeds_in(
        out.path(),
        &[
            "new",
            "--git",
            &url,
            "--subfolder",
            "templates/mine",
            "from-git",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("from-git/src/lib.rs")).unwrap(),
        "// from_git\n"
    );
    let err = fails_in(
        out.path(),
        &["new", "--git", "file:///nonexistent/repo", "nope"],
    );
    assert!(err.contains("cannot clone"), "{err}");
}

/// wash's `dev.service_file`: `nimbus dev` runs the service beside the
/// project's component, on the workload's virtual loopback, as `wash dev`
/// does.
#[test]
fn dev_runs_the_wash_service_file_beside_the_component() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".wash")).unwrap();
    std::fs::copy(test_programs::P2_SERVICE, dir.path().join("service.wasm")).unwrap();
    std::fs::write(
        dir.path().join(".wash/config.yaml"),
        format!(
            "build:\n  command: cp {} app.wasm\n  component_path: app.wasm\ndev:\n  service_file: service.wasm\n",
            test_programs::P2_SERVICE_CLIENT
        ),
    )
    .unwrap();
    let server = Server::start(
        dir.path(),
        &["dev", "--addr", "127.0.0.1:0"],
        &[],
        FIRST_BUILD,
    );
    // The component's request reaches the service over the virtual
    // loopback; the service answers `<started> <line>`.
    let mut answer = (0, String::new());
    wait_until("the service answers", Duration::from_secs(30), || {
        answer = server.get("/ask?line=hello");
        answer.0 == 200
    });
    let (status, body) = answer;
    assert_eq!(status, 200, "{body}");
    assert!(body.trim_end().ends_with(" hello"), "{body}");
}

/// A config edit that no longer loads is one `error:` line saying each
/// cause once (`{e:#}` said "not UTF-8 text" twice), and the workload of
/// the previous config keeps serving.
#[test]
fn a_config_that_no_longer_loads_is_one_line_and_the_last_one_serves() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".nimbus")).unwrap();
    let config = dir.path().join(".nimbus/config.yaml");
    std::fs::write(
        &config,
        format!(
            "build:\n  command: cp {} out.wasm\n  component_path: out.wasm\n",
            test_programs::P2_HELLO
        ),
    )
    .unwrap();
    let server = Server::start(
        dir.path(),
        &["dev", "--addr", "127.0.0.1:0", "--debounce-ms", "200"],
        &[],
        Duration::from_secs(120),
    );
    server.wait_for_stdout("✓ serving", 1, Duration::from_secs(10));
    std::fs::write(&config, b"build:\n  command: \xff\xfe\n").unwrap();
    server.wait_for_stderr("keeping the previous config", 1, Duration::from_secs(30));
    let stderr = server.stderr();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(".nimbus/config.yaml"), "{stderr}");
    assert_eq!(errors[0].matches("not UTF-8 text").count(), 1, "{stderr}");
    assert_eq!(server.get("/").0, 200);
}
