//! `--admin-addr` and `--admin-token`: where a serving command exposes
//! `/metrics`, `/healthz`, `/readyz` and the web console, the token that
//! guards its data, and the parsing shared by the commands that take them.

use anyhow::{Context as _, bail};
use clap::Args;
use nimbus_host::Host;
use nimbus_host::http::admin::{AdminEndpoint, Readiness, serve_admin};
use nimbus_host::http::console::{ClusterSource, Console};
use nimbus_model::Secret;
use std::net::SocketAddr;
use std::sync::Arc;

/// `--admin-addr`: an address, or `off` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AdminAddr(pub(crate) Option<SocketAddr>);

impl std::str::FromStr for AdminAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "off" | "none" | "" => Ok(Self(None)),
            addr => addr
                .parse()
                .map(|addr| Self(Some(addr)))
                .map_err(|_| format!("`{text}` is neither an address (HOST:PORT) nor `off`")),
        }
    }
}

/// Where the admin token is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenSource {
    /// An environment variable.
    Env(String),
    /// A file's first line.
    File(std::path::PathBuf),
}

impl std::str::FromStr for TokenSource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some(("env", name)) if !name.is_empty() => Ok(Self::Env(name.to_string())),
            Some(("file", path)) if !path.is_empty() => Ok(Self::File(path.into())),
            _ => Err(format!(
                "`{text}` is not a token source: write env:NAME or file:PATH (the token itself never goes on the command line)"
            )),
        }
    }
}

/// Longest token file read.
const TOKEN_FILE_LIMIT: u64 = 4096;

impl TokenSource {
    /// Reads the token: one line, not empty.
    fn read(&self) -> anyhow::Result<Secret> {
        let (value, from) = match self {
            Self::Env(name) => (
                std::env::var(name).map_err(|_| {
                    anyhow::anyhow!(
                        "--admin-token env:{name}: the variable is not set (or not UTF-8)"
                    )
                })?,
                format!("env:{name}"),
            ),
            Self::File(path) => (
                nimbus_host::files::read_text_bounded(path, TOKEN_FILE_LIMIT)
                    .map_err(|e| anyhow::anyhow!("--admin-token: {e}"))?,
                format!("file:{}", path.display()),
            ),
        };
        let token = value.lines().next().unwrap_or("").trim();
        if token.is_empty() {
            bail!("--admin-token {from}: the token is empty");
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            bail!(
                "--admin-token {from}: the token must be printable ASCII without spaces (it goes in an HTTP header)"
            );
        }
        Ok(Secret::new(token))
    }
}

/// `--admin-token`, shared by the commands that serve the admin endpoint.
#[derive(Args, Debug, Clone)]
pub(crate) struct AdminTokenArg {
    /// Require this bearer token for the admin endpoint's data (`/metrics`,
    /// `/api/...`): `env:NAME` or `file:PATH`. Required when --admin-addr is
    /// not a loopback address.
    #[arg(long, value_name = "SOURCE")]
    admin_token: Option<TokenSource>,
}

/// What the admin endpoint serves beyond metrics and probes.
pub(crate) struct AdminOptions<'a> {
    pub(crate) addr: AdminAddr,
    pub(crate) token: &'a AdminTokenArg,
    /// The cluster the host belongs to, for the console's cluster view.
    pub(crate) cluster: Option<Arc<dyn ClusterSource>>,
    /// When the address is taken, take a free port instead (`nimbus dev`,
    /// whose default must not fail because another host runs).
    pub(crate) fall_back_to_free_port: bool,
}

/// Binds the admin endpoint, if asked for, and serves it (with the
/// console) on a task that lives as long as the process. Returns the
/// address bound.
pub(crate) async fn start(
    options: AdminOptions<'_>,
    host: &Host,
    readiness: &Readiness,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(addr) = options.addr.0 else {
        return Ok(None);
    };
    let token = options
        .token
        .admin_token
        .as_ref()
        .map(TokenSource::read)
        .transpose()?;
    if token.is_none() && !addr.ip().is_loopback() {
        bail!(
            "the admin endpoint on {addr} would be reachable from other machines: give it a token (--admin-token env:NAME or file:PATH), or bind it to 127.0.0.1"
        );
    }
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && options.fall_back_to_free_port => {
            tokio::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0))
                .await
                .with_context(|| format!("cannot listen on {} for the admin endpoint", addr.ip()))?
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!("cannot listen on {addr} for the admin endpoint (--admin-addr; `off` disables it)")
            });
        }
    };
    let bound = listener.local_addr()?;
    let guarded = if token.is_some() {
        "; /metrics and /api need the bearer token"
    } else {
        ""
    };
    eprintln!("Console on http://{bound}/ (also /metrics, /healthz, /readyz{guarded})");
    let mut console = Console::new(host.clone());
    if let Some(cluster) = options.cluster {
        console = console.with_cluster(cluster);
    }
    let mut endpoint =
        AdminEndpoint::new(host.metrics().clone(), readiness.clone()).with_console(console);
    if let Some(token) = token {
        endpoint = endpoint.with_token(token);
    }
    tokio::spawn(serve_admin(
        listener,
        endpoint,
        nimbus_host::http::IngressLimits::admin(),
        std::future::pending(),
    ));
    Ok(Some(bound))
}

/// Resolves with `signal`, reporting not ready from then on (draining).
pub(crate) async fn not_ready_after(signal: impl Future<Output = ()>, readiness: Readiness) {
    signal.await;
    readiness.set(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_or_off() {
        assert_eq!("off".parse(), Ok(AdminAddr(None)));
        assert_eq!(
            "127.0.0.1:9090".parse(),
            Ok(AdminAddr(Some("127.0.0.1:9090".parse().unwrap())))
        );
        assert!(
            "localhost"
                .parse::<AdminAddr>()
                .unwrap_err()
                .contains("`off`")
        );
    }

    #[test]
    fn tokens_come_from_a_source_never_the_command_line() {
        assert_eq!("env:T".parse(), Ok(TokenSource::Env("T".into())));
        assert_eq!(
            "file:/run/token".parse(),
            Ok(TokenSource::File("/run/token".into()))
        );
        for bad in ["hunter2", "env:", "file:", "vault:x"] {
            let error = bad.parse::<TokenSource>().unwrap_err();
            assert!(error.contains("env:NAME or file:PATH"), "{error}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token\nignored\n").unwrap();
        let token = TokenSource::File(path.clone()).read().unwrap();
        assert_eq!(token.expose(), "s3cret-token");
        std::fs::write(&path, "\n").unwrap();
        let error = TokenSource::File(path.clone())
            .read()
            .unwrap_err()
            .to_string();
        assert!(error.contains("empty"), "{error}");
        std::fs::write(&path, "a b").unwrap();
        let error = TokenSource::File(path).read().unwrap_err().to_string();
        assert!(error.contains("printable ASCII"), "{error}");
        let error = TokenSource::Env("NIMBUS_TEST_NO_SUCH_VARIABLE".into())
            .read()
            .unwrap_err()
            .to_string();
        assert!(error.contains("not set"), "{error}");
    }
}
