//! `--admin-addr`: where a serving command exposes `/metrics`, `/healthz`
//! and `/readyz`, and the parsing shared by the commands that take it.

use anyhow::Context as _;
use nimbus_host::Host;
use nimbus_host::http::admin::{Readiness, serve_admin};
use std::net::SocketAddr;

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

/// Binds the admin endpoint, if asked for, and serves it on a task that
/// lives as long as the process.
pub(crate) async fn start(
    addr: AdminAddr,
    host: &Host,
    readiness: &Readiness,
) -> anyhow::Result<()> {
    let Some(addr) = addr.0 else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the admin endpoint (--admin-addr; `off` disables it)")
    })?;
    let bound = listener.local_addr()?;
    eprintln!("Admin endpoint on http://{bound}/metrics (also /healthz, /readyz)");
    tokio::spawn(serve_admin(
        listener,
        host.metrics().clone(),
        readiness.clone(),
        nimbus_host::http::IngressLimits::admin(),
        std::future::pending(),
    ));
    Ok(())
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
}
