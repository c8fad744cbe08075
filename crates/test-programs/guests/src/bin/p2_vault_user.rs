//! P2 HTTP component (wstd) importing `nimbus:vault-test/secrets`, which a
//! host component plugin exports: `/secret/NAME` answers the secret (200)
//! or the plugin's error (502); `/calls` the plugin instance's call count;
//! `/crash` makes the plugin trap (this request fails with it).

wit_bindgen::generate!({
    path: "wit/vault",
    world: "nimbus:vault-test/user",
});

use nimbus::vault_test::secrets;
use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_string();
    let (status, body) = if let Some(name) = path.strip_prefix("/secret/") {
        match secrets::get(name) {
            Ok(value) => (StatusCode::OK, value),
            Err(error) => (StatusCode::BAD_GATEWAY, error),
        }
    } else if path == "/calls" {
        (StatusCode::OK, secrets::calls().to_string())
    } else if path == "/crash" {
        secrets::crash();
        (StatusCode::OK, "survived".to_string())
    } else {
        (StatusCode::NOT_FOUND, "not found".to_string())
    };
    Ok(Response::builder().status(status).body(Body::from(body))?)
}
