//! Connections that leave HTTP: a plugin that takes over an HTTP/1.1
//! `Upgrade` request (WebSockets) answers it here, and the host hands it the
//! raw connection once the `101 Switching Protocols` response is out.
//!
//! No HTTP types cross this boundary (capabilities do not depend on hyper):
//! the request is its target and headers, the connection a tokio byte
//! stream.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// The upgraded connection's bytes, both ways.
pub trait UpgradedIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> UpgradedIo for T {}

/// The connection once the host has sent the `101` (an error when the
/// client went away first).
pub type PendingConnection =
    Pin<Box<dyn Future<Output = std::io::Result<Box<dyn UpgradedIo>>> + Send>>;

/// An upgrade request, as the host received it.
#[derive(Debug)]
pub struct UpgradeRequest {
    /// `namespace/name` of the workload the request was routed to.
    pub workload: Arc<str>,
    /// The request target's path and query.
    pub path_with_query: String,
    /// Every header in order, names lower-case.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl UpgradeRequest {
    /// The first value of header `name` (lower-case), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }
}

/// Runs the connection once it is upgraded.
pub type StartSession = Box<dyn FnOnce(PendingConnection) + Send>;

/// A plugin's answer to an upgrade request.
pub enum UpgradeAnswer {
    /// Switch protocols: a `101` with these headers, then `start` gets the
    /// connection.
    Switch {
        /// Headers of the `101` response (the host adds `Connection` and
        /// `Upgrade`).
        headers: Vec<(&'static str, String)>,
        /// Takes the connection.
        start: StartSession,
    },
    /// Refuse with an HTTP status and a one-line reason.
    Refuse {
        /// 400 to 599.
        status: u16,
        /// Why, for the client.
        message: String,
        /// Headers to add (`Sec-WebSocket-Version` on a version mismatch).
        headers: Vec<(&'static str, String)>,
    },
}

impl std::fmt::Debug for UpgradeAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Switch { headers, .. } => {
                f.debug_struct("Switch").field("headers", headers).finish()
            }
            Self::Refuse {
                status, message, ..
            } => f
                .debug_struct("Refuse")
                .field("status", status)
                .field("message", message)
                .finish(),
        }
    }
}

/// What a plugin that takes upgraded connections gives the host
/// ([`Plugin::upgrades`](crate::Plugin::upgrades)).
pub trait ConnectionUpgrades: Send + Sync + 'static {
    /// The `Upgrade` header's protocol token it takes (`websocket`),
    /// compared without case.
    fn protocol(&self) -> &'static str;

    /// Whether a component of `workload` takes such connections; when none
    /// does, the request goes to the workload's HTTP handler as usual.
    fn serves(&self, workload: &str) -> bool;

    /// Answers an upgrade request for a workload it [`serves`](Self::serves).
    fn upgrade(
        &self,
        request: UpgradeRequest,
    ) -> Pin<Box<dyn Future<Output = UpgradeAnswer> + Send>>;

    /// Closes every connection it took over, because the host's ingress is
    /// shutting down; resolves once they have all ended (the host bounds
    /// the wait by its drain timeout).
    fn drain(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async {})
    }
}
