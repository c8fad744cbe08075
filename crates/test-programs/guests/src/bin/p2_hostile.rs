//! `wasi:http/incoming-handler@0.2` component (wstd) that tries to take its
//! host down, one attack per path; each answers with what it got done
//! before the host stopped it:
//!
//! - `/fields?kb=N&count=M`: creates M `wasi:http` `fields` resources of
//!   N KiB each and keeps them all (host memory outside linear memory);
//!   answers `created M`, or traps when the host refuses one.
//! - `/hold?count=M&url=U`: sends M GET requests to `U` and keeps every
//!   response unread, so each holds its connection open; answers
//!   `held K` and the first error's WASI code.
//! - `/stream?kb=N`: answers 200 and streams N KiB chunks forever.
//! - `/spin`: spins forever without yielding.
//! - `/stdout?lines=N`: writes N lines to stdout (N = 0: forever), then
//!   answers `wrote N`.
//! - `/sockets?count=M&port=P`: opens M raw `wasi:sockets` TCP connections
//!   to 127.0.0.1:P and keeps them all; answers `opened K error CODE`.

use std::hint::black_box;
use std::io::Write as _;

use wstd::http::{Body, Client, Error, ErrorCode, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let query = request.uri().query().unwrap_or("").to_string();
    let number = |name: &str| -> u64 {
        param(&query, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    match request.uri().path() {
        "/fields" => {
            let value = vec![b'a'; number("kb") as usize * 1024];
            let mut kept = Vec::new();
            for _ in 0..number("count") {
                let entry = [("x-filler".to_string(), value.clone())];
                let fields = wasip2::http::types::Fields::from_list(&entry)
                    .map_err(|e| Error::msg(format!("{e:?}")))?;
                kept.push(fields);
            }
            text(format!("created {}\n", kept.len()))
        }
        "/hold" => {
            let url = param(&query, "url").unwrap_or_default();
            let mut held = Vec::new();
            let mut error = String::from("none");
            for _ in 0..number("count") {
                let request = Request::get(url.as_str()).body(Body::empty())?;
                match Client::new().send(request).await {
                    Ok(response) => held.push(response),
                    Err(err) => {
                        error = match err.chain().find_map(|e| e.downcast_ref::<ErrorCode>()) {
                            Some(code) => format!("{code:?}"),
                            None => format!("{err:?}"),
                        };
                        break;
                    }
                }
            }
            text(format!("held {} error {error}\n", held.len()))
        }
        "/stream" => {
            let chunk = vec![b's'; number("kb").max(1) as usize * 1024];
            let stream = futures_lite::stream::repeat(chunk);
            Ok(Response::builder()
                .status(StatusCode::OK)
                .body(Body::from_stream(stream))?)
        }
        "/spin" => {
            let mut counter: u64 = 0;
            loop {
                counter = black_box(counter.wrapping_add(1));
            }
        }
        "/stdout" => {
            let lines = number("lines");
            let mut out = std::io::stdout();
            let mut written = 0u64;
            while lines == 0 || written < lines {
                let _ = writeln!(out, "guest line {written}");
                written += 1;
            }
            text(format!("wrote {written}\n"))
        }
        "/sockets" => {
            let (opened, error) = open_sockets(number("count"), number("port") as u16);
            text(format!("opened {opened} error {error}\n"))
        }
        _ => Ok(Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("not found\n"))?),
    }
}

fn text(body: String) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(StatusCode::OK)
        .body(Body::from(body))?)
}

/// The raw value of `name` in an `a=b&c=d` query (tests send plain values;
/// `url` comes last and may itself contain `=`).
fn param(query: &str, name: &str) -> Option<String> {
    let start = query
        .split('&')
        .position(|pair| pair.split_once('=').is_some_and(|(k, _)| k == name))?;
    let rest: Vec<&str> = query.split('&').skip(start).collect();
    let joined = if name == "url" {
        rest.join("&")
    } else {
        rest[0].to_string()
    };
    joined.split_once('=').map(|(_, v)| v.to_string())
}

/// Connects `count` TCP sockets to 127.0.0.1:`port` and keeps them until
/// the first failure; returns how many connected and that failure's code.
fn open_sockets(count: u64, port: u16) -> (usize, String) {
    use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    use wasip2::sockets::{instance_network, tcp_create_socket};
    let network = instance_network::instance_network();
    let address = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    });
    let mut kept = Vec::new();
    for _ in 0..count {
        let connected =
            tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4).and_then(|socket| {
                socket.start_connect(&network, address)?;
                loop {
                    match socket.finish_connect() {
                        // Streams first: they must be dropped before their socket.
                        Ok(streams) => return Ok((streams, socket)),
                        Err(wasip2::sockets::network::ErrorCode::WouldBlock) => {
                            socket.subscribe().block()
                        }
                        Err(code) => return Err(code),
                    }
                }
            });
        match connected {
            Ok(connection) => kept.push(connection),
            Err(code) => return (kept.len(), code.name().to_string()),
        }
    }
    (kept.len(), "none".to_string())
}
