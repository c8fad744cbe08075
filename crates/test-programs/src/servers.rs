//! Real backing servers for tests: `redis-server`, `nats-server` (with
//! JetStream), an OCI registry (`docker-registry`) and PostgreSQL (a fresh
//! cluster made by `initdb` in a temporary directory), each started on a
//! free loopback port and stopped when its handle drops.
//!
//! A server binary that is missing fails the test under CI (`CI=true`);
//! elsewhere [`Server::start`] returns `None` after printing why and how to
//! install it, and the test returns early. Each server runs under a small
//! `sh` guard that kills it when the test process goes away, even if the
//! process dies without unwinding, so no server outlives its test.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `redis-server`.
    Redis,
    /// `nats-server -js`.
    Nats,
    /// `docker-registry serve`: an OCI distribution registry over plain HTTP.
    Registry,
    /// PostgreSQL (Debian's `postgresql` package): a cluster of its own,
    /// user [`POSTGRES_USER`] with password [`POSTGRES_PASSWORD`].
    Postgres,
}

/// The superuser of a [`Kind::Postgres`] server's cluster.
pub const POSTGRES_USER: &str = "nimbus";
/// That user's password (the cluster asks for it over TCP: scram-sha-256).
pub const POSTGRES_PASSWORD: &str = "nimbus-test-password";

impl Kind {
    fn binary(self) -> &'static str {
        match self {
            Self::Redis => "redis-server",
            Self::Nats => "nats-server",
            Self::Registry => "docker-registry",
            Self::Postgres => "postgres",
        }
    }

    /// The Debian package that installs it.
    fn package(self) -> &'static str {
        match self {
            Self::Postgres => "postgresql",
            other => other.binary(),
        }
    }
}

/// A running server.
pub struct Server {
    kind: Kind,
    port: u16,
    data: tempfile::TempDir,
    guard: Option<Child>,
    // Extra arguments (a NATS cluster member's name, cluster port, routes).
    extra: Vec<String>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} on port {}", self.kind, self.port)
    }
}

