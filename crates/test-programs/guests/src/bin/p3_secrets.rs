//! `wasi:http/service@0.3.0` component (wasip3 0.9) that reads a secret
//! through `wasmcloud:secrets@2.1.0`, whose calls are component-model
//! `async` functions: `/secret?key=K` awaits `store.get(K)` and
//! `reveal.reveal`, and answers the value (200), `not found` (404), or the
//! error (500).

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

wit_bindgen_p3::generate!({
    inline: "
        package nimbus:test-secrets;
        world guest {
            import wasmcloud:secrets/store@2.1.0;
            import wasmcloud:secrets/reveal@2.1.0;
        }
    ",
    path: "../../capabilities/secrets/wit-2.1.0",
    world: "nimbus:test-secrets/guest",
    runtime_path: "wit_bindgen_p3::rt",
    generate_all,
});

use wasmcloud::secrets::{reveal, store};

struct Service;

wasip3::http::service::export!(Service);

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path_and_query = request.get_path_with_query().unwrap_or_default();
        let key = path_and_query
            .split_once('?')
            .map(|(_, query)| query)
            .unwrap_or("")
            .split('&')
            .find_map(|pair| pair.strip_prefix("key="))
            .unwrap_or("")
            .to_string();
        let (status, body) = match store::get(key).await {
            Ok(secret) => match reveal::reveal(&secret).await {
                store::SecretValue::String(value) => (200, value.into_bytes()),
                store::SecretValue::Bytes(value) => (200, value),
            },
            Err(store::SecretsError::NotFound) => (404, b"not found".to_vec()),
            Err(error) => (500, format!("{error:?}").into_bytes()),
        };
        Ok(text_response(status, body))
    }
}

fn text_response(status: u16, body: Vec<u8>) -> Response {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
        .expect("valid header");
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _transmitted) = Response::new(headers, Some(body_rx), trailers_rx);
    drop(trailers_tx);
    response.set_status_code(status).expect("a valid status");
    wasip3::spawn_local(async move {
        body_tx.write_all(body).await;
    });
    response
}

fn main() {
    unreachable!("HTTP service components are driven through `handle`, not `run`")
}
