//! {{project-name}}: HTTP middleware. It imports the handler it wraps and
//! exports the same interface, so the host (or `nimbus compose`) places it in
//! front of any HTTP component.
//!
//! - a request with `x-block: yes` is answered here with 403 (short-circuit);
//! - every other request goes to the inner handler unchanged.

wit_bindgen::generate!({
    path: "wit",
    world: "rust",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Middleware;

impl Guest for Middleware {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let blocked = request
            .headers()
            .get("x-block")
            .iter()
            .any(|value| value.eq_ignore_ascii_case(b"yes"));
        if blocked {
            forbid(response_out);
        } else {
            wasi::http::incoming_handler::handle(request, response_out);
        }
    }
}

/// Answers 403 without calling the inner handler.
fn forbid(response_out: ResponseOutparam) {
    let headers = Fields::from_list(&[(
        "content-type".to_string(),
        b"text/plain; charset=utf-8".to_vec(),
    )])
    .expect("static headers are valid");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(403).expect("403 is a valid status");
    let body = response.body().expect("a new response has a body");
    ResponseOutparam::set(response_out, Ok(response));
    let stream = body.write().expect("a new body has a stream");
    stream
        .blocking_write_and_flush(b"blocked by {{project-name}}\n")
        .expect("the client reads the body");
    drop(stream);
    OutgoingBody::finish(body, None).expect("the body is complete");
}

export!(Middleware);
