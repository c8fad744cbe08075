//! `allowedHosts` entries: which destinations an outbound policy names,
//! and whether one matches a host and port. The policy built on them (the
//! address filter after DNS, the vetted connection) is the runtime's.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.com` stored as `.example.com`: subdomains only, not the apex.
    Suffix(String),
}

/// Why an `allowedHosts` entry is not a host pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPatternError {
    /// Nothing but a scheme or slashes.
    #[error("empty host")]
    Empty,
    /// Not `host` or `host:port` (a bad port, a path after a port,
    /// brackets unclosed).
    #[error("`{0}` is not a host or host:port")]
    NotAHost(String),
    /// `*.` followed by nothing, or a second `*`.
    #[error("`{0}`: a wildcard must look like `*.example.com`")]
    BadWildcard(String),
    /// A `*` inside a name.
    #[error("`{0}`: `*` is only allowed as the whole host or as a leading `*.`")]
    StarInName(String),
    /// A character no host name has: a path, a user, a query, a space, or
    /// a name not in its ASCII (`xn--`) form, which would never match.
    #[error(
        "`{text}` is not a host or host:port (`{found}` cannot appear in a host name{})",
        bad_character_hint(*found)
    )]
    BadCharacter {
        /// What was written.
        text: String,
        /// The first character that cannot be in a host name.
        found: char,
    },
}

/// One `allowedHosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses `host`, `*.suffix`, `*`, each with an optional `:port`; a
    /// leading `http://` or `https://` and a trailing `/` are tolerated.
    pub fn parse(text: &str) -> Result<Self, HostPatternError> {
        let trimmed = text.trim();
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))
            .unwrap_or(trimmed)
            .trim_end_matches('/');
        if rest.is_empty() {
            return Err(HostPatternError::Empty);
        }
        let (host, port) =
            split_host_port(rest).ok_or_else(|| HostPatternError::NotAHost(text.to_string()))?;
        // `example.com.` is `example.com`; `[::1]` is `::1`.
        let host = host.to_ascii_lowercase();
        let host = match host.strip_suffix('.') {
            Some(name) if !name.ends_with('*') && !name.ends_with('.') => name,
            _ => host.as_str(),
        };
        let host = if let Ok(ip) = host.parse::<IpAddr>() {
            HostMatch::Exact(ip.to_string())
        } else if host == "*" {
            HostMatch::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(HostPatternError::BadWildcard(text.to_string()));
            }
            HostMatch::Suffix(format!(".{suffix}"))
        } else if host.contains('*') {
            return Err(HostPatternError::StarInName(text.to_string()));
        } else {
            HostMatch::Exact(host.to_string())
        };
        if let HostMatch::Exact(name) | HostMatch::Suffix(name) = &host
            && let Some(found) = name.chars().find(|&c| !is_host_char(c))
            && name.parse::<IpAddr>().is_err()
        {
            return Err(HostPatternError::BadCharacter {
                text: text.to_string(),
                found,
            });
        }
        Ok(Self { host, port })
    }

    /// `None` when the entry does not match; `Some(true)` when it matches
    /// and may lift the address filter: only an entry naming an IP literal
    /// (or `localhost`, which never goes to DNS), because a name's DNS
    /// answer is whatever its owner, or an attacker rebinding it, says.
    pub fn matches(&self, host: &str, port: u16) -> Option<bool> {
        if self.port.is_some_and(|p| p != port) {
            return None;
        }
        self.matches_host(host)
    }

    /// [`matches`](Self::matches) for a destination whose port is not
    /// known (a TLS server name): an entry with a port matches its host on
    /// any port.
    pub fn matches_host(&self, host: &str) -> Option<bool> {
        match &self.host {
            HostMatch::Any => Some(false),
            HostMatch::Suffix(suffix) => host.ends_with(suffix.as_str()).then_some(false),
            HostMatch::Exact(exact) => {
                (exact == host).then(|| host == "localhost" || host.parse::<IpAddr>().is_ok())
            }
        }
    }
}

/// Advice for the characters people write for a reason.
fn bad_character_hint(found: char) -> &'static str {
    match found {
        '/' => "; give a host, not a URL path or an address range",
        c if !c.is_ascii() => "; write an internationalised name in its `xn--` form",
        _ => "",
    }
}

/// What a DNS name's labels are made of (`_` included: service names such
/// as `_sip._tcp.example.com` have it).
fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')
}

/// Splits `host[:port]`, understanding `[v6]:port` and bare IPv6.
fn split_host_port(text: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    if text.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some((text, None));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host, Some(port.parse().ok()?))),
        Some(_) => None,
        None => Some((text, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_that_could_never_match_a_host_is_refused() {
        for (entry, found) in [
            ("http://example.com/path", '/'),
            ("user@example.com", '@'),
            ("example.com?x=1", '?'),
            ("exa mple.com", ' '),
            ("*.bücher.example", 'ü'),
        ] {
            match HostPattern::parse(entry) {
                Err(HostPatternError::BadCharacter { found: got, .. }) => {
                    assert_eq!(got, found, "{entry}")
                }
                other => panic!("{entry}: {other:?}"),
            }
        }
        // A single trailing slash is the only path tolerated.
        for good in [
            "https://example.com/",
            "_sip._tcp.example.com",
            "xn--bcher-kva.example:443",
            "*.example.com",
            "[::1]:8080",
            "10.0.0.1",
        ] {
            assert!(HostPattern::parse(good).is_ok(), "{good}");
        }
    }
}
