//! `wasi:http/service@0.3.0` component (wasip3 0.9) that reads a secret
//! through `wasmcloud:secrets@2.1.0`, whose calls are component-model
//! `async` functions: `/secret?key=K` awaits `store.get(K)` and
//! `reveal.reveal`, and answers the value (200), `not found` (404), or the
//! error (500).

#[path = "../shared/p3_response.rs"]
mod response;

use response::text_response;
use wasip3::http::types::{ErrorCode, Request, Response};

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

fn main() {
    unreachable!("HTTP service components are driven through `handle`, not `run`")
}
