//! The per-workload virtual loopback network.
//!
//! A workload with a service gets one [`VirtualNetwork`]. Every component of
//! that workload (the service included) sees `wasi:sockets/tcp` through
//! [`tcp`]: binding, listening on and connecting to a loopback address
//! (`127.0.0.0/8`, `::1`, or the unspecified address for binds) stays inside
//! this network, as pairs of in-memory [`pipe`]s. No host socket is opened,
//! so two workloads may both listen on port 8080, and nothing outside the
//! workload can reach its service. Other addresses go to the host's real
//! sockets, which the workload only gets when it declares `wasi:sockets`.

pub(crate) mod pipe;
pub mod tcp;

use pipe::{PipeReader, PipeWriter};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// First port handed out for binds to port 0 (the IANA dynamic range).
const EPHEMERAL_START: u16 = 49152;

/// A listener's queue of connections not yet accepted.
pub(crate) type Backlog = mpsc::Receiver<Connection>;

/// One end of an established virtual connection.
pub(crate) struct Connection {
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) reader: PipeReader,
    pub(crate) writer: PipeWriter,
}

/// Why a virtual connect did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectError {
    /// Nothing listens on that port.
    Refused,
    /// The listener's backlog is full.
    BacklogFull,
    /// No port is free for the client's end.
    NoPorts,
}

/// Which of the two loopback families an address belongs to; ports are
/// separate per family, as on a real host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn of(addr: &SocketAddr) -> Self {
        if addr.is_ipv4() { Self::V4 } else { Self::V6 }
    }

    fn loopback(self) -> IpAddr {
        match self {
            Self::V4 => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Self::V6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
        }
    }
}

/// Whether a bind to `ip` stays on the virtual network.
pub(crate) fn binds_virtually(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || is_mapped_loopback(ip)
}

/// Whether a connect to `ip` stays on the virtual network.
pub(crate) fn connects_virtually(ip: IpAddr) -> bool {
    ip.is_loopback() || is_mapped_loopback(ip)
}

fn is_mapped_loopback(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
}

#[derive(Default)]
struct Ports {
    bound: HashSet<(Family, u16)>,
    listening: HashMap<(Family, u16), mpsc::Sender<Connection>>,
    next_ephemeral: u16,
}

/// One workload's loopback network: which ports are bound, and the
/// listeners waiting for connections.
#[derive(Default)]
pub struct VirtualNetwork {
    ports: Mutex<Ports>,
}

impl std::fmt::Debug for VirtualNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualNetwork")
            .field("listening", &self.listening_ports())
            .finish()
    }
}

impl VirtualNetwork {
    /// An empty network.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The ports something listens on (IPv4 and IPv6 alike), sorted.
    pub fn listening_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.lock().listening.keys().map(|(_, p)| *p).collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    fn lock(&self) -> MutexGuard<'_, Ports> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves `addr`'s port (a free ephemeral one for port 0). The
    /// reservation lasts as long as the returned binding.
    pub(crate) fn bind(self: &Arc<Self>, addr: SocketAddr) -> Option<Binding> {
        let family = Family::of(&addr);
        let mut ports = self.lock();
        let port = match addr.port() {
            0 => Self::free_port(&mut ports, family)?,
            port if ports.bound.contains(&(family, port)) => return None,
            port => port,
        };
        ports.bound.insert((family, port));
        Some(Binding {
            network: self.clone(),
            family,
            addr: SocketAddr::new(addr.ip(), port),
        })
    }

    fn free_port(ports: &mut Ports, family: Family) -> Option<u16> {
        let span = u16::MAX - EPHEMERAL_START + 1;
        for _ in 0..span {
            let offset = ports.next_ephemeral % span;
            ports.next_ephemeral = ports.next_ephemeral.wrapping_add(1);
            let port = EPHEMERAL_START + offset;
            if !ports.bound.contains(&(family, port)) {
                return Some(port);
            }
        }
        None
    }

