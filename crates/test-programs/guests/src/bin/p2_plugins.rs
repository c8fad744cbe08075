//! P2 component exercising the host plugins over HTTP (query parameters
//! `bucket`, `key`, `keys`, `delta`, `subject`, `timeout_ms`, `level`):
//! - `/kv/get`, `/kv/set` (body is the value), `/kv/delete`, `/kv/exists`,
//!   `/kv/incr`, `/kv/list` (every key, following cursors; header
//!   `x-pages`), `/kv/get-many`, `/kv/set-many` (body `k=v` lines),
//!   `/kv/delete-many` — `wasi:keyvalue` store, atomics, batch;
//! - `/log?level=L` (body is the message) — `wasi:logging`;
//! - `/secret?key=K` — `wasmcloud:secrets` store + reveal;
//! - `/msg/publish?subject=S`, `/msg/request?subject=S&timeout_ms=N` (body
//!   is the payload) — `wasmcloud:messaging` consumer;
//! - `/blob/{create,exists,drop,clear,list}?container=C`,
//!   `/blob/{put,get,info,has,delete}?container=C&name=N` (`get` takes
//!   inclusive `start`/`end`), `/blob/{copy,move}?…&to_container=D&to=M`,
//!   `/blob/fill?…&size=S` (writes S pattern bytes in 64 KiB chunks) and
//!   `/blob/check?…` (streams the object back, answering `SIZE FNV1A64`) —
//!   `wasi:blobstore`, bodies through `wasi:io` streams.
//!
//! Guest-visible errors answer 500 with the error's debug form.

wit_bindgen::generate!({
    inline: r#"
        package nimbus:plugins-guest;

        world guest {
            import wasi:keyvalue/store@0.2.0-draft;
            import wasi:keyvalue/atomics@0.2.0-draft;
            import wasi:keyvalue/batch@0.2.0-draft;
            import wasi:logging/logging@0.1.0-draft;
            import wasmcloud:secrets/store@0.1.0-draft;
            import wasmcloud:secrets/reveal@0.1.0-draft;
            import wasmcloud:messaging/consumer@0.2.0;
            import wasi:blobstore/blobstore@0.2.0-draft;
        }
    "#,
    path: [
        "../../capabilities/keyvalue/wit",
        "../../capabilities/logging/wit",
        "../../capabilities/secrets/wit",
        "../../capabilities/messaging/wit",
        "../../capabilities/blobstore/wit",
    ],
    world: "nimbus:plugins-guest/guest",
    generate_all,
});

