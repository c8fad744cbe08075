//! `nimbus:websocket`: a component takes WebSocket connections routed to
//! its workload. A real client (tokio-tungstenite) opens, talks, is
//! refused, hits each limit, and sees every ending reach `on-close`.

use crate::accounting::{sample, scrape};
use crate::common::*;
use futures::{SinkExt as _, StreamExt as _};
use nimbus_host::workload::{HostInterface, Workload};
use std::time::Duration;
use test_programs::{P2_WEBSOCKET, P3_MW_LOGGING};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

type Client = WebSocketStream<TcpStream>;

/// The `p2_websocket` guest as workload `name` at `name.test`, with these
/// `nimbus:websocket` settings.
fn websocket_workload(name: &str, config: &[(&str, &str)]) -> Workload {
    let mut workload = http_workload(name, P2_WEBSOCKET, &format!("{name}.test"));
    workload.spec.host_interfaces.push(HostInterface {
        namespace: "nimbus".into(),
        package: "websocket".into(),
        interfaces: vec!["handler".into(), "connections".into()],
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    });
    workload
}

/// Opens a connection to `host` at `path`; a refusal is its HTTP status.
async fn open(
    t: &TestHost,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Client, u16> {
    let mut request = format!("ws://{host}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            name.parse::<tokio_tungstenite::tungstenite::http::HeaderName>()
                .unwrap(),
            value.parse().unwrap(),
        );
    }
    let stream = TcpStream::connect(t.addr).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(20), client_async(request, stream)).await {
        Ok(Ok((client, response))) => {
            assert_eq!(response.status(), 101);
            Ok(client)
        }
        Ok(Err(WsError::Http(response))) => Err(response.status().as_u16()),
        Ok(Err(error)) => panic!("the handshake failed: {error}"),
        Err(_) => panic!("no answer to the upgrade request"),
    }
}

/// The next message, bounded.
async fn next(client: &mut Client) -> Message {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), client.next())
            .await
            .expect("a message within 20 s")
            .expect("the connection is open")
            .expect("a frame");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

