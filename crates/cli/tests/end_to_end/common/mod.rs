//! Helpers for driving the `nimbus` binary: a command with a clean
//! environment, a background server whose output is captured, and a tiny
//! HTTP/1.0 client (one request per connection, so no framing to parse).

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// `nimbus` with no log filters from the caller, a private user-config
/// directory and a shared compiled-code cache.
pub fn nimbus() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nimbus"));
    let tmp = env!("CARGO_TARGET_TMPDIR");
    cmd.env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .env_remove("NIMBUS_LOG")
        .env("NIMBUS_CONFIG_HOME", format!("{tmp}/no-user-config"))
        .env("XDG_CACHE_HOME", format!("{tmp}/xdg-cache"))
        // Every generated project builds into one target dir, so wstd and
        // friends compile once for the whole suite.
        .env("CARGO_TARGET_DIR", format!("{tmp}/projects-target"))
        // pip's cache would follow XDG_CACHE_HOME: keep the caller's, which
        // the test script warmed with the Python templates' packages.
        .env("PIP_CACHE_DIR", pip_cache());
    cmd
}

/// Where pip caches for the user running the tests.
fn pip_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("PIP_CACHE_DIR") {
        return dir.into();
    }
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(cache) => PathBuf::from(cache).join("pip"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/pip"),
    }
}

/// Runs `nimbus ARGS` in `dir`, expects failure, returns stderr after
/// checking it is one clear `error:` line.
pub fn fails_in(dir: &Path, args: &[&str]) -> String {
    let out = nimbus().args(args).current_dir(dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure for {args:?}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    let lines: Vec<_> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("warning:"))
        .collect();
    assert_eq!(lines.len(), 1, "one line of error, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

/// Runs `nimbus ARGS` in `dir` and returns stdout, failing with stderr.
pub fn succeeds_in(dir: &Path, args: &[&str]) -> (String, String) {
    let out = nimbus().args(args).current_dir(dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?} failed:\n{stderr}");
    (stdout, stderr)
}

/// An HTTP server on loopback answering every connection with 200 and
/// `body`; its address.
pub fn fixed_upstream(body: &'static str) -> std::net::SocketAddr {
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = upstream.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in upstream.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    addr
}

/// `nimbus new TEMPLATE NAME` inside a fresh temporary directory.
pub fn new_project(template: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
    let parent = tempfile::tempdir().unwrap();
    succeeds_in(parent.path(), &["new", template, name]);
    let dir = parent.path().join(name);
    assert!(dir.join(".nimbus/config.yaml").is_file());
    assert!(dir.join(".gitignore").is_file());
    (parent, dir)
}

/// A `nimbus` process serving in the background; killed on drop.
pub struct Server {
    child: Child,
    pub addr: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// Reads stderr until the process's end closes it.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Spawns `nimbus ARGS` in `dir` and waits (up to `wait`) for its
    /// `Serving on http://ADDR/` line.
    pub fn start(dir: &Path, args: &[&str], envs: &[(&str, &str)], wait: Duration) -> Self {
        Self::start_when(dir, args, envs, wait, "Serving on http://")
    }

    /// Spawns `nimbus ARGS` in `dir` and waits (up to `wait`) for a stdout
    /// line starting with `ready`; `addr` gets the rest of that line (a
    /// trailing `/` removed).
    pub fn start_when(
        dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        wait: Duration,
        ready: &str,
    ) -> Self {
        let mut cmd = nimbus();
        cmd.args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr_pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = std::thread::spawn({
            let stderr = stderr.clone();
            move || {
                for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                    let mut all = stderr.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        let stdout_text = Arc::new(Mutex::new(String::new()));
        std::thread::spawn({
            let stdout_text = stdout_text.clone();
            move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    {
                        let mut all = stdout_text.lock().unwrap();
                        all.push_str(&line);
                        all.push('\n');
                    }
                    let _ = tx.send(line);
                }
            }
        });
        let mut server = Self {
            child,
            addr: String::new(),
            stdout: stdout_text,
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix(ready) {
                        server.addr = addr.strip_suffix('/').unwrap_or(addr).to_string();
                        return server;
                    }
                }
                Err(_) => panic!(
                    "no `{ready}` line within {wait:?}; stderr:\n{}",
                    server.stderr()
                ),
            }
        }
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle` at least `occurrences` times,
    /// up to `wait`.
    pub fn wait_for_stderr(&self, needle: &str, occurrences: usize, wait: Duration) {
        self.wait_for(&self.stderr, "stderr", needle, occurrences, wait);
    }

    /// Waits until stdout contains `needle` at least `occurrences` times,
    /// up to `wait`.
    pub fn wait_for_stdout(&self, needle: &str, occurrences: usize, wait: Duration) {
        self.wait_for(&self.stdout, "stdout", needle, occurrences, wait);
    }

    fn wait_for(
        &self,
        text: &Mutex<String>,
        which: &str,
        needle: &str,
        occurrences: usize,
        wait: Duration,
    ) {
        let deadline = Instant::now() + wait;
        while text.lock().unwrap().matches(needle).count() < occurrences {
            assert!(
                Instant::now() < deadline,
                "`{needle}` (x{occurrences}) not seen on {which} within {wait:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `GET path` → (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        request(&self.addr, "GET", path, "")
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and returns how long the process took to exit (a hang
    /// guard of 60 s fails the test) and whether it exited with status 0.
    pub fn terminate(mut self) -> (Duration, bool) {
        let sent = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return (sent.elapsed(), exit.success());
            }
            assert!(
                sent.elapsed() < Duration::from_secs(60),
                "no exit within 60 s of SIGTERM; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGINT, and returns whether the process exited with status 0
    /// and all it wrote to stderr, to its last line.
    pub fn interrupt_and_stderr(mut self) -> (bool, String) {
        let reader = self.stderr_reader.take();
        let stderr = self.stderr.clone();
        let clean = self.interrupt();
        if let Some(reader) = reader {
            // The pipe ends with the process, unless something it started
            // holds it open: then read what has come, without waiting on.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if reader.is_finished() {
                reader.join().unwrap();
            } else {
                // Said in the text itself, so that an assertion on what the
                // output lacks, or on its last line, cannot mislead.
                stderr
                    .lock()
                    .unwrap()
                    .push_str("\n[test harness: stderr still open 10 s after exit; output may be cut short]\n");
            }
        }
        let stderr = stderr.lock().unwrap().clone();
        (clean, stderr)
    }

    /// Sends SIGINT and returns whether the process exited with status 0.
    pub fn interrupt(mut self) -> bool {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit.success();
            }
            assert!(Instant::now() < deadline, "no exit after Ctrl-C");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin endpoint's address a serving command printed at start.
pub fn console_addr(server: &Server) -> String {
    const LINE: &str = "Console on http://";
    server.wait_for_stderr(LINE, 1, Duration::from_secs(10));
    let stderr = server.stderr();
    stderr
        .split(LINE)
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no console address in:\n{stderr}"))
        .to_string()
}

/// One HTTP/1.0 request; the body ends when the server closes.
pub fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = request_with_headers(addr, method, path, &[], body);
    (status, body)
}

/// One HTTP/1.0 request with extra headers → (status, response head, body).
pub fn request_with_headers(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    // `Host: localhost` unless the caller names the host.
    let host = if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        ""
    } else {
        "Host: localhost\r\n"
    };
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\n{host}{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let (head, body) = response
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_ascii_lowercase(), b.to_string()))
        .unwrap_or_default();
    (status, head, body)
}

/// Writes `text` to `path` with mode 0600, creating parent directories.
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