use wasi::blobstore::{blobstore, types as blob_types};
use wasi::keyvalue::{atomics, batch, store};
use wasi::logging::logging;
use wasmcloud::messaging::{consumer, types};
use wasmcloud::secrets::{reveal, store as secrets};
use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let query = request.uri().query().unwrap_or("").to_string();
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    };
    let path = request.uri().path().to_string();
    let body = request.body_mut().contents().await?.to_vec();
    let bucket_name = param("bucket").unwrap_or_default();
    let key = param("key").unwrap_or_default();
    let keys: Vec<String> = param("keys")
        .map(|k| k.split(',').map(str::to_string).collect())
        .unwrap_or_default();

    if let Some(op) = path.strip_prefix("/kv/") {
        let bucket = match store::open(&bucket_name) {
            Ok(bucket) => bucket,
            Err(e) => return fail(e),
        };
        return match op {
            "get" => match bucket.get(&key) {
                Ok(Some(value)) => respond(StatusCode::OK, value),
                Ok(None) => respond(StatusCode::NOT_FOUND, b"missing\n".to_vec()),
                Err(e) => fail(e),
            },
            "set" => match bucket.set(&key, &body) {
                Ok(()) => respond(StatusCode::NO_CONTENT, Vec::new()),
                Err(e) => fail(e),
            },
            "delete" => match bucket.delete(&key) {
                Ok(()) => respond(StatusCode::NO_CONTENT, Vec::new()),
                Err(e) => fail(e),
            },
            "exists" => match bucket.exists(&key) {
                Ok(found) => respond(StatusCode::OK, found.to_string().into_bytes()),
                Err(e) => fail(e),
            },
            "incr" => {
                let delta = param("delta").and_then(|d| d.parse().ok()).unwrap_or(1);
                match atomics::increment(&bucket, &key, delta) {
                    Ok(value) => respond(StatusCode::OK, value.to_string().into_bytes()),
                    Err(e) => fail(e),
                }
            }
            "list" => {
                let (mut all, mut cursor, mut pages) = (Vec::new(), None, 0);
                loop {
                    let page = match bucket.list_keys(cursor) {
                        Ok(page) => page,
                        Err(e) => return fail(e),
                    };
                    pages += 1;
                    all.extend(page.keys);
                    match page.cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                all.sort();
                let mut text = all.join("\n");
                text.push('\n');
                Ok(Response::builder()
                    .status(StatusCode::OK)
                    .header("x-pages", pages.to_string())
                    .body(Body::from(text))?)
            }
            "get-many" => match batch::get_many(&bucket, &keys) {
                Ok(values) => {
                    let lines: String = keys
                        .iter()
                        .zip(values)
                        .map(|(key, value)| match value {
                            Some((_, v)) => format!("{key}={}\n", String::from_utf8_lossy(&v)),
                            None => format!("{key}=<none>\n"),
                        })
                        .collect();
                    respond(StatusCode::OK, lines.into_bytes())
                }
                Err(e) => fail(e),
            },
            "set-many" => {
                let text = String::from_utf8_lossy(&body).to_string();
                let pairs: Vec<(String, Vec<u8>)> = text
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect();
                match batch::set_many(&bucket, &pairs) {
                    Ok(()) => respond(StatusCode::NO_CONTENT, Vec::new()),
                    Err(e) => fail(e),
                }
            }
            "delete-many" => match batch::delete_many(&bucket, &keys) {
                Ok(()) => respond(StatusCode::NO_CONTENT, Vec::new()),
                Err(e) => fail(e),
            },
            _ => respond(StatusCode::NOT_FOUND, b"no such kv operation\n".to_vec()),
        };
    }

    if let Some(op) = path.strip_prefix("/blob/") {
        let container = param("container").unwrap_or_default();
        let name = param("name").unwrap_or_default();
        return blob(op, &container, &name, &param, body);
    }

    match path.as_str() {
        "/log" => {
            let level = match param("level").as_deref() {
                Some("trace") => logging::Level::Trace,
                Some("debug") => logging::Level::Debug,
                Some("warn") => logging::Level::Warn,
                Some("error") => logging::Level::Error,
                Some("critical") => logging::Level::Critical,
                _ => logging::Level::Info,
            };
            logging::log(level, "p2-plugins", &String::from_utf8_lossy(&body));
            respond(StatusCode::NO_CONTENT, Vec::new())
        }
        "/secret" => match secrets::get(&key) {
            Ok(secret) => match reveal::reveal(&secret) {
                secrets::SecretValue::String(value) => respond(StatusCode::OK, value.into_bytes()),
                secrets::SecretValue::Bytes(value) => respond(StatusCode::OK, value),
            },
            Err(secrets::SecretsError::NotFound) => {
                respond(StatusCode::NOT_FOUND, b"not found\n".to_vec())
            }
            Err(e) => fail(e),
        },
        "/msg/publish" => {
            let message = types::BrokerMessage {
                subject: param("subject").unwrap_or_default(),
                body,
                reply_to: None,
            };
            match consumer::publish(&message) {
                Ok(()) => respond(StatusCode::NO_CONTENT, Vec::new()),
                Err(e) => fail(e),
            }
        }
        "/msg/request" => {
            let timeout = param("timeout_ms")
                .and_then(|t| t.parse().ok())
                .unwrap_or(1000);
            match consumer::request(&param("subject").unwrap_or_default(), &body, timeout) {
                Ok(reply) => respond(StatusCode::OK, reply.body),
                Err(e) => fail(e),
            }
        }
        _ => respond(StatusCode::NOT_FOUND, b"not found\n".to_vec()),
    }
}

fn respond(status: StatusCode, body: Vec<u8>) -> Result<Response<Body>, Error> {
    Ok(Response::builder().status(status).body(Body::from(body))?)
}

fn fail(error: impl std::fmt::Debug) -> Result<Response<Body>, Error> {
    respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("{error:?}\n").into_bytes(),
    )
}

/// The byte at offset `i` of a `/blob/fill` object.
fn pattern(i: u64) -> u8 {
    ((i * 31 + 7) % 251) as u8
}

/// Writes `chunks` to a new object through an output stream.
fn put_object(
    container: &wasi::blobstore::container::Container,
    name: &str,
    chunks: impl Iterator<Item = Vec<u8>>,
) -> Result<(), String> {
    let value = blob_types::OutgoingValue::new_outgoing_value();
    {
        let stream = value
            .outgoing_value_write_body()
            .map_err(|()| "no body stream".to_string())?;
        for chunk in chunks {
            // blocking-write-and-flush takes at most 4096 bytes per call.
            for piece in chunk.chunks(4096) {
                stream
                    .blocking_write_and_flush(piece)
                    .map_err(|e| format!("{e:?}"))?;
            }
        }
    }
    container.write_data(name, &value)?;
    blob_types::OutgoingValue::finish(value)
}

