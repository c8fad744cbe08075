//! Outbound HTTP policy: which destinations a workload's guests may reach.
//!
//! Deny-all by default. A component's `allowedHosts` lists exact hosts,
//! `*.suffix` wildcards and `*`, each optionally with a port. After DNS
//! resolution, loopback, private, link-local (including the cloud metadata
//! address 169.254.169.254), reserved and unspecified addresses are refused
//! unless an entry names that IP literal (or `localhost`, for loopback): an
//! allowed host name never lifts the filter, whatever its DNS says. The
//! connection then goes to the vetted address itself, so a second DNS
//! answer cannot swap in a forbidden one. Denials reach the guest as the WASI error codes
//! `HTTP-request-denied` and `destination-IP-prohibited`, and the host logs
//! one line with the workload and the host, never headers or bodies.
//!
//! This module holds the policy and the connection caps; [`hooks`] applies
//! them to each outgoing request, and [`client`] sends one that goes out
//! over the network (HTTP/1.1, or HTTP/2 when the request asks for it);
//! [`leftover`] keeps taking a request body the server answered without
//! reading.

mod client;
mod hooks;
mod leftover;

pub use hooks::{InMemoryResponse, InMemoryTarget, LocalWorkloads};
pub(crate) use hooks::{OutboundHooks, request_authority};

use crate::limits::{Cap, CapClaim};
use std::net::IpAddr;
use std::sync::Arc;
use wasmtime_wasi_http::Error as HttpError;

pub use nimbus_model::host_pattern::{HostPattern, HostPatternError};

/// The outcome of checking a destination against the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not listed.
    Denied,
    /// Listed; `explicit` when an exact entry naming an IP literal (or
    /// `localhost`) matched, which also permits that restricted address.
    Allowed {
        /// An exact entry matched.
        explicit: bool,
    },
}

/// A component's outbound allow-list.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    patterns: Vec<HostPattern>,
}

impl OutboundPolicy {
    /// Builds the policy from `allowedHosts` entries.
    pub fn new<S: AsRef<str>>(allowed_hosts: &[S]) -> Result<Self, HostPatternError> {
        let patterns = allowed_hosts
            .iter()
            .map(|h| HostPattern::parse(h.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// Checks a destination host (lower-case, no brackets) and port.
    pub fn check(&self, host: &str, port: u16) -> Decision {
        let host = host.trim_end_matches('.');
        // Every spelling of an IP address compares as its canonical form.
        let canonical = host.parse::<IpAddr>().map(|ip| ip.to_string());
        let host = canonical.as_deref().unwrap_or(host);
        let mut decision = Decision::Denied;
        for pattern in &self.patterns {
            match pattern.matches(host, port) {
                Some(true) => return Decision::Allowed { explicit: true },
                Some(false) => decision = Decision::Allowed { explicit: false },
                None => {}
            }
        }
        decision
    }
}

impl OutboundPolicy {
    /// Whether a guest's own socket (`wasi:sockets`, which the workload
    /// must declare) may connect or send to `addr`. A socket sees only
    /// addresses, never names, so the allow-list's names cannot apply;
    /// the address filter does: a public address is reachable, a
    /// restricted one ([`is_restricted_ip`]: loopback, private, link-local
    /// and the cloud metadata address among them) only when an entry names
    /// that IP literal, or `localhost` for a loopback address.
    pub fn permits_socket_address(&self, addr: std::net::SocketAddr) -> bool {
        let (ip, port) = (addr.ip().to_canonical(), addr.port());
        if !is_restricted_ip(ip) {
            return true;
        }
        let explicit = |host: &str| self.check(host, port) == Decision::Allowed { explicit: true };
        explicit(&ip.to_string()) || (ip.is_loopback() && explicit("localhost"))
    }
}

/// Addresses a guest may reach only through an `allowedHosts` entry that
/// is that IP literal: loopback, private, carrier-grade NAT, link-local
/// (cloud metadata included), unspecified, broadcast, multicast, reserved
/// and documentation ranges, and every IPv6 form that embeds an IPv4
/// address (mapped, compatible, NAT64 `64:ff9b::/96`, 6to4) judged by the
/// address it embeds.
pub fn is_restricted_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0 // 0.0.0.0/8, "this network"
                || (a == 100 && (b & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
                || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24, IETF protocol assignments
                || (a == 198 && (b & 0xfe) == 18) // 198.18.0.0/15, benchmarking
                || a >= 240 // 240.0.0.0/4, reserved
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            if let Some(v4) = v6.to_ipv4() {
                // ::a.b.c.d and ::ffff:a.b.c.d (`::1` is 0.0.0.1 here, restricted too).
                return is_restricted_ip(IpAddr::V4(v4));
            }
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                // NAT64: the IPv4 address is the last 32 bits.
                let [.., c, d] = segments;
                let v4 = std::net::Ipv4Addr::from(((c as u32) << 16) | d as u32);
                return is_restricted_ip(IpAddr::V4(v4));
            }
            if segments[0] == 0x2002 {
                // 6to4: the IPv4 address is bits 16 to 48.
                let v4 =
                    std::net::Ipv4Addr::from(((segments[1] as u32) << 16) | segments[2] as u32);
                return is_restricted_ip(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || v6.is_multicast()
                || (segments[0] & 0xffc0) == 0xfec0 // fec0::/10, deprecated site-local
                || (segments[0] == 0x64 && segments[1] == 0xff9b && segments[2] == 1) // 64:ff9b:1::/48, local NAT64
                || (segments[0] == 0x2001 && segments[1] == 0) // 2001::/32, Teredo
                || (segments[0] == 0x2001 && segments[1] == 0xdb8) // documentation
                || segments[..4] == [0x100, 0, 0, 0] // 100::/64, discard
        }
    }
}

/// How many outgoing HTTP connections guests may hold open at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundLimits {
    /// Per component (all its instances together).
    pub per_component: usize,
    /// Across the host; lowered at start to a quarter of the process's
    /// file-descriptor limit.
    pub host: usize,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        Self {
            per_component: 256,
            host: 4096,
        }
    }
}

impl OutboundLimits {
    /// The host-wide cap this process can honour: at most a quarter of
    /// its descriptor limit, which leaves room for the ingress and files.
    pub fn effective_host_limit(&self) -> usize {
        let budget = crate::limits::descriptor_limit() / 4;
        self.host.min(budget.max(8))
    }
}

/// The connection slots one component's outgoing requests take: its own,
/// and the host's. A request that finds either cap full fails at once with
/// `connection-limit-reached` instead of queueing.
#[derive(Clone)]
pub struct OutboundSlots {
    component: Arc<Cap>,
    host: Arc<Cap>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for OutboundSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundSlots")
            .field("component_free", &self.component.available())
            .field("host_free", &self.host.available())
            .finish()
    }
}

