//! {{project-name}}: a request counter on `wasi:keyvalue`.
//!
//! Every request to `/{key}` atomically increments `key` in the bucket named
//! by `KV_BUCKET` (default `default`) and answers with the new count. The
//! host decides where the bucket lives (memory, a file, Redis, NATS): see
//! `dev.keyvalue` in `.nimbus/config.yaml`.

wit_bindgen::generate!({
    inline: r#"
        package nimbus:counter-imports;

        world imports {
            import wasi:keyvalue/store@0.2.0-draft;
            import wasi:keyvalue/atomics@0.2.0-draft;
        }
    "#,
    path: "wit/deps/keyvalue",
    world: "nimbus:counter-imports/imports",
    generate_all,
});

use wasi::keyvalue::{atomics, store};
use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let key = match request.uri().path().trim_matches('/') {
        "" => "hits".to_string(),
        key => key.to_string(),
    };
    let bucket_name = std::env::var("KV_BUCKET").unwrap_or_else(|_| "default".into());
    let count = store::open(&bucket_name)
        .and_then(|bucket| atomics::increment(&bucket, &key, 1));
    let (status, body) = match count {
        Ok(count) => (StatusCode::OK, format!("{key}: {count}\n")),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("key-value error: {}\n", describe(&e)),
        ),
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(body))?)
}

fn describe(error: &store::Error) -> String {
    match error {
        store::Error::NoSuchStore => "no such bucket".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message.clone(),
    }
}
