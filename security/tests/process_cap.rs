//! One connection total over every server of the process (`cap_process_connections`, for `shippy
//! up`), in a test binary of its own since the total is process-wide.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use shippy_security::connections::{ConnectionLimits, cap_process_connections, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

async fn start() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/health", get(|| async { "ok" }));
    tokio::spawn(serve(
        "test",
        listener,
        app,
        ConnectionLimits::default(),
        std::future::pending(),
    ));
    addr
}

/// The status of a `GET /health` on a new connection, kept open afterwards; `None` if refused
/// without one.
async fn health(addr: std::net::SocketAddr) -> (Option<String>, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: test\r\n\r\n")
        .await;
    let mut buf = [0u8; 12];
    let status = match timeout(Duration::from_secs(5), stream.read_exact(&mut buf)).await {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&buf[9..12]).into_owned()),
        _ => None,
    };
    (status, stream)
}

#[tokio::test]
async fn servers_of_one_process_share_the_process_total() {
    assert!(cap_process_connections(3));
    assert!(!cap_process_connections(100), "only the first call counts");
    let (a, b) = (start().await, start().await);
    let mut held = Vec::new();
    for addr in [a, b, a] {
        let (status, stream) = health(addr).await;
        assert_eq!(status.as_deref(), Some("200"));
        held.push(stream);
    }
    // Each server is far under its own cap of 10,000, but the process holds 3 of 3.
    for addr in [a, b] {
        let (status, _) = health(addr).await;
        assert_eq!(status.as_deref(), Some("503"), "{addr}");
    }
    // A closed connection frees a place in either server.
    drop(held.pop());
    let mut served = false;
    for _ in 0..50 {
        if health(b).await.0.as_deref() == Some("200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the freed place was never given back");
}
