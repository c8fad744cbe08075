//! `wasmcloud:nats@0.1.0` from a `wasi:http/service@0.3.0` component
//! (wasip3 0.9): every call over HTTP, and the three handlers.
//!
//! Over HTTP (answers 200 with the result, or 502 with the error's debug
//! form):
//! - `POST /publish?subject=S[&reply=R]`: core publish of the body;
//! - `POST /request?subject=S&timeout_ms=N`: the reply's body;
//! - `POST /js/publish?subject=S[&id=ID]`: `STREAM SEQ duplicate=BOOL`;
//! - `GET /js/get?stream=S&seq=N`: `SUBJECT BODY`;
//! - `GET /js/scan?stream=S&start=N&count=N`: `SEQ:SUBJECT` lines;
//! - `GET /js/info?stream=S`: `NAME MESSAGES FIRST LAST`;
//! - `GET /js/subjects?stream=S&filter=F`: `SUBJECT=COUNT` lines;
//! - `POST /js/fetch?stream=S&consumer=C&batch=N&timeout_ms=T&settle=ack|nak|term|none`:
//!   `SEQ:DELIVERIES:BODY` lines, then the stop reason;
//! - `GET /js/consumer?stream=S&consumer=C`: `NAME PENDING ACK_PENDING`;
//! - `/kv/{get,put,create,update,delete,purge,keys,history,status}?bucket=B&key=K[&rev=N]`.
//!
//! As handlers, each reports what it saw by core publish on `seen.*`:
//! - core: replies `echo: BODY` to a request, else publishes the body to
//!   `seen.core`;
//! - JetStream: publishes `BODY:DELIVERIES` to `seen.js`, then traps when
//!   the body is `trap` on its first delivery, returns an error for `fail`
//!   on its first, leaves `hold` unsettled on its first, and otherwise
//!   acks (`ack-sync`; under `ack-mode: auto` the host's ack is then a
//!   no-op);
//! - key-value: publishes `BUCKET KEY OPERATION REVISION VALUE` to `seen.kv`.

#[path = "../shared/p3_response.rs"]
mod response;

use response::text_response;
use wasip3::http::types::{ErrorCode, Request, Response};

wit_bindgen_p3::generate!({
    inline: "
        package nimbus:test-nats;
        world guest {
            import wasmcloud:nats/core@0.1.0;
            import wasmcloud:nats/jetstream@0.1.0;
            import wasmcloud:nats/kv@0.1.0;
            export wasmcloud:nats/core-handler@0.1.0;
            export wasmcloud:nats/jetstream-handler@0.1.0;
            export wasmcloud:nats/kv-handler@0.1.0;
        }
    ",
    path: "../../capabilities/nats/wit",
    world: "nimbus:test-nats/guest",
    runtime_path: "wit_bindgen_p3::rt",
    generate_all,
});

use exports::wasmcloud::nats::{core_handler, jetstream_handler, kv_handler};
use wasmcloud::nats::core;
use wasmcloud::nats::jetstream::{self, MessageHandle};
use wasmcloud::nats::kv::{self, Entry};
use wasmcloud::nats::types::{HeaderEntry, NatsMessage};

struct Guest;

export!(Guest);

fn message(subject: &str, body: Vec<u8>) -> NatsMessage {
    NatsMessage {
        subject: subject.to_string(),
        body,
        reply_to: None,
        headers: None,
    }
}

async fn seen(subject: &str, text: String) -> Result<(), String> {
    core::publish(message(subject, text.into_bytes()))
        .await
        .map_err(|e| format!("{e:?}"))
}

impl core_handler::Guest for Guest {
    async fn handle_message(msg: NatsMessage) -> Result<(), String> {
        match msg.reply_to {
            Some(reply) => {
                let mut body = b"echo: ".to_vec();
                body.extend_from_slice(&msg.body);
                core::publish(message(&reply, body))
                    .await
                    .map_err(|e| format!("{e:?}"))
            }
            None => seen("seen.core", String::from_utf8_lossy(&msg.body).into_owned()).await,
        }
    }
}

impl jetstream_handler::Guest for Guest {
    async fn handle_message(handle: MessageHandle) -> Result<(), String> {
        let msg = handle.message();
        let body = String::from_utf8_lossy(&msg.body).into_owned();
        let count = handle.delivery_count();
        seen("seen.js", format!("{body}:{count}")).await?;
        match (body.as_str(), count) {
            ("trap", 1) => panic!("told to trap"),
            ("fail", 1) => Err("told to fail".into()),
            ("hold", 1) => Ok(()),
            _ => handle.ack_sync().await.map_err(|e| format!("{e:?}")),
        }
    }
}

impl kv_handler::Guest for Guest {
    async fn handle_event(bucket: String, entry: Entry) -> Result<(), String> {
        let text = format!(
            "{bucket} {} {:?} {} {}",
            entry.key,
            entry.operation,
            entry.revision,
            String::from_utf8_lossy(&entry.value)
        );
        seen("seen.kv", text).await
    }
}

struct Service;

wasip3::http::service::export!(Service);

type Answer = Result<String, String>;

fn err(e: impl std::fmt::Debug) -> String {
    format!("{e:?}")
}

