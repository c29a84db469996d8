//! The connection caps and timeouts of `shippy_security::connections::serve`, on real sockets.
//!
//! Timeouts here are a few hundred milliseconds and the assertions allow seconds, so a loaded
//! machine slows the tests down without failing them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::ws::{Message as ServerMessage, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use futures::{SinkExt, StreamExt};
use shippy_security::connections::testing::{closed_within, connect_from, idle_connections};
use shippy_security::connections::{ConnectionLimits, LimitsError, is_body_timeout, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;

/// Long enough that no test here meets it unless it waits for it on purpose.
const LONG: Duration = Duration::from_secs(60);

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        max_connections: 1000,
        max_connections_per_ip: 1000,
        header_read_timeout: LONG,
        body_read_timeout: LONG,
        idle_timeout: LONG,
    }
}

async fn echo(body: Body) -> impl IntoResponse {
    match axum::body::to_bytes(body, 1 << 20).await {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(err) if is_body_timeout(&err) => StatusCode::REQUEST_TIMEOUT.into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

fn app() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/ip",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
        .route("/echo", post(echo))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        )
        .route(
            "/stream",
            get(|| async {
                // Five chunks 200 ms apart: a response that outlives a short idle timeout.
                let chunks = futures::stream::unfold(0, |n| async move {
                    if n == 5 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((Ok::<_, std::io::Error>(format!("chunk {n}\n")), n + 1))
                });
                Body::from_stream(chunks)
            }),
        )
        .route(
            "/ws",
            get(|upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(|mut socket| async move {
                    while let Some(Ok(message)) = socket.recv().await {
                        if let ServerMessage::Text(text) = message
                            && socket.send(ServerMessage::Text(text)).await.is_err()
                        {
                            break;
                        }
                    }
                })
            }),
        )
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(limits: ConnectionLimits) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve("test", listener, app(), limits, async move {
            let _ = stopped.await;
        })
        .await
    });
    Server {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Reads one HTTP/1.1 response with a `content-length` or chunked body (the chunk framing is left
/// in the body); `None` if the connection closed first.
async fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let lower = head.to_ascii_lowercase();
    let body = if let Some(len) = lower
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
    {
        let mut body = vec![0u8; len.trim().parse().ok()?];
        stream.read_exact(&mut body).await.ok()?;
        body
    } else {
        let mut body = Vec::new();
        while !body.ends_with(b"0\r\n\r\n") {
            if stream.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            body.push(byte[0]);
        }
        body
    };
    Some((status, String::from_utf8(body).unwrap()))
}

async fn get_on(stream: &mut TcpStream, path: &str) -> Option<(u16, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    read_response(stream).await
}

#[test]
fn limits_have_documented_defaults_and_refuse_what_cannot_work() {
    let defaults = ConnectionLimits::default();
    assert_eq!(defaults.max_connections, 10_000);
    assert_eq!(defaults.max_connections_per_ip, 1_024);
    assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
    assert_eq!(defaults.body_read_timeout, Duration::from_secs(30));
    assert_eq!(defaults.idle_timeout, Duration::from_secs(120));
    assert!(defaults.check().is_empty());
    let broken = ConnectionLimits {
        max_connections: 0,
        max_connections_per_ip: 5,
        header_read_timeout: Duration::ZERO,
        body_read_timeout: Duration::ZERO,
        idle_timeout: Duration::ZERO,
    };
    assert_eq!(
        broken.check(),
        [
            LimitsError::ZeroCap("max_connections"),
            LimitsError::ZeroTimeout("header_read_timeout"),
            LimitsError::ZeroTimeout("body_read_timeout"),
            LimitsError::ZeroTimeout("idle_timeout"),
            LimitsError::PerIpAboveTotal {
                per_ip: 5,
                total: 0
            },
        ]
    );
    let read: ConnectionLimits =
        serde_json::from_str(r#"{"max_connections_per_ip": 8, "idle_timeout": "2m"}"#).unwrap();
    assert_eq!(read.max_connections_per_ip, 8);
    assert_eq!(read.idle_timeout, Duration::from_secs(120));
    assert_eq!(read.max_connections, 10_000);
    assert!(serde_json::from_str::<ConnectionLimits>(r#"{"max_conns": 1}"#).is_err());
}

/// The slow-client attack: 200 idle sockets against a cap of 64. The ones past the cap are
/// refused at once, requests on an open connection keep being answered in time, and once the
/// idle ones have been timed out a fresh connection is served.
#[tokio::test]
async fn past_the_cap_connections_are_refused_while_open_ones_are_served() {
    let server = start(ConnectionLimits {
        max_connections: 64,
        max_connections_per_ip: 64,
        header_read_timeout: Duration::from_millis(1500),
        ..limits()
    })
    .await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(
        get_on(&mut client, "/health").await,
        Some((200, "ok".into()))
    );

    let held = idle_connections(server.addr, 200).await;
    let refused = 200 - held.len();
    assert_eq!(
        refused,
        200 - 63,
        "the cap of 64 holds one client and 63 idle sockets"
    );

    // The open connection is served at once while the server is full.
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(
            get_on(&mut client, "/health").await,
            Some((200, "ok".into()))
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // The idle sockets never sent their headers: closed after the header timeout, which frees
    // their places for new clients.
    for mut stream in held {
        assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    }
    let mut fresh = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    assert_eq!(
        get_on(&mut fresh, "/health").await,
        Some((200, "ok".into()))
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn one_address_cannot_take_more_than_its_share() {
    let server = start(ConnectionLimits {
        max_connections: 100,
        max_connections_per_ip: 3,
        ..limits()
    })
    .await;
    let here = IpAddr::from([127, 0, 0, 1]);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from(here, server.addr).await;
        assert_eq!(
            get_on(&mut stream, "/ip").await,
            Some((200, "127.0.0.1".into()))
        );
        held.push(stream);
    }
    let mut fourth = connect_from(here, server.addr).await;
    assert_eq!(
        read_response(&mut fourth).await.map(|(status, _)| status),
        Some(503)
    );
    assert!(closed_within(&mut fourth, Duration::from_secs(2)).await);

    // Another address still gets in, and the handler sees its address.
    let other = IpAddr::from([127, 0, 0, 2]);
    let mut stream = connect_from(other, server.addr).await;
    assert_eq!(
        get_on(&mut stream, "/ip").await,
        Some((200, "127.0.0.2".into()))
    );

    // A closed connection gives its place back.
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut stream = connect_from(here, server.addr).await;
        if let Some((200, _)) = get_on(&mut stream, "/ip").await {
            again = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the freed place was never given back");
}

#[tokio::test]
async fn a_client_that_does_not_finish_its_headers_is_closed() {
    let server = start(ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        ..limits()
    })
    .await;
    // Slowloris: half a request head, then nothing.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nhost: te")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut slow, Duration::from_secs(3)).await);
    assert!(started.elapsed() >= Duration::from_millis(250));

    // Silent from the start: the same deadline.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);

    // Trickling bytes does not extend it.
    let mut trickle = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    for byte in b"GET /health HTTP/1.1\r\nx-a: b" {
        if trickle.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    assert!(closed_within(&mut trickle, Duration::from_secs(3)).await);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn keep_alive_connections_idle_past_the_idle_timeout_are_closed_but_not_before() {
    let server = start(ConnectionLimits {
        header_read_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(800),
        ..limits()
    })
    .await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(
        get_on(&mut client, "/health").await,
        Some((200, "ok".into()))
    );
    // Idle for longer than the header timeout: the header timeout only counts from the next
    // request's first byte, so the connection still serves.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        get_on(&mut client, "/health").await,
        Some((200, "ok".into()))
    );
    let started = Instant::now();
    assert!(closed_within(&mut client, Duration::from_secs(5)).await);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(700), "{waited:?}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let server = start(ConnectionLimits {
        body_read_timeout: Duration::from_millis(300),
        ..limits()
    })
    .await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    let started = Instant::now();
    let response = timeout(Duration::from_secs(3), read_response(&mut client))
        .await
        .expect("no answer to a stalled body");
    assert_eq!(response.map(|(status, _)| status), Some(408));
    assert!(started.elapsed() >= Duration::from_millis(250));

    // A body that arrives in time is read as usual.
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 5\r\n\r\nhello")
        .await
        .unwrap();
    assert_eq!(
        read_response(&mut client).await,
        Some((200, "hello".into()))
    );
}

#[tokio::test]
async fn streaming_responses_and_websockets_outlive_the_idle_timeout() {
    let server = start(ConnectionLimits {
        max_connections: 2,
        max_connections_per_ip: 2,
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..limits()
    })
    .await;
    // A response streaming for a second, with pauses longer than the idle timeout.
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let (status, body) = get_on(&mut client, "/stream").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("chunk 4"), "{body}");
    drop(client);

    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
        .await
        .unwrap();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        socket
            .send(Message::text(format!("round {round}")))
            .await
            .unwrap();
        let echoed = timeout(Duration::from_secs(2), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Message::text(format!("round {round}")));
    }

    // The WebSocket still holds its place: with the cap at 2, one more fits and then none.
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(
        get_on(&mut second, "/health").await,
        Some((200, "ok".into()))
    );
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(
        read_response(&mut third).await.map(|(status, _)| status),
        Some(503)
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_then_stops_accepting() {
    let mut server = start(limits()).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    // Let the request reach the handler before asking to stop.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.take().unwrap().send(()).unwrap();
    assert_eq!(read_response(&mut client).await, Some((200, "done".into())));
    let served = timeout(Duration::from_secs(5), &mut server.task)
        .await
        .expect("serve did not return after the drain");
    served.unwrap().unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
}