fn blob(
    op: &str,
    container_name: &str,
    name: &str,
    param: &dyn Fn(&str) -> Option<String>,
    body: Vec<u8>,
) -> Result<Response<Body>, Error> {
    let ok = |text: String| respond(StatusCode::OK, text.into_bytes());
    match op {
        "create" => {
            return match blobstore::create_container(container_name) {
                Ok(_) => respond(StatusCode::CREATED, Vec::new()),
                Err(e) => fail(e),
            };
        }
        "exists" => {
            return match blobstore::container_exists(container_name) {
                Ok(found) => ok(found.to_string()),
                Err(e) => fail(e),
            };
        }
        "drop" => {
            return match blobstore::delete_container(container_name) {
                Ok(()) => respond(StatusCode::NO_CONTENT, Vec::new()),
                Err(e) => fail(e),
            };
        }
        "copy" | "move" => {
            let src = blob_types::ObjectId {
                container: container_name.to_string(),
                object: name.to_string(),
            };
            let dest = blob_types::ObjectId {
                container: param("to_container").unwrap_or_else(|| container_name.to_string()),
                object: param("to").unwrap_or_default(),
            };
            let result = if op == "copy" {
                blobstore::copy_object(&src, &dest)
            } else {
                blobstore::move_object(&src, &dest)
            };
            return match result {
                Ok(()) => respond(StatusCode::NO_CONTENT, Vec::new()),
                Err(e) => fail(e),
            };
        }
        _ => {}
    }
    let container = match blobstore::get_container(container_name) {
        Ok(container) => container,
        Err(e) => return fail(e),
    };
    match op {
        "put" => match put_object(&container, name, std::iter::once(body)) {
            Ok(()) => respond(StatusCode::NO_CONTENT, Vec::new()),
            Err(e) => fail(e),
        },
        "fill" => {
            let size: u64 = param("size").and_then(|s| s.parse().ok()).unwrap_or(0);
            const CHUNK: u64 = 64 * 1024;
            let chunks = (0..size.div_ceil(CHUNK)).map(|c| {
                let start = c * CHUNK;
                (start..(start + CHUNK).min(size))
                    .map(pattern)
                    .collect::<Vec<u8>>()
            });
            match put_object(&container, name, chunks) {
                Ok(()) => respond(StatusCode::NO_CONTENT, Vec::new()),
                Err(e) => fail(e),
            }
        }
        "get" => {
            let start = param("start").and_then(|s| s.parse().ok()).unwrap_or(0);
            let end = param("end")
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX);
            match container.get_data(name, start, end) {
                Ok(value) => match blob_types::IncomingValue::incoming_value_consume_sync(value) {
                    Ok(bytes) => respond(StatusCode::OK, bytes),
                    Err(e) => fail(e),
                },
                Err(e) => fail(e),
            }
        }
        "check" => {
            let value = match container.get_data(name, 0, u64::MAX) {
                Ok(value) => value,
                Err(e) => return fail(e),
            };
            let stream = match blob_types::IncomingValue::incoming_value_consume_async(value) {
                Ok(stream) => stream,
                Err(e) => return fail(e),
            };
            let (mut size, mut hash) = (0u64, 0xcbf29ce484222325u64);
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => {
                        for byte in &chunk {
                            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x100000001b3);
                        }
                        size += chunk.len() as u64;
                    }
                    Err(wasi::io::streams::StreamError::Closed) => break,
                    Err(e) => return fail(e),
                }
            }
            ok(format!("{size} {hash:016x}"))
        }
        "info" => match container.object_info(name) {
            Ok(info) => ok(format!("{} {} {}", info.container, info.name, info.size)),
            Err(e) => fail(e),
        },
        "has" => match container.has_object(name) {
            Ok(found) => ok(found.to_string()),
            Err(e) => fail(e),
        },
        "delete" => match container.delete_object(name) {
            Ok(()) => respond(StatusCode::NO_CONTENT, Vec::new()),
            Err(e) => fail(e),
        },
        "clear" => match container.clear() {
            Ok(()) => respond(StatusCode::NO_CONTENT, Vec::new()),
            Err(e) => fail(e),
        },
        "list" => {
            let names = match container.list_objects() {
                Ok(names) => names,
                Err(e) => return fail(e),
            };
            let mut all = Vec::new();
            loop {
                match names.read_stream_object_names(2) {
                    Ok((page, done)) => {
                        all.extend(page);
                        if done {
                            break;
                        }
                    }
                    Err(e) => return fail(e),
                }
            }
            all.sort();
            ok(all.iter().map(|n| format!("{n}\n")).collect())
        }
        _ => respond(StatusCode::NOT_FOUND, b"no such blob operation\n".to_vec()),
    }
}
