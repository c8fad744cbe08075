//! P2 component exercising the host plugins over HTTP (query parameters
//! `bucket`, `key`, `keys`, `delta`, `subject`, `timeout_ms`, `level`):
//! - `/kv/get`, `/kv/set` (body is the value), `/kv/delete`, `/kv/exists`,
//!   `/kv/incr`, `/kv/list` (every key, following cursors; header
//!   `x-pages`), `/kv/get-many`, `/kv/set-many` (body `k=v` lines),
//!   `/kv/delete-many` — `wasi:keyvalue` store, atomics, batch;
//! - `/log?level=L` (body is the message) — `wasi:logging`;
//! - `/secret?key=K` — `wasmcloud:secrets` store + reveal;
//! - `/msg/publish?subject=S`, `/msg/request?subject=S&timeout_ms=N` (body
//!   is the payload) — `wasmcloud:messaging` consumer.
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
        }
    "#,
    path: [
        "../../runtime/wit/keyvalue",
        "../../runtime/wit/logging",
        "../../runtime/wit/secrets",
        "../../runtime/wit/messaging",
    ],
    world: "nimbus:plugins-guest/guest",
    generate_all,
});

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
            let timeout = param("timeout_ms").and_then(|t| t.parse().ok()).unwrap_or(1000);
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
