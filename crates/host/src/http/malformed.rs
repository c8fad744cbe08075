//! Requests the host answers itself, before routing, because no component
//! could be given them: a component would fail on them and be blamed (a
//! 500, its instance thrown away), or hyper would misread its answer.
//!
//! - `CONNECT`: hyper turns a 2xx answer to it into a tunnel, so the
//!   component's body would never be sent. 501.
//! - an HTTP/1.1 or HTTP/2 request with no authority, or more than one
//!   `Host`, or one that is not a valid authority (RFC 9112 section 3.2
//!   asks for 400). The URI's authority (absolute form, HTTP/2's
//!   `:authority`) counts before `Host`. HTTP/1.0 has no `Host` to require
//!   (load balancers' health checks send none): such a request goes on.
//! - a request target that is not a path (`GET ok HTTP/1.1`), except
//!   `OPTIONS *`. 400.

use http::StatusCode;
use http::request::Parts;

/// Why the host refuses `parts` itself, if it does: the status and a
/// one-line reason.
pub(crate) fn refusal(parts: &Parts) -> Option<(StatusCode, &'static str)> {
    if parts.method == http::Method::CONNECT {
        return Some((StatusCode::NOT_IMPLEMENTED, "CONNECT is not served here"));
    }
    let path = parts.uri.path();
    let asterisk = path == "*" && parts.method == http::Method::OPTIONS;
    if !path.starts_with('/') && !asterisk {
        return Some((StatusCode::BAD_REQUEST, "the request target is not a path"));
    }
    let mut hosts = parts.headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Some((StatusCode::BAD_REQUEST, "more than one Host header"));
    }
    if parts.uri.authority().is_some() {
        return None;
    }
    let Some(host) = host else {
        if parts.version <= http::Version::HTTP_10 {
            return None;
        }
        return Some((StatusCode::BAD_REQUEST, "no Host header"));
    };
    let valid = std::str::from_utf8(host.as_bytes())
        .ok()
        .filter(|h| !h.is_empty() && !h.contains('@'))
        .is_some_and(|h| h.parse::<http::uri::Authority>().is_ok());
    if !valid {
        return Some((
            StatusCode::BAD_REQUEST,
            "the Host header is not a host[:port]",
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, hosts: &[&[u8]]) -> Parts {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(uri)
            .version(http::Version::HTTP_11);
        for host in hosts {
            builder = builder.header(
                http::header::HOST,
                http::HeaderValue::from_bytes(host).unwrap(),
            );
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_request_a_component_can_take_passes() {
        for (method, uri, hosts) in [
            ("GET", "/", &[&b"example.com"[..]][..]),
            ("GET", "/a?b=c", &[b"127.0.0.1:8080"]),
            ("GET", "/", &[b"[::1]:80"]),
            ("POST", "http://example.com/x", &[]),
            ("GET", "http://example.com/x", &[b"other.test"]),
            ("OPTIONS", "*", &[b"example.com"]),
        ] {
            assert_eq!(refusal(&parts(method, uri, hosts)), None, "{method} {uri}");
        }
        let mut http10 = parts("GET", "/", &[]);
        http10.version = http::Version::HTTP_10;
        assert_eq!(refusal(&http10), None, "HTTP/1.0 needs no Host");
    }

    #[test]
    fn what_no_component_could_take_is_refused_with_its_reason() {
        for (method, uri, hosts, status) in [
            (
                "CONNECT",
                "example.com:443",
                &[&b"example.com:443"[..]][..],
                501,
            ),
            ("GET", "/", &[], 400),
            ("GET", "/", &[b"a.test", b"b.test"], 400),
            ("GET", "/", &[b""], 400),
            ("GET", "/", &[b"[::1"], 400),
            ("GET", "/", &[b"a\tb/c?d#e"], 400),
            ("GET", "/", &[b"h\xc3\xa9.test"], 400),
            ("GET", "/", &[b"user@example.com"], 400),
            ("GET", "*", &[b"example.com"], 400),
        ] {
            let refused = refusal(&parts(method, uri, hosts));
            assert_eq!(
                refused.map(|(s, _)| s.as_u16()),
                Some(status),
                "{method} {uri} {hosts:?}"
            );
        }
    }
}
