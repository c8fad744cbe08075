//! P2 component exporting `wasmcloud:messaging/handler@0.2.0` (no HTTP).
//! It answers each message on its `reply-to` with `NAME: BODY`, or, with no
//! `reply-to`, publishes `NAME: BODY` to `SUBJECT.seen`; NAME is the
//! `name` key of `wasi:config` (default `handler`). A body of `trap`
//! makes it trap, `fail` makes it return an error.

wit_bindgen::generate!({
    inline: r#"
        package nimbus:handler-guest;

        world guest {
            import wasi:config/store@0.2.0-rc.1;
            import wasmcloud:messaging/consumer@0.2.0;
            export wasmcloud:messaging/handler@0.2.0;
        }
    "#,
    path: ["wit/config", "../../capabilities/messaging/wit"],
    world: "nimbus:handler-guest/guest",
    generate_all,
});

use exports::wasmcloud::messaging::handler::Guest;
use wasi::config::store as config;
use wasmcloud::messaging::{consumer, types::BrokerMessage};

struct Handler;

impl Guest for Handler {
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        match msg.body.as_slice() {
            b"trap" => panic!("asked to trap"),
            b"fail" => return Err("asked to fail".into()),
            _ => {}
        }
        let name = config::get("name")
            .ok()
            .flatten()
            .unwrap_or_else(|| "handler".into());
        let mut body = format!("{name}: ").into_bytes();
        body.extend_from_slice(&msg.body);
        let subject = match msg.reply_to {
            Some(reply_to) => reply_to,
            None => format!("{}.seen", msg.subject),
        };
        consumer::publish(&BrokerMessage {
            subject,
            body,
            reply_to: None,
        })
    }
}

export!(Handler);

// A binary target needs `main`; the host never calls it (it calls the handler).
fn main() {}
