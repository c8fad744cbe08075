//! P2 component exporting `nimbus:websocket/handler@0.1.0` (no HTTP), for
//! the host's WebSocket tests. Every reply is a text message.
//!
//! - `on-open`: a path starting `/refuse` answers 403, `/teapot` 418,
//!   `/odd` 200 (not an error status: the host makes it 403); `/greet`
//!   sends `welcome ID X` (X: the `x-greeting` header) before the
//!   connection is open; `/trap` traps; `/proto` picks the last
//!   subprotocol offered, `/badproto` one never offered.
//! - `on-message`, text: `broadcast:X` sends `X from ID` to every open
//!   connection; `close:CODE` closes this connection with CODE and reason
//!   `asked` (an error is sent back); `big:N` sends N bytes back (an error
//!   is sent back); `to:ID` sends `hello` to connection ID (an error is
//!   sent back); `trap` traps; `fail` returns an error; anything else comes
//!   back as `echo: TEXT`. A binary message comes back reversed.
//! - `on-close`: tells every open connection `closed ID CODE REASON`.

wit_bindgen::generate!({
    path: "../../capabilities/websocket/wit",
    world: "nimbus:websocket/handler-component",
});

use exports::nimbus::websocket::handler::Guest;
use nimbus::websocket::connections;
use nimbus::websocket::types::{ConnectionId, Message};

struct Handler;

fn text(id: ConnectionId, text: String) {
    // The client may already be gone; the tests see what arrives.
    let _ = connections::send(id, &Message::Text(text));
}

impl Guest for Handler {
    fn on_open(
        id: ConnectionId,
        path_with_query: String,
        headers: Vec<(String, Vec<u8>)>,
    ) -> Result<Option<String>, u16> {
        let path = path_with_query.as_str();
        if path.starts_with("/refuse") {
            return Err(403);
        }
        if path.starts_with("/teapot") {
            return Err(418);
        }
        if path.starts_with("/odd") {
            return Err(200);
        }
        if path.starts_with("/trap") {
            panic!("asked to trap on open");
        }
        if path.starts_with("/greet") {
            let agent = headers
                .iter()
                .find(|(name, _)| name == "x-greeting")
                .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
                .unwrap_or_default();
            text(id, format!("welcome {id} {agent}"));
        }
        let offered = headers
            .iter()
            .filter(|(name, _)| name == "sec-websocket-protocol")
            .flat_map(|(_, value)| {
                String::from_utf8_lossy(value)
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>();
        if path.starts_with("/proto") {
            // The last one offered (not the first, to show it is chosen).
            return Ok(offered.last().cloned());
        }
        if path.starts_with("/badproto") {
            return Ok(Some("never-offered".into()));
        }
        Ok(None)
    }

    fn on_message(id: ConnectionId, message: Message) -> Result<(), String> {
        let body = match message {
            Message::Binary(mut bytes) => {
                bytes.reverse();
                let _ = connections::send(id, &Message::Binary(bytes));
                return Ok(());
            }
            Message::Text(body) => body,
        };
        if let Some(what) = body.strip_prefix("broadcast:") {
            for other in connections::list_open() {
                text(other, format!("{what} from {id}"));
            }
        } else if let Some(code) = body.strip_prefix("close:") {
            let code = code.parse().unwrap_or(0);
            if let Err(error) = connections::close(id, code, "asked") {
                text(id, format!("error {error:?}"));
            }
        } else if let Some(size) = body.strip_prefix("big:") {
            let size = size.parse().unwrap_or(0);
            if let Err(error) = connections::send(id, &Message::Text("x".repeat(size))) {
                text(id, format!("error {error:?}"));
            }
        } else if let Some(other) = body.strip_prefix("to:") {
            let other = other.parse().unwrap_or(u64::MAX);
            match connections::send(other, &Message::Text("hello".into())) {
                Ok(()) => text(id, "sent".into()),
                Err(error) => text(id, format!("error {error:?}")),
            }
        } else if body == "trap" {
            panic!("asked to trap");
        } else if body == "fail" {
            return Err("asked to fail".into());
        } else {
            text(id, format!("echo: {body}"));
        }
        Ok(())
    }

    fn on_close(id: ConnectionId, code: u16, reason: String) {
        for other in connections::list_open() {
            text(other, format!("closed {id} {code} {reason}"));
        }
    }
}

export!(Handler);

// A binary target needs `main`; the host never calls it (it calls the handler).
fn main() {}
