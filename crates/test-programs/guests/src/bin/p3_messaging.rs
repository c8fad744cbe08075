//! `wasmcloud:messaging@0.3.0` from a `wasi:http/service@0.3.0` component
//! (wasip3 0.9): every call is an `async` function and every body a
//! `stream<u8>`.
//!
//! As a handler (`handle-message`): a message on `slow.*` waits its body's
//! number of milliseconds, then publishes its body to `finished`; a body
//! `reject` is rejected; any other message with a `reply-to` is answered
//! there with `TOKEN: BODY`, TOKEN being the subject's last token.
//!
//! Over HTTP: `/request?subject=S&timeout_ms=N` sends the request body as a
//! request (no `timeout_ms`: the host's default) and answers the reply's
//! body (200) or the error (502, its debug form); `/publish?subject=S` and
//! `/publish?subject=S&bytes=N` publish the request body (or N bytes of
//! `x`) and answer 204 or the error (502).

#[path = "../shared/p3_response.rs"]
mod response;

use response::text_response;
use wasip3::http::types::{ErrorCode, Request, Response};

wit_bindgen_p3::generate!({
    inline: "
        package nimbus:test-messaging;
        world guest {
            import wasmcloud:messaging/consumer@0.3.0;
            export wasmcloud:messaging/handler@0.3.0;
        }
    ",
    path: "../../capabilities/messaging/wit-0.3.0",
    world: "nimbus:test-messaging/guest",
    runtime_path: "wit_bindgen_p3::rt",
    generate_all,
});

use exports::wasmcloud::messaging::handler;
use wasmcloud::messaging::consumer;
use wasmcloud::messaging::types::{BrokerMessage, HandleMessageError};

struct Guest;

export!(Guest);

impl handler::Guest for Guest {
    async fn handle_message(msg: BrokerMessage) -> Result<(), HandleMessageError> {
        let body = msg.body.collect().await;
        let text = String::from_utf8_lossy(&body).into_owned();
        if msg.subject.starts_with("slow.") {
            let ms: u64 = text
                .trim()
                .parse()
                .map_err(|_| HandleMessageError::Reject)?;
            wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
            publish("finished", text.clone().into_bytes(), None)
                .await
                .map_err(|e| HandleMessageError::Other(format!("{e:?}")))?;
        }
        if text == "reject" {
            return Err(HandleMessageError::Reject);
        }
        if let Some(reply_to) = msg.reply_to {
            let name = msg.subject.rsplit('.').next().unwrap_or_default();
            publish(&reply_to, format!("{name}: {text}").into_bytes(), None)
                .await
                .map_err(|e| HandleMessageError::Other(format!("{e:?}")))?;
        }
        Ok(())
    }
}

/// Publishes `body`, written in two parts so the host reads a stream.
async fn publish(
    subject: &str,
    body: Vec<u8>,
    reply_to: Option<String>,
) -> Result<(), wasmcloud::messaging::types::Error> {
    let (mut writer, reader) = wit_stream::new::<u8>();
    let message = BrokerMessage {
        subject: subject.to_string(),
        body: reader,
        reply_to,
    };
    let (sent, ()) = futures_join(consumer::publish(message), async move {
        let half = body.len() / 2;
        let rest = body[half..].to_vec();
        let mut first = body;
        first.truncate(half);
        writer.write_all(first).await;
        writer.write_all(rest).await;
    })
    .await;
    sent
}

/// Runs both futures to completion (the call reads what the writer writes).
async fn futures_join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    futures_lite::future::zip(a, b).await
}

struct Service;

wasip3::http::service::export!(Service);

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path_and_query = request.get_path_with_query().unwrap_or_default();
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query.as_str(), ""));
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
        };
        let subject = param("subject").unwrap_or_default();
        let (body, _trailers) =
            Request::consume_body(request, wasip3::wit_future::new(|| Ok(())).1);
        let body = body.collect().await;
        let (status, answer) = match path {
            "/request" => {
                let timeout = param("timeout_ms").and_then(|ms| ms.parse().ok());
                let (mut writer, reader) = wit_stream::new::<u8>();
                let (reply, ()) =
                    futures_join(consumer::request(subject, reader, timeout), async move {
                        writer.write_all(body).await;
                    })
                    .await;
                match reply {
                    Ok(reply) => (200, reply.body.collect().await),
                    Err(error) => (502, format!("{error:?}").into_bytes()),
                }
            }
            "/publish" => {
                let body = match param("bytes").and_then(|n| n.parse::<usize>().ok()) {
                    Some(n) => vec![b'x'; n],
                    None => body,
                };
                match publish(&subject, body, None).await {
                    Ok(()) => (204, Vec::new()),
                    Err(error) => (502, format!("{error:?}").into_bytes()),
                }
            }
            _ => (404, b"not found".to_vec()),
        };
        Ok(text_response(status, answer))
    }
}

fn main() {
    unreachable!("this component is driven through its exports, not `run`")
}
