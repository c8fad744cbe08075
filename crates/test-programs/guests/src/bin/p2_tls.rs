//! `wasi:http/incoming-handler@0.2` component (wstd) that talks TLS through
//! `wasi:tls/types@0.2.0-draft` over its own `wasi:sockets` TCP connection.
//!
//! `/tls?port=P&name=N`: connects to 127.0.0.1:P, shakes hands for server
//! name N, writes `ping\n`, and answers 200 `reply: LINE` with the first
//! line the server sends back; 502 `error: WHY` when any step fails (the
//! connect's error code, or the handshake's `io-error` debug string).

wit_bindgen::generate!({
    path: "../../capabilities/tls/wit",
    world: "wasi:tls/imports@0.2.0-draft",
    features: ["tls"],
    with: {
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:io/error@0.2.12": wasip2::io::error,
    },
});

use wasi::tls::types::ClientHandshake;
use wasip2::io::streams::{InputStream, OutputStream, StreamError};
use wasip2::sockets::network::{ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
use wasip2::sockets::{instance_network, tcp::TcpSocket, tcp_create_socket};
use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let query = request.uri().query().unwrap_or("").to_string();
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_string())
        })
    };
    if request.uri().path() != "/tls" {
        return text(StatusCode::NOT_FOUND, "not found\n".into());
    }
    let port = param("port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let name = param("name").unwrap_or_default();
    match exchange(port, &name) {
        Ok(line) => text(StatusCode::OK, format!("reply: {line}\n")),
        Err(why) => text(StatusCode::BAD_GATEWAY, format!("error: {why}\n")),
    }
}

/// Connects, shakes hands, sends `ping\n` and reads one line back.
fn exchange(port: u16, name: &str) -> Result<String, String> {
    let (socket, input, output) =
        connect(port).map_err(|code| format!("connect: {}", code.name()))?;
    let handshake = ClientHandshake::new(name, input, output);
    let future = ClientHandshake::finish(handshake);
    let (connection, input, output) = loop {
        match future.get() {
            Some(Ok(Ok(streams))) => break streams,
            Some(Ok(Err(error))) => return Err(format!("handshake: {}", error.to_debug_string())),
            Some(Err(())) => return Err("handshake: result taken twice".into()),
            None => future.subscribe().block(),
        }
    };
    write_all(&output, b"ping\n")?;
    let line = read_line(&input)?;
    connection.close_output();
    drop((input, output, connection, socket));
    Ok(line)
}

fn connect(port: u16) -> Result<(TcpSocket, InputStream, OutputStream), ErrorCode> {
    let network = instance_network::instance_network();
    let socket = tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4)?;
    let address = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    });
    socket.start_connect(&network, address)?;
    loop {
        match socket.finish_connect() {
            Ok((input, output)) => return Ok((socket, input, output)),
            Err(ErrorCode::WouldBlock) => socket.subscribe().block(),
            Err(code) => return Err(code),
        }
    }
}

fn write_all(output: &OutputStream, mut bytes: &[u8]) -> Result<(), String> {
    while !bytes.is_empty() {
        let room = output.check_write().map_err(|e| stream_error("write", e))?;
        if room == 0 {
            output.subscribe().block();
            continue;
        }
        let n = bytes.len().min(room as usize);
        output
            .write(&bytes[..n])
            .map_err(|e| stream_error("write", e))?;
        bytes = &bytes[n..];
    }
    output
        .blocking_flush()
        .map_err(|e| stream_error("flush", e))
}

fn read_line(input: &InputStream) -> Result<String, String> {
    let mut line = Vec::new();
    while !line.ends_with(b"\n") && line.len() < 4096 {
        let chunk = input
            .blocking_read(4096)
            .map_err(|e| stream_error("read", e))?;
        line.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_string())
}

fn stream_error(what: &str, error: StreamError) -> String {
    match error {
        StreamError::Closed => format!("{what}: closed"),
        StreamError::LastOperationFailed(e) => format!("{what}: {}", e.to_debug_string()),
    }
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(body))?)
}
