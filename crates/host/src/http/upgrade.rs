//! HTTP/1.1 `Upgrade` requests handed to the plugin that takes their
//! protocol (WebSockets): which requests ask for one, the `101` or the
//! refusal, and the connection handed over once hyper lets go of it.

use crate::http::body::{ResponseBody, error_response};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use nimbus_plugin::upgrade::{
    ConnectionUpgrades, PendingConnection, UpgradeAnswer, UpgradeRequest, UpgradedIo,
};
use std::sync::Arc;

/// The protocol an HTTP/1.1 `GET` asks to switch to (`Connection: upgrade`
/// with an `Upgrade` token), if it asks.
pub(crate) fn requested_protocol(parts: &http::request::Parts) -> Option<&str> {
    if parts.method != http::Method::GET || parts.version != http::Version::HTTP_11 {
        return None;
    }
    let connection_upgrade = parts
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return None;
    }
    let protocol = parts.headers.get(http::header::UPGRADE)?.to_str().ok()?;
    // `websocket`, or the first of a list; a version suffix is not ours to judge.
    protocol
        .split(',')
        .next()
        .map(|p| p.trim().split('/').next().unwrap_or_default())
        .filter(|p| !p.is_empty())
}

/// Asks `upgrades` about the request and answers: `101` (and the
/// connection goes to the plugin once hyper has sent it) or the refusal.
pub(crate) async fn take_over(
    upgrades: &Arc<dyn ConnectionUpgrades>,
    mut parts: http::request::Parts,
    workload: Arc<str>,
) -> http::Response<ResponseBody> {
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return error_response(
            http::StatusCode::BAD_REQUEST,
            "this connection cannot switch protocols",
        );
    };
    let request = UpgradeRequest {
        workload,
        path_with_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
            .collect(),
    };
    match upgrades.upgrade(request).await {
        UpgradeAnswer::Refuse {
            status,
            message,
            headers,
        } => {
            let status = http::StatusCode::from_u16(status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(http::StatusCode::FORBIDDEN);
            let mut response = error_response(status, &message);
            add_headers(&mut response, headers);
            response
        }
        UpgradeAnswer::Switch { headers, start } => {
            let connection: PendingConnection = Box::pin(async move {
                let upgraded = on_upgrade.await.map_err(std::io::Error::other)?;
                Ok(Box::new(TokioIo::new(upgraded)) as Box<dyn UpgradedIo>)
            });
            start(connection);
            let mut response = http::Response::new(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
            let protocol = upgrades.protocol();
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("upgrade"),
            );
            response.headers_mut().insert(
                http::header::UPGRADE,
                http::HeaderValue::from_static(protocol),
            );
            add_headers(&mut response, headers);
            response
        }
    }
}

/// The answer to a plain request for a workload that takes only upgraded
/// connections: `426 Upgrade Required`, naming the protocol.
pub(crate) fn upgrade_required(
    workload: &str,
    protocol: &'static str,
) -> http::Response<ResponseBody> {
    let mut response = error_response(
        http::StatusCode::UPGRADE_REQUIRED,
        &format!("workload `{workload}` takes {protocol} connections only"),
    );
    response.headers_mut().insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static(protocol),
    );
    response
}

/// Adds a plugin's headers; one that is not a valid header is left out and
/// logged (`HeaderName::from_static` would panic on an upper-case name).
fn add_headers(response: &mut http::Response<ResponseBody>, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        match (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().insert(name, value);
            }
            _ => tracing::warn!(
                header = name,
                "a plugin's upgrade header is not valid HTTP; left out"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: http::request::Builder) -> http::request::Parts {
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_plugin_header_that_is_not_valid_http_is_left_out() {
        let mut response = error_response(http::StatusCode::FORBIDDEN, "no");
        add_headers(
            &mut response,
            vec![
                ("Sec-WebSocket-Version", "13".into()),
                ("bad name", "x".into()),
                ("x-bad-value", "a\nb".into()),
            ],
        );
        assert_eq!(response.headers()["sec-websocket-version"], "13");
        assert!(!response.headers().contains_key("x-bad-value"));
        assert_eq!(response.headers().len(), 2, "content-type and the good one");
    }

    #[test]
    fn only_an_http_1_1_get_with_connection_upgrade_asks_to_switch() {
        let asks = |builder: http::request::Builder| {
            requested_protocol(&parts(builder)).map(str::to_string)
        };
        let websocket = || {
            http::Request::get("/chat")
                .header("connection", "keep-alive, Upgrade")
                .header("upgrade", "WebSocket")
        };
        assert_eq!(asks(websocket()).as_deref(), Some("WebSocket"));
        assert_eq!(asks(websocket().method("POST")), None);
        assert_eq!(asks(websocket().version(http::Version::HTTP_2)), None);
        assert_eq!(
            asks(http::Request::get("/").header("upgrade", "websocket")),
            None,
            "no Connection: upgrade"
        );
        assert_eq!(
            asks(
                http::Request::get("/")
                    .header("connection", "upgrade")
                    .header("upgrade", "h2c, websocket")
            )
            .as_deref(),
            Some("h2c")
        );
    }
}
