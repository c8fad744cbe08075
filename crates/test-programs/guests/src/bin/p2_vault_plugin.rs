//! A host component plugin (P2): exports `nimbus:vault-test/secrets`,
//! backed by a Vault-shaped HTTP API at `VAULT_ADDR` (KV version 2:
//! `GET /v1/secret/data/NAME` with `X-Vault-Token: VAULT_TOKEN`, answering
//! `{"data":{"data":{"value":"..."}}}`). `calls` counts the calls this
//! instance took, so a test sees one long-lived instance, and a fresh one
//! after `crash` traps.

wit_bindgen::generate!({
    path: "wit/vault",
    world: "nimbus:vault-test/plugin",
});

use exports::nimbus::vault_test::secrets::Guest;
use std::sync::atomic::{AtomicU32, Ordering};
use wstd::http::{Body, Client, Request};

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Plugin;

impl Guest for Plugin {
    fn get(name: String) -> Result<String, String> {
        CALLS.fetch_add(1, Ordering::Relaxed);
        let addr = std::env::var("VAULT_ADDR").map_err(|_| "VAULT_ADDR is not set".to_string())?;
        let token = std::env::var("VAULT_TOKEN").unwrap_or_default();
        wstd::runtime::block_on(async move {
            let request = Request::get(format!("{addr}/v1/secret/data/{name}"))
                .header("x-vault-token", token)
                .body(Body::empty())
                .map_err(|e| e.to_string())?;
            let response = Client::new()
                .send(request)
                .await
                .map_err(|e| format!("vault unreachable: {e:?}"))?;
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let text = String::from_utf8_lossy(body.contents().await.map_err(|e| e.to_string())?)
                .into_owned();
            if status != 200 {
                return Err(format!("vault answered {status}: {text}"));
            }
            // `"value":"..."`: the one field this test API answers.
            let value = text
                .split_once("\"value\":\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(value, _)| value.to_string())
                .ok_or_else(|| format!("no value in {text}"))?;
            Ok(value)
        })
    }

    fn calls() -> u32 {
        CALLS.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn crash() {
        panic!("asked to crash");
    }
}

export!(Plugin);

fn main() {}
