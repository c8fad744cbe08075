//! P2 service (`wasi:cli/run`, wstd) for a workload's virtual loopback:
//! listens on `127.0.0.1:$SERVICE_PORT` and answers each line a client
//! sends with `<started> <line>`, where `<started>` is when this run began
//! (nanoseconds since the Unix epoch), so a client can tell restarts apart.
//!
//! The line `crash` makes it panic (a trap), `exit` makes it exit with
//! status 3. With `HEARTBEAT_FILE` set it appends one byte to that file
//! every 20 ms while it runs.

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wstd::io::{AsyncRead, AsyncWrite};
use wstd::iter::AsyncIterator;
use wstd::net::{TcpListener, TcpStream};

#[wstd::main]
async fn main() -> std::io::Result<()> {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let port = std::env::var("SERVICE_PORT").unwrap_or_else(|_| "7000".into());
    if let Ok(path) = std::env::var("HEARTBEAT_FILE") {
        wstd::runtime::spawn(heartbeat(path)).detach();
    }
    let listener = TcpListener::bind(&format!("127.0.0.1:{port}")).await?;
    let mut incoming = listener.incoming();
    while let Some(stream) = incoming.next().await {
        let stream = stream?;
        wstd::runtime::spawn(answer(stream, started)).detach();
    }
    Ok(())
}

async fn heartbeat(path: String) {
    loop {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = file.write_all(b".");
        }
        wstd::task::sleep(Duration::from_millis(20).into()).await;
    }
}

async fn answer(mut stream: TcpStream, started: u128) {
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    while !line.contains(&b'\n') {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => line.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&line).trim().to_string();
    match line.as_str() {
        "crash" => panic!("asked to crash"),
        "exit" => std::process::exit(3),
        _ => {
            let _ = stream
                .write_all(format!("{started} {line}\n").as_bytes())
                .await;
            let _ = stream.flush().await;
        }
    }
}
