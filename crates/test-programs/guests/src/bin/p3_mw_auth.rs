//! P3 header-auth middleware (`wasi:http/middleware` shape): imports and
//! exports `wasi:http/handler@0.3.0`.
//!
//! A request must carry `authorization: Bearer TOKEN` where TOKEN is its
//! `AUTH_TOKEN` env var. Otherwise it answers 401 with
//! `www-authenticate: Bearer` itself (short-circuit: the inner layers never
//! see the request). An accepted request goes inward without its
//! `authorization` header and with `x-authenticated: yes`.

#[path = "../shared/p3_middleware.rs"]
mod mw;

use mw::{Guest, HandlerResult, call_inward, env, header, text_response, with_request_headers};
use wasip3::http::types::Request;

struct Auth;

mw::export!(Auth with_types_in mw);

impl Guest for Auth {
    async fn handle(request: Request) -> HandlerResult {
        let expected = env("AUTH_TOKEN").filter(|t| !t.is_empty());
        let headers = request.get_headers().clone();
        let presented = header(&headers, "authorization");
        let accepted = match (
            &expected,
            presented.as_deref().and_then(|v| v.strip_prefix("Bearer ")),
        ) {
            (Some(expected), Some(token)) => {
                constant_time_eq(expected.as_bytes(), token.as_bytes())
            }
            _ => false,
        };
        if !accepted {
            return Ok(text_response(
                401,
                &[("www-authenticate", "Bearer")],
                "unauthorized\n".into(),
            ));
        }
        let _ = headers.delete("authorization");
        let _ = headers.set("x-authenticated", &[b"yes".to_vec()]);
        call_inward(with_request_headers(request, headers)).await
    }
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn main() {}