/// Finds `binary` on PATH (or in /usr/sbin, where Debian puts nats-server,
/// or in PostgreSQL's versioned directory, newest first).
fn find(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut postgres_dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    postgres_dirs.sort_by_key(|dir| {
        std::cmp::Reverse(
            dir.parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .chain(postgres_dirs)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

/// Whether `kind`'s binary is installed: panics under CI when it is not,
/// else prints why the test is skipped and how to install it.
fn available(kind: Kind) -> bool {
    let binary = kind.binary();
    if find(binary).is_some() {
        return true;
    }
    let hint = format!(
        "`{binary}` is not installed; install it with `apt-get install {}` (or run ./scripts/test.sh as root)",
        kind.package()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{hint}: CI must run the service-backed tests");
    }
    eprintln!("skipped: {hint}");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Server {
    /// Starts a server, or returns `None` (outside CI) when its binary is
    /// missing. Panics in CI when it is missing, and when it does not come up.
    pub fn start(kind: Kind) -> Option<Self> {
        if !available(kind) {
            return None;
        }
        let mut server = Self {
            kind,
            port: free_port(),
            data: tempfile::tempdir().expect("a temporary data directory"),
            guard: None,
            extra: Vec::new(),
        };
        if kind == Kind::Postgres {
            server.init_postgres();
        }
        server.launch();
        Some(server)
    }

    /// Restarts a PostgreSQL server with TLS on (`ssl=on`), serving
    /// `cert_pem` with `key_pem` (see `tls_echo::TestCertificate`).
    pub fn enable_postgres_tls(&mut self, cert_pem: &str, key_pem: &str) {
        assert_eq!(
            self.kind,
            Kind::Postgres,
            "TLS is set up for PostgreSQL only"
        );
        let dir = self.data.path().to_path_buf();
        let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::write(&cert, cert_pem).expect("write the server certificate");
        std::fs::write(&key, key_pem).expect("write the server key");
        // The server refuses a key others can read.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("make the key private");
        if is_root() {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .args([&cert, &key])
                .status()
                .expect("run chown");
            assert!(status.success(), "chown the TLS files to `postgres`");
        }
        self.extra = vec![
            "-c".into(),
            "ssl=on".into(),
            "-c".into(),
            format!("ssl_cert_file={}", cert.display()),
            "-c".into(),
            format!("ssl_key_file={}", key.display()),
        ];
        self.restart();
    }

    /// Makes the PostgreSQL cluster in the data directory: owned by the
    /// `postgres` system user when the tests run as root (the server
    /// refuses to run as root), password authentication over TCP.
    fn init_postgres(&mut self) {
        let dir = self.data.path();
        let password_file = dir.join("password");
        std::fs::write(&password_file, POSTGRES_PASSWORD).expect("write the password file");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir)
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "chown the PostgreSQL data directory to `postgres`"
            );
        }
        let initdb = find("initdb").expect("initdb beside postgres");
        let output = as_postgres_user(&initdb)
            .arg("-D")
            .arg(dir.join("cluster"))
            .args([
                "-U",
                POSTGRES_USER,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", password_file.display()))
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The password was only needed by initdb.
        let _ = std::fs::remove_file(&password_file);
    }

    /// Starts a cluster of `size` `nats-server`s with JetStream, routed to
    /// each other on loopback, or `None` (outside CI) when the binary is
    /// missing. Returns once every member accepts clients; JetStream may
    /// need a moment more to elect its meta leader.
    pub fn nats_cluster(size: usize) -> Option<Vec<Self>> {
        if !available(Kind::Nats) {
            return None;
        }
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes: Vec<String> = cluster_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        let mut members: Vec<Self> = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, port)| Self {
                kind: Kind::Nats,
                port: free_port(),
                data: tempfile::tempdir().expect("a temporary data directory"),
                guard: None,
                extra: vec![
                    "-n".into(),
                    format!("n{i}"),
                    "--cluster_name".into(),
                    "nimbus-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{port}"),
                    "--routes".into(),
                    routes.join(","),
                ],
            })
            .collect();
        for member in &mut members {
            member.launch();
        }
        Some(members)
    }

    /// `redis://127.0.0.1:PORT`, `nats://127.0.0.1:PORT`, or for a
    /// registry `127.0.0.1:PORT` (the registry part of image references).
    pub fn url(&self) -> String {
        match self.kind {
            Kind::Redis => format!("redis://127.0.0.1:{}", self.port),
            Kind::Nats => format!("nats://127.0.0.1:{}", self.port),
            Kind::Registry => format!("127.0.0.1:{}", self.port),
            Kind::Postgres => format!(
                "postgres://{POSTGRES_USER}@127.0.0.1:{}/postgres",
                self.port
            ),
        }
    }

    /// Where the server keeps its data.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    /// The loopback address it listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Stops the server (data on disk is kept for [`restart`](Self::restart)).
    pub fn stop(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            // Closing the guard's stdin makes it kill the server and exit.
            drop(guard.stdin.take());
            let _ = guard.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.addr(), Duration::from_millis(100)).is_ok() {
            assert!(Instant::now() < deadline, "{self:?} did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn launch(&mut self) {
        let port = self.port.to_string();
        let data = self
            .data
            .path()
            .to_str()
            .expect("UTF-8 temp dir")
            .to_string();
        let args: Vec<String> = match self.kind {
            Kind::Redis => vec![
                "--bind".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port,
                "--save".into(),
                "".into(),
                "--appendonly".into(),
                "no".into(),
                "--dir".into(),
                data,
            ],
            Kind::Nats => vec![
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port,
                "-js".into(),
                "-sd".into(),
                data,
            ]
            .into_iter()
            .chain(self.extra.iter().cloned())
            .collect(),
            Kind::Registry => {
                let config = self.data.path().join("registry.yml");
                std::fs::write(
                    &config,
                    format!(
                        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {data}/storage\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
                    ),
                )
                .expect("write the registry config");
                vec!["serve".into(), config.display().to_string()]
            }
            Kind::Postgres => vec![
                "-D".into(),
                format!("{data}/cluster"),
                "-p".into(),
                port,
                "-k".into(),
                data,
                "-c".into(),
                "listen_addresses=127.0.0.1".into(),
                "-c".into(),
                "fsync=off".into(),
            ]
            .into_iter()
            .chain(self.extra.iter().cloned())
            .collect(),
        };
        let binary = find(self.kind.binary()).expect("checked in start");
        let mut command = vec![binary.into_os_string()];
        if self.kind == Kind::Postgres && is_root() {
            // setpriv execs the server itself, so the guard's signal reaches it.
            let setpriv: Vec<std::ffi::OsString> = [
                "setpriv",
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ]
            .map(Into::into)
            .into();
            command.splice(0..0, setpriv);
        }
        // SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for clients).
        let signal = if self.kind == Kind::Postgres {
            "INT"
        } else {
            "TERM"
        };
        // The guard shell starts the server, then waits on its stdin: when
        // the test closes it (or dies), the server is killed.
        let mut guard = Command::new("sh")
            .arg("-c")
            .arg(format!(
                r#""$@" >/dev/null 2>&1 & pid=$!; read _ignored; kill -s {signal} $pid; wait $pid"#
            ))
            .arg("sh")
            .args(command)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server guard");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                let _ = guard.stdin.take().map(|mut s| s.write_all(b"\n"));
                panic!("{:?} did not start within 20 s", self.kind);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.guard = Some(guard);
        if self.kind == Kind::Postgres {
            self.wait_until_postgres_accepts(deadline);
        }
    }

    /// The port opens before the cluster has finished starting: wait for
    /// `pg_isready` to say it accepts connections.
    fn wait_until_postgres_accepts(&self, deadline: Instant) {
        let Some(ready) = find("pg_isready") else {
            return;
        };
        loop {
            let accepted = Command::new(&ready)
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if accepted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not accept connections within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn is_root() -> bool {
    // Without a libc binding: the effective uid is in /proc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// A command for `program` run as the `postgres` user when we are root.
fn as_postgres_user(program: &std::path::Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            drop(guard.stdin.take());
            let _ = guard.wait();
        }
    }
}