/// The next text message.
async fn text(client: &mut Client) -> String {
    match next(client).await {
        Message::Text(text) => text.as_str().to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// The next text message that is not the handler's notice of another
/// connection closing: an old version's on-close may still announce its
/// connections to those the new version took.
async fn answer(client: &mut Client) -> String {
    loop {
        let text = text(client).await;
        if !text.starts_with("closed ") {
            return text;
        }
    }
}

/// Reads until the host's close frame, then answers it (a client reading
/// on sends its reply) and sees the connection end; the frame's code and
/// reason.
async fn closed(client: &mut Client) -> (u16, String) {
    loop {
        if let Message::Close(frame) = next(client).await {
            let frame = frame.expect("a close code");
            let end = tokio::time::timeout(Duration::from_secs(20), client.next()).await;
            assert!(
                matches!(end, Ok(None | Some(Err(_)))),
                "the connection ends after the closing handshake: {end:?}"
            );
            return (u16::from(frame.code), frame.reason.as_str().to_string());
        }
    }
}

/// `welcome ID …` or `X from ID`: the id.
fn id_in(text: &str, index: usize) -> u64 {
    text.split(' ').nth(index).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn websocket_connections_open_talk_close_and_hit_each_limit() {
    let t = accounting_host().await;
    t.host
        .start_workload(websocket_workload(
            "chat",
            &[("max_message_bytes", "1024"), ("max_connections", "3")],
        ))
        .await
        .unwrap();

    // A plain request to a WebSocket-only workload: 426, naming the protocol.
    let (status, body) = t.get("chat.test", "/").await;
    assert_eq!(status, 426, "{body}");
    assert!(body.contains("takes websocket connections only"), "{body}");

    // The observer sees each `on-close` the handler broadcasts.
    let mut observer = open(&t, "chat.test", "/", &[]).await.unwrap();

    // `on-open` may greet: the message leaves right after the 101.
    let mut a = open(&t, "chat.test", "/greet", &[("x-greeting", "hi")])
        .await
        .unwrap();
    let welcome = text(&mut a).await;
    assert!(
        welcome.starts_with("welcome ") && welcome.ends_with(" hi"),
        "{welcome}"
    );
    let id_a = id_in(&welcome, 1);
    a.send(Message::text("hello")).await.unwrap();
    assert_eq!(text(&mut a).await, "echo: hello");
    a.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(next(&mut a).await, Message::binary(vec![3u8, 2, 1]));
    a.send(Message::text("fail")).await.unwrap();
    a.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        text(&mut a).await,
        "echo: still here",
        "an error leaves it open"
    );
    a.send(Message::text("to:999999")).await.unwrap();
    assert_eq!(text(&mut a).await, "error Error::UnknownConnection");
    a.send(Message::text("big:2000")).await.unwrap();
    assert_eq!(text(&mut a).await, "error Error::TooLarge(1024)");
    a.send(Message::text("close:1234")).await.unwrap();
    assert_eq!(text(&mut a).await, "error Error::InvalidCloseCode(1234)");

    // Refusals by `on-open`, and a handler that traps: no connection.
    assert_eq!(open(&t, "chat.test", "/refuse", &[]).await.err(), Some(403));
    assert_eq!(open(&t, "chat.test", "/teapot", &[]).await.err(), Some(418));
    assert_eq!(open(&t, "chat.test", "/odd", &[]).await.err(), Some(403));
    assert_eq!(open(&t, "chat.test", "/trap", &[]).await.err(), Some(500));

    // The third connection is the last one max_connections allows.
    let mut b = open(&t, "chat.test", "/", &[]).await.unwrap();
    assert_eq!(open(&t, "chat.test", "/", &[]).await.err(), Some(503));

    // One component call reaches every open connection, in open order.
    b.send(Message::text("broadcast:hey")).await.unwrap();
    let heard = text(&mut observer).await;
    assert!(heard.starts_with("hey from "), "{heard}");
    let id_b = id_in(&heard, 2);
    assert_eq!(text(&mut a).await, format!("hey from {id_b}"));
    assert_eq!(text(&mut b).await, format!("hey from {id_b}"));
    a.send(Message::text(format!("to:{id_b}"))).await.unwrap();
    assert_eq!(text(&mut a).await, "sent");
    assert_eq!(text(&mut b).await, "hello");

    // A trap in `on-message` closes with 1011, and `on-close` hears of it.
    b.send(Message::text("trap")).await.unwrap();
    assert_eq!(closed(&mut b).await, (1011, "the handler failed".into()));
    assert_eq!(
        text(&mut observer).await,
        format!("closed {id_b} 1011 the handler failed")
    );

    // A message over max_message_bytes closes with 1009.
    a.send(Message::text("y".repeat(2000))).await.unwrap();
    assert_eq!(closed(&mut a).await, (1009, "message too large".into()));
    assert_eq!(
        text(&mut observer).await,
        format!("closed {id_a} 1009 message too large")
    );

    // A client that breaks the protocol is closed with 1002, one that sends
    // text that is not UTF-8 with 1007 (RFC 6455, 7.4.1).
    for (frame, code, reason) in [
        // Unmasked: a client must mask every frame.
        (vec![0x81, 0x02, b'h', b'i'], 1002, "protocol error"),
        // Masked (with a zero key), holding the byte 0xff.
        (
            vec![0x81, 0x81, 0, 0, 0, 0, 0xff],
            1007,
            "text is not UTF-8",
        ),
    ] {
        let mut e = open(&t, "chat.test", "/greet", &[]).await.unwrap();
        let id_e = id_in(&text(&mut e).await, 1);
        e.get_mut().write_all(&frame).await.unwrap();
        assert_eq!(closed(&mut e).await, (code, reason.into()));
        assert_eq!(
            text(&mut observer).await,
            format!("closed {id_e} {code} {reason}")
        );
    }

    // A component closes a connection with its own code.
    let mut c = open(&t, "chat.test", "/greet", &[]).await.unwrap();
    let id_c = id_in(&text(&mut c).await, 1);
    c.send(Message::text("close:4000")).await.unwrap();
    assert_eq!(closed(&mut c).await, (4000, "asked".into()));
    assert_eq!(
        text(&mut observer).await,
        format!("closed {id_c} 4000 asked")
    );

    // The client closes: `on-close` gets its code and reason.
    let mut d = open(&t, "chat.test", "/greet", &[]).await.unwrap();
    let id_d = id_in(&text(&mut d).await, 1);
    d.close(Some(CloseFrame {
        code: CloseCode::from(4001),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    assert_eq!(text(&mut observer).await, format!("closed {id_d} 4001 bye"));

    // Each ending, counted by how it ended.
    let metrics = scrape(&t.host.metrics().encode());
    let ended = |reason: &str| {
        sample(
            &metrics,
            "nimbus_websocket_connections_ended_total",
            &[("workload", "chat"), ("reason", reason)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(ended("refused"), 3.0);
    assert_eq!(ended("handler_failed"), 2.0);
    assert_eq!(ended("over_limit"), 1.0);
    assert_eq!(ended("too_large"), 1.0);
    assert_eq!(ended("protocol_error"), 2.0);
    assert_eq!(ended("component"), 1.0);
    assert_eq!(ended("client"), 1.0);
    let inbound = sample(
        &metrics,
        "nimbus_websocket_messages_total",
        &[("workload", "chat"), ("direction", "in")],
    );
    assert_eq!(inbound, Some(11.0), "each message delivered to on-message");
    assert_eq!(
        sample(
            &metrics,
            "nimbus_websocket_connections",
            &[("workload", "chat")]
        ),
        Some(1.0),
        "only the observer is open"
    );

    // Stopping the workload closes its connections with 1001.
    t.host.stop_workload("test/chat").await.unwrap();
    assert_eq!(
        closed(&mut observer).await,
        (1001, "the workload stopped".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn idle_connections_close_subprotocols_are_chosen_and_bad_setups_refused() {
    let t = accounting_host().await;
    t.host
        .start_workload(websocket_workload("quiet", &[("idle_timeout_ms", "1000")]))
        .await
        .unwrap();
    let mut pinging = open(&t, "quiet.test", "/", &[]).await.unwrap();
    let mut silent = open(&t, "quiet.test", "/", &[]).await.unwrap();
    // Pings every 100 ms for over twice the idle timeout keep one open (the
    // margin, ten pings per timeout, absorbs a loaded machine's stalls).
    for _ in 0..22 {
        pinging.send(Message::Ping(vec![1u8].into())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(closed(&mut silent).await, (1001, "idle".into()));
    let heard = text(&mut pinging).await;
    assert!(
        heard.starts_with("closed ") && heard.ends_with(" 1001 idle"),
        "{heard}"
    );
    pinging.send(Message::text("awake")).await.unwrap();
    assert_eq!(text(&mut pinging).await, "echo: awake");

    // A subprotocol the handler picks from those offered is answered; one
    // never offered refuses the connection.
    let mut request = "ws://quiet.test/proto".into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "chat.v1, chat.v2".parse().unwrap(),
    );
    let stream = TcpStream::connect(t.addr).await.unwrap();
    let (_client, response) = client_async(request, stream).await.unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "chat.v2"
    );
    assert_eq!(
        open(
            &t,
            "quiet.test",
            "/badproto",
            &[("sec-websocket-protocol", "chat.v1")]
        )
        .await
        .err(),
        Some(500)
    );

    // Middleware would be bypassed by upgrades: the two do not mix.
    let mut layered = websocket_workload("layered", &[]);
    layered
        .spec
        .components
        .push(component("mw", P3_MW_LOGGING, &[("MW_NAME", "mw")]));
    layered.spec.middleware = vec!["mw".into()];
    let error = t
        .host
        .start_workload(layered)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("do not pass through middleware"), "{error}");

    // A replacement that fails to start leaves the running version serving
    // (its handler had been put in place while it was prepared).
    t.host
        .start_workload(websocket_workload("steady", &[]))
        .await
        .unwrap();
    let mut early = open(&t, "steady.test", "/", &[]).await.unwrap();
    let mut broken = websocket_workload("steady", &[("max_connections", "5")]);
    broken
        .spec
        .components
        .push(component("mw", P3_MW_LOGGING, &[("MW_NAME", "mw")]));
    broken.spec.middleware = vec!["mw".into()];
    assert!(t.host.replace_workload(broken).await.is_err());
    early.send(Message::text("still")).await.unwrap();
    assert_eq!(text(&mut early).await, "echo: still");
    let mut later = open(&t, "steady.test", "/", &[]).await.unwrap();
    later.send(Message::text("new")).await.unwrap();
    assert_eq!(text(&mut later).await, "echo: new");

    // A replacement that starts closes the old version's connections.
    t.host
        .replace_workload(websocket_workload("steady", &[("max_connections", "5")]))
        .await
        .unwrap();
    assert_eq!(
        closed(&mut later).await,
        (1001, "the workload stopped".into())
    );
    let mut replaced = open(&t, "steady.test", "/", &[]).await.unwrap();
    replaced.send(Message::text("v2")).await.unwrap();
    assert_eq!(answer(&mut replaced).await, "echo: v2");

    // The ingress shutting down closes every connection with 1001.
    let mut last = open(&t, "steady.test", "/", &[]).await.unwrap();
    let host = t.host.clone();
    drop(t);
    assert_eq!(
        closed(&mut last).await,
        (1001, "the host is shutting down".into())
    );

    // A bad setting names itself and fails the start.
    let error = host
        .start_workload(websocket_workload("typo", &[("max_conections", "3")]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("unknown setting `max_conections`"),
        "{error}"
    );
}
