//! `wasi:http/incoming-handler@0.2` component (wstd) exercising host limits
//! and capabilities, one behaviour per path:
//!
//! - `/ok`: 200 `ok`
//! - `/loop`: busy-loops forever (epoch/fuel interruption tests)
//! - `/burn?ms=N`: busy-loops for N ms of monotonic time
//! - `/spin?n=N`: N rounds of integer work: a fixed amount of CPU, however
//!   busy the machine (CPU accounting)
//! - `/grow?mb=N`: allocates and touches N MiB (memory limit tests)
//! - `/trap`: panics, i.e. traps
//! - `/fetch?url=URL`: outgoing GET; 502 with the WASI `error-code` name on failure
//! - `/post-late?addr=HOST:PORT&ms=N`: outgoing POST to `http://HOST:PORT/`
//!   whose body is written N ms after the request went out; says how the
//!   write, then the response, went
//! - `/env?name=X`: value of env var X, or 404 `unset`
//! - `/read?path=P`, `/write?path=P`: filesystem access (body = new contents)
//! - `/sleep?ms=N`: asynchronous sleep
//! - `/tcp?addr=HOST:PORT`: raw TCP connect through `std::net`
//! - anything else: 404 `not found`

use std::hint::black_box;

use wstd::http::{Body, Client, Error, ErrorCode, Request, Response, StatusCode};
use wstd::time::Duration;

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let param = |name: &str| query_param(&query, name);

    match path.as_str() {
        "/ok" => text(StatusCode::OK, "ok\n"),
        "/loop" => busy_loop(),
        "/burn" => {
            let ms: u64 = param("ms").and_then(|v| v.parse().ok()).unwrap_or(0);
            burn(std::time::Duration::from_millis(ms));
            text(StatusCode::OK, format!("burned {ms}\n"))
        }
        "/spin" => {
            let n: u64 = param("n").and_then(|v| v.parse().ok()).unwrap_or(0);
            text(StatusCode::OK, format!("{}\n", spin(n)))
        }
        "/grow" => {
            let mb: usize = param("mb").and_then(|v| v.parse().ok()).unwrap_or(0);
            grow(mb);
            text(StatusCode::OK, format!("grew {mb}\n"))
        }
        "/trap" => panic!("trap requested"),
        "/fetch" => match param("url") {
            Some(url) => fetch(&url).await,
            None => text(StatusCode::BAD_REQUEST, "missing url\n"),
        },
        "/post-late" => {
            let addr = param("addr").unwrap_or_default();
            let ms: u64 = param("ms").and_then(|v| v.parse().ok()).unwrap_or(0);
            text(StatusCode::OK, post_late(&addr, ms))
        }
        "/env" => match param("name").and_then(|name| std::env::var(name).ok()) {
            Some(value) => text(StatusCode::OK, value),
            None => text(StatusCode::NOT_FOUND, "unset\n"),
        },
        "/read" => {
            let path = param("path").unwrap_or_default();
            match std::fs::read(&path) {
                Ok(contents) => text(StatusCode::OK, contents),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}\n")),
            }
        }
        "/write" => {
            let path = param("path").unwrap_or_default();
            let mut body = request.into_body();
            let contents = body.contents().await?.to_vec();
            match std::fs::write(&path, contents) {
                Ok(()) => text(StatusCode::OK, "written\n"),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}\n")),
            }
        }
        "/sleep" => {
            let ms: u64 = param("ms").and_then(|v| v.parse().ok()).unwrap_or(0);
            wstd::task::sleep(Duration::from_millis(ms)).await;
            text(StatusCode::OK, format!("slept {ms}\n"))
        }
        "/tcp" => {
            let addr = param("addr").unwrap_or_default();
            match std::net::TcpStream::connect(addr.as_str()) {
                Ok(_stream) => text(StatusCode::OK, "connected\n"),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}\n")),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// A `text/plain` response with the given status and body.
fn text(status: StatusCode, body: impl Into<Body>) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.into())?)
}

/// Spins forever without yielding to the host.
fn busy_loop() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Spins without yielding to the host until `time` has passed.
fn burn(time: std::time::Duration) {
    let start = std::time::Instant::now();
    let mut counter: u64 = 0;
    while start.elapsed() < time {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// `rounds` rounds of a multiply-xorshift hash, each depending on the last.
fn spin(rounds: u64) -> u64 {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..rounds {
        x = black_box(x.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ (x >> 29));
    }
    x
}

/// Allocates `mb` MiB and writes one byte per 4 KiB page so that every page
/// is really committed. An allocation the host refuses aborts (traps).
fn grow(mb: usize) {
    let len = mb << 20;
    let mut buf = vec![0u8; len];
    for i in (0..len).step_by(4096) {
        buf[i] = 1;
    }
    black_box(&buf);
}

/// Outgoing GET of `url`: 200 with `status: CODE` and the body, or 502 with
/// the error. WASI `error-code`s render as their variant names, e.g.
/// `error: ErrorCode::HttpRequestDenied`.
async fn fetch(url: &str) -> Result<Response<Body>, Error> {
    let result = async {
        let request = Request::get(url).body(Body::empty())?;
        let response = Client::new().send(request).await?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let contents = body.contents().await?.to_vec();
        Ok::<_, Error>((status, contents))
    }
    .await;
    match result {
        Ok((status, contents)) => {
            let mut out = format!("status: {status}\n").into_bytes();
            out.extend_from_slice(&contents);
            text(StatusCode::OK, out)
        }
        Err(err) => text(
            StatusCode::BAD_GATEWAY,
            format!("error: {}\n", render_error(&err)),
        ),
    }
}

/// A POST whose body the guest writes `ms` after handing the request to
/// the host, with raw `wasi:http` calls so the delay is exact: the server
/// may have answered, and closed, by then. Returns `write: ..., finish:
/// ..., response: ...`.
fn post_late(addr: &str, ms: u64) -> String {
    use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_method(&Method::Post);
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(addr));
    let _ = request.set_path_with_query(Some("/"));
    let body = request.body().expect("the body is taken once");
    let response = match wasip2::http::outgoing_handler::handle(request, None) {
        Ok(response) => response,
        Err(code) => return format!("handle: {code:?}\n"),
    };
    wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
    let stream = body.write().expect("the stream is taken once");
    let write = match stream.blocking_write_and_flush(b"late body") {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{e:?}"),
    };
    drop(stream);
    let finish = match OutgoingBody::finish(body, None) {
        Ok(()) => "ok".to_string(),
        Err(code) => format!("{code:?}"),
    };
    response.subscribe().block();
    let response = match response.get() {
        Some(Ok(Ok(response))) => format!("{}", response.status()),
        Some(Ok(Err(code))) => format!("{code:?}"),
        other => format!("{other:?}"),
    };
    format!("write: {write}, finish: {finish}, response: {response}\n")
}

/// Debug rendering of an error that leads with the WASI `error-code` variant
/// (`ErrorCode::ConnectionRefused`, ...) when one is anywhere in the chain.
fn render_error(err: &Error) -> String {
    match err.chain().find_map(|e| e.downcast_ref::<ErrorCode>()) {
        Some(code) => {
            let name = format!("{code:?}");
            let full = format!("{err:#}");
            if full == name {
                name
            } else {
                format!("{name} ({full})")
            }
        }
        None => format!("{err:?}"),
    }
}

/// Value of `name` in an `a=b&c=d` query string, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
