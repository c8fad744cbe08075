//! P2 component reading its configuration through `wasi:config/store` and
//! its environment through `wasi:cli`:
//! - `/config?key=K`: the value of K, or 404 `unset`
//! - `/config-all`: every `key=value`, one per line, sorted
//! - `/env?name=X`: the environment variable X, or 404 `unset`

wit_bindgen::generate!({
    path: "wit/config",
    world: "wasi:config/imports",
    generate_all,
});

use wasi::config::store;
use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let query = request.uri().query().unwrap_or("").to_string();
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    };
    match request.uri().path() {
        "/config" => match store::get(&param("key").unwrap_or_default()) {
            Ok(Some(value)) => text(StatusCode::OK, value),
            Ok(None) => text(StatusCode::NOT_FOUND, "unset\n".into()),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:?}\n")),
        },
        "/config-all" => match store::get_all() {
            Ok(mut all) => {
                all.sort();
                let lines: String = all.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                text(StatusCode::OK, lines)
            }
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:?}\n")),
        },
        "/env" => match param("name").and_then(|name| std::env::var(name).ok()) {
            Some(value) => text(StatusCode::OK, value),
            None => text(StatusCode::NOT_FOUND, "unset\n".into()),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(body))?)
}