    /// Opens a connection from a fresh ephemeral port to whatever listens
    /// on `remote`. The client's end comes back with the binding that
    /// keeps its port; the server's end waits in the listener's backlog.
    pub(crate) fn connect(
        self: &Arc<Self>,
        remote: SocketAddr,
        local: Option<Binding>,
    ) -> Result<(Binding, Connection), ConnectError> {
        let family = Family::of(&remote);
        let local = match local {
            Some(binding) => binding,
            None => self
                .bind(SocketAddr::new(family.loopback(), 0))
                .ok_or(ConnectError::NoPorts)?,
        };
        let listener = self
            .lock()
            .listening
            .get(&(family, remote.port()))
            .cloned()
            .ok_or(ConnectError::Refused)?;
        let (client_reader, server_writer) = pipe::pipe();
        let (server_reader, client_writer) = pipe::pipe();
        let client_addr = SocketAddr::new(
            if local.addr.ip().is_unspecified() {
                family.loopback()
            } else {
                local.addr.ip()
            },
            local.addr.port(),
        );
        let server_end = Connection {
            local: remote,
            remote: client_addr,
            reader: server_reader,
            writer: server_writer,
        };
        listener.try_send(server_end).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ConnectError::BacklogFull,
            mpsc::error::TrySendError::Closed(_) => ConnectError::Refused,
        })?;
        let client_end = Connection {
            local: client_addr,
            remote,
            reader: client_reader,
            writer: client_writer,
        };
        Ok((local, client_end))
    }
}

/// A bound port of the virtual network, released when dropped.
pub(crate) struct Binding {
    network: Arc<VirtualNetwork>,
    family: Family,
    addr: SocketAddr,
}

impl Binding {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts accepting connections on the bound port.
    pub(crate) fn listen(&self, backlog: usize) -> Backlog {
        let (tx, rx) = mpsc::channel(backlog.max(1));
        self.network
            .lock()
            .listening
            .insert((self.family, self.addr.port()), tx);
        rx
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        let key = (self.family, self.addr.port());
        let mut ports = self.network.lock();
        ports.bound.remove(&key);
        ports.listening.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn connect_reaches_the_listener_and_refuses_elsewhere() {
        let net = VirtualNetwork::new();
        let server = net.bind(addr("0.0.0.0:8080")).unwrap();
        let mut backlog = server.listen(4);
        assert_eq!(net.listening_ports(), vec![8080]);
        let (client_port, client) = net.connect(addr("127.0.0.1:8080"), None).unwrap();
        let accepted = backlog.recv().await.unwrap();
        assert_eq!(accepted.remote, client.local);
        assert_eq!(client.local, client_port.addr());
        assert!(client.local.port() >= EPHEMERAL_START);
        assert_eq!(
            net.connect(addr("127.0.0.1:8081"), None).err(),
            Some(ConnectError::Refused)
        );
        // IPv6 loopback is a different family with its own ports.
        assert_eq!(
            net.connect(addr("[::1]:8080"), None).err(),
            Some(ConnectError::Refused)
        );
    }

    #[test]
    fn ports_are_exclusive_until_released() {
        let net = VirtualNetwork::new();
        let first = net.bind(addr("127.0.0.1:9000")).unwrap();
        assert!(net.bind(addr("127.0.0.1:9000")).is_none());
        assert!(net.bind(addr("[::1]:9000")).is_some());
        let _listening = first.listen(1);
        drop(first);
        assert!(net.listening_ports().is_empty());
        assert!(net.bind(addr("127.0.0.1:9000")).is_some());
    }

    #[test]
    fn a_full_backlog_refuses() {
        let net = VirtualNetwork::new();
        let server = net.bind(addr("127.0.0.1:7000")).unwrap();
        let _backlog = server.listen(1);
        let _first = net.connect(addr("127.0.0.1:7000"), None).unwrap();
        assert_eq!(
            net.connect(addr("127.0.0.1:7000"), None).err(),
            Some(ConnectError::BacklogFull)
        );
    }

    #[test]
    fn virtual_addresses() {
        assert!(binds_virtually("0.0.0.0".parse().unwrap()));
        assert!(binds_virtually("127.0.0.2".parse().unwrap()));
        assert!(connects_virtually("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!connects_virtually("0.0.0.0".parse().unwrap()));
        assert!(!connects_virtually("10.0.0.1".parse().unwrap()));
    }
}