/// An open outgoing connection's claim on both caps.
pub(crate) struct Slot(#[allow(dead_code)] CapClaim, #[allow(dead_code)] CapClaim);

impl OutboundSlots {
    /// A component's slots under `limits`, sharing the host's `host` cap.
    pub fn new(
        limits: &OutboundLimits,
        host: Arc<Cap>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            component: Arc::new(Cap::new(limits.per_component)),
            host,
            metrics,
        }
    }

    /// Slots under the default limits with a host cap of their own (tools
    /// and benches that build a component environment by hand).
    pub fn standalone() -> Self {
        let limits = OutboundLimits::default();
        let host = Arc::new(Cap::new(limits.host));
        Self::new(&limits, host, Arc::default())
    }

    /// Where refusals are counted.
    pub(crate) fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    fn take(&self, workload: &str, component: &str) -> Result<Slot, HttpError> {
        self.claim(workload, component, "outbound HTTP")
            .ok_or(HttpError::ConnectionLimitReached)
    }

    /// A slot for one of the component's real `wasi:sockets` TCP sockets
    /// (`crate::loopback::tcp`), or `None` (counted and logged) when either
    /// cap is full. The socket holds it until the guest drops the socket.
    pub(crate) fn take_socket(&self, workload: &str, component: &str) -> Option<Slot> {
        self.claim(workload, component, "wasi:sockets TCP")
    }

    fn claim(&self, workload: &str, component: &str, what: &str) -> Option<Slot> {
        let component_slot = self.component.try_claim();
        let host_slot = self.host.try_claim();
        match (component_slot, host_slot) {
            (Some(c), Some(h)) => Some(Slot(c, h)),
            (c, _) => {
                let which = if c.is_none() { "component" } else { "host" };
                self.metrics.limit_hit("outbound_connections");
                tracing::warn!(
                    workload,
                    component,
                    cap = which,
                    "{what} refused: too many open connections"
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_hosts_and_ports() {
        let policy =
            OutboundPolicy::new(&["example.com", "*.api.test:8443", "127.0.0.1:9000"]).unwrap();
        assert_eq!(
            policy.check("example.com", 443),
            Decision::Allowed { explicit: false },
            "a name never lifts the address filter"
        );
        assert_eq!(
            policy.check("example.com.", 443),
            Decision::Allowed { explicit: false },
            "a trailing dot is the same name"
        );
        assert_eq!(policy.check("www.example.com", 443), Decision::Denied);
        assert_eq!(
            policy.check("a.api.test", 8443),
            Decision::Allowed { explicit: false }
        );
        assert_eq!(
            policy.check("api.test", 8443),
            Decision::Denied,
            "wildcard excludes the apex"
        );
        assert_eq!(
            policy.check("a.api.test", 443),
            Decision::Denied,
            "port must match"
        );
        assert_eq!(
            policy.check("127.0.0.1", 9000),
            Decision::Allowed { explicit: true }
        );
        assert_eq!(policy.check("127.0.0.1", 9001), Decision::Denied);
        assert_eq!(
            OutboundPolicy::default().check("example.com", 80),
            Decision::Denied
        );
        assert_eq!(
            OutboundPolicy::new(&["*"]).unwrap().check("x.y", 1),
            Decision::Allowed { explicit: false }
        );
    }

    /// Only an IP literal (or `localhost`) lifts the filter, and every
    /// spelling of an address is that address.
    #[test]
    fn only_ip_literals_are_explicit_in_any_spelling() {
        let policy = OutboundPolicy::new(&[
            "internal.example:8080",
            "localhost:9000",
            "[::ffff:127.0.0.1]:7000",
            "10.0.0.1.",
        ])
        .unwrap();
        assert_eq!(
            policy.check("internal.example", 8080),
            Decision::Allowed { explicit: false }
        );
        assert_eq!(
            policy.check("localhost", 9000),
            Decision::Allowed { explicit: true }
        );
        for spelling in [
            "::ffff:127.0.0.1",
            "0:0:0:0:0:ffff:7f00:1",
            "::FFFF:7F00:0001",
        ] {
            assert_eq!(
                policy.check(&spelling.to_ascii_lowercase(), 7000),
                Decision::Allowed { explicit: true },
                "{spelling}"
            );
        }
        assert_eq!(
            policy.check("10.0.0.1", 80),
            Decision::Allowed { explicit: true }
        );
    }

    #[test]
    fn sockets_reach_restricted_addresses_only_when_an_entry_names_them() {
        let addr = |text: &str| text.parse::<std::net::SocketAddr>().unwrap();
        let none = OutboundPolicy::default();
        assert!(none.permits_socket_address(addr("93.184.216.34:443")));
        for restricted in [
            "127.0.0.1:6379",
            "10.1.2.3:5432",
            "169.254.169.254:80",
            "[::1]:80",
            "[::ffff:127.0.0.1]:80",
            "0.0.0.0:80",
        ] {
            assert!(
                !none.permits_socket_address(addr(restricted)),
                "{restricted}"
            );
        }
        // A name never lifts the filter, whatever it resolves to.
        let named = OutboundPolicy::new(&["*", "db.internal", "*.svc"]).unwrap();
        assert!(!named.permits_socket_address(addr("10.1.2.3:5432")));
        // The IP literal does (on its port when it names one), as does
        // `localhost` for loopback, in either family and the mapped form.
        let literal = OutboundPolicy::new(&["10.1.2.3:5432", "localhost"]).unwrap();
        assert!(literal.permits_socket_address(addr("10.1.2.3:5432")));
        assert!(!literal.permits_socket_address(addr("10.1.2.3:22")));
        assert!(literal.permits_socket_address(addr("127.0.0.1:6379")));
        assert!(literal.permits_socket_address(addr("[::1]:6379")));
        assert!(literal.permits_socket_address(addr("[::ffff:127.0.0.1]:6379")));
        assert!(!literal.permits_socket_address(addr("169.254.169.254:80")));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in ["", "exa*mple.com", "*.", "host:notaport", "*.*.x"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert!(HostPattern::parse("https://example.com/").is_ok());
        assert!(HostPattern::parse("[::1]:8080").is_ok());
    }

    #[test]
    fn restricted_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
            // NAT64, 6to4, IPv4-compatible and other spellings of the above.
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "::169.254.169.254",
            "0:0:0:0:0:ffff:a9fe:a9fe",
            "fec0::1",
            "ff02::1",
            "2001::1",
            "0.1.2.3",
            "198.18.0.1",
            "240.0.0.1",
            "224.0.0.1",
            "192.0.0.8",
        ] {
            assert!(
                is_restricted_ip(ip.parse().unwrap()),
                "{ip} should be restricted"
            );
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
        ] {
            assert!(
                !is_restricted_ip(ip.parse().unwrap()),
                "{ip} should be allowed"
            );
        }
    }
}
