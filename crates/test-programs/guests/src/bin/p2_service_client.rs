//! P2 HTTP component (wstd) that talks to its workload's service over the
//! virtual loopback: `/ask?line=X` connects to `127.0.0.1:$SERVICE_PORT`,
//! sends `X`, and answers with the service's reply (502 with the error when
//! the connection fails or closes without a reply).

use std::net::{Ipv4Addr, SocketAddr};
use wstd::http::{Body, Error, Request, Response, StatusCode};
use wstd::io::{AsyncRead, AsyncWrite};
use wstd::net::TcpStream;

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let line = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("line=")))
        .unwrap_or("ping")
        .to_string();
    let port: u16 = std::env::var("SERVICE_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(7000);
    let (status, body) = match ask(port, &line).await {
        Ok(reply) => (StatusCode::OK, reply),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("cannot reach the service: {e}\n"),
        ),
    };
    Ok(Response::builder().status(status).body(Body::from(body))?)
}

async fn ask(port: u16, line: &str) -> std::io::Result<String> {
    let mut stream =
        TcpStream::connect_addr(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)).await?;
    stream.write_all(format!("{line}\n").as_bytes()).await?;
    stream.flush().await?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    if reply.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the service closed the connection without answering",
        ));
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}