async fn route(path: &str, param: &dyn Fn(&str) -> Option<String>, body: Vec<u8>) -> Answer {
    let text = |name: &str| param(name).unwrap_or_default();
    let number = |name: &str| param(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    match path {
        "/publish" => {
            let mut msg = message(&text("subject"), body);
            msg.reply_to = param("reply");
            core::publish(msg).await.map_err(err)?;
            Ok(String::new())
        }
        "/request" => {
            let reply = core::request(message(&text("subject"), body), number("timeout_ms") as u32)
                .await
                .map_err(err)?;
            Ok(String::from_utf8_lossy(&reply.body).into_owned())
        }
        "/js/publish" => {
            let mut msg = message(&text("subject"), body);
            if let Some(id) = param("id") {
                msg.headers = Some(vec![HeaderEntry {
                    name: "Nats-Msg-Id".into(),
                    value: id,
                }]);
            }
            if let Some(header) = param("header") {
                msg.headers = Some(vec![HeaderEntry {
                    name: header,
                    value: "x".into(),
                }]);
            }
            let ack = jetstream::publish(msg).await.map_err(err)?;
            Ok(format!(
                "{} {} duplicate={}",
                ack.stream_name, ack.sequence, ack.duplicate
            ))
        }
        "/js/get" => {
            let stored = jetstream::get_by_sequence(text("stream"), number("seq"))
                .await
                .map_err(err)?;
            Ok(format!(
                "{} {}",
                stored.subject,
                String::from_utf8_lossy(&stored.data)
            ))
        }
        "/js/scan" => {
            let found = jetstream::scan(text("stream"), number("start"), number("count") as u32)
                .await
                .map_err(err)?;
            Ok(found
                .iter()
                .map(|m| format!("{}:{}\n", m.sequence, m.subject))
                .collect())
        }
        "/js/info" => {
            let info = jetstream::get_stream_info(text("stream"))
                .await
                .map_err(err)?;
            Ok(format!(
                "{} {} {} {}",
                info.name, info.messages, info.first_sequence, info.last_sequence
            ))
        }
        "/js/subjects" => {
            let subjects = jetstream::list_stream_subjects(text("stream"), text("filter"))
                .await
                .map_err(err)?;
            let mut lines: Vec<String> = subjects
                .iter()
                .map(|s| format!("{}={}\n", s.subject, s.count))
                .collect();
            lines.sort();
            Ok(lines.concat())
        }
        "/js/consumer" => {
            let info = jetstream::get_consumer_info(text("stream"), text("consumer"))
                .await
                .map_err(err)?;
            Ok(format!(
                "{} {} {}",
                info.name, info.num_pending, info.num_ack_pending
            ))
        }
        "/js/fetch" => {
            let consumer = jetstream::open_pull_consumer(text("stream"), text("consumer"))
                .await
                .map_err(err)?;
            let batch = consumer
                .fetch(number("batch") as u32, number("timeout_ms") as u32)
                .await
                .map_err(err)?;
            let mut out = String::new();
            for handle in batch.messages {
                let msg = handle.message();
                out.push_str(&format!(
                    "{}:{}:{}\n",
                    handle.sequence(),
                    handle.delivery_count(),
                    String::from_utf8_lossy(&msg.body)
                ));
                match text("settle").as_str() {
                    "ack" => handle.ack().await.map_err(err)?,
                    "nak" => handle.nak(None).await.map_err(err)?,
                    "term" => handle.term().await.map_err(err)?,
                    "twice" => {
                        handle.ack_sync().await.map_err(err)?;
                        handle.ack().await.map_err(err)?
                    }
                    _ => {}
                }
            }
            out.push_str(&format!("{:?}", batch.stop));
            Ok(out)
        }
        _ if path.starts_with("/kv/") => {
            let bucket = kv::open(text("bucket")).await.map_err(err)?;
            let key = text("key");
            match &path[4..] {
                "get" => {
                    let entry = bucket.get(key).await.map_err(err)?;
                    Ok(format!(
                        "{} {}",
                        entry.revision,
                        String::from_utf8_lossy(&entry.value)
                    ))
                }
                "put" => Ok(bucket.put(key, body).await.map_err(err)?.to_string()),
                "create" => Ok(bucket.create(key, body).await.map_err(err)?.to_string()),
                "update" => Ok(bucket
                    .update(key, body, number("rev"))
                    .await
                    .map_err(err)?
                    .to_string()),
                "delete" => bucket
                    .delete(key)
                    .await
                    .map(|()| String::new())
                    .map_err(err),
                "purge" => bucket.purge(key).await.map(|()| String::new()).map_err(err),
                "keys" => {
                    let page = bucket.keys().await.map_err(err)?;
                    Ok(format!(
                        "{} truncated={}",
                        page.keys.join(","),
                        page.truncated
                    ))
                }
                "history" => {
                    let entries = bucket.history(key).await.map_err(err)?;
                    Ok(entries
                        .iter()
                        .map(|e| {
                            format!(
                                "{}:{:?}:{}",
                                e.revision,
                                e.operation,
                                String::from_utf8_lossy(&e.value)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" "))
                }
                "status" => {
                    let status = bucket.status().await.map_err(err)?;
                    Ok(format!(
                        "{} values={} history={}",
                        status.bucket, status.values, status.history
                    ))
                }
                _ => Err("no such kv call".into()),
            }
        }
        _ => Err("not found".into()),
    }
}

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path_and_query = request.get_path_with_query().unwrap_or_default();
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query.as_str(), ""));
        let query = query.to_string();
        let param = move |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                // `>` cannot be written in a URI.
                .map(|value| value.replace("%3E", ">"))
        };
        let (body, _trailers) =
            Request::consume_body(request, wasip3::wit_future::new(|| Ok(())).1);
        let body = body.collect().await;
        let (status, answer) = match route(path, &param, body).await {
            Ok(answer) => (200, answer),
            Err(error) => (502, error),
        };
        Ok(text_response(status, answer.into_bytes()))
    }
}

fn main() {
    unreachable!("a component, not a command")
}
