//! Test helpers for the connection limits, shared by the tests of this crate, the router and the
//! subgraphs (feature `testing`): clients that behave like the slow and idle ones the limits are for.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

/// Opens `count` connections to `addr` that send nothing, and returns those the server kept:
/// a connection it refused (answered and closed, or just closed) within half a second is left out.
pub async fn idle_connections(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut opened = Vec::with_capacity(count);
    for _ in 0..count {
        opened.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // All watched at once, so that the window is the same half second for each.
    let kept = futures::future::join_all(opened.into_iter().map(|mut stream| async move {
        let mut first = [0u8; 64];
        match timeout(Duration::from_millis(500), stream.read(&mut first)).await {
            Ok(_) => None,
            Err(_) => Some(stream),
        }
    }))
    .await;
    kept.into_iter().flatten().collect()
}

/// Whether the server closes `stream` within `within` (whatever it sends first is read and dropped).
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut sink = [0u8; 1024];
    timeout(within, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A connection to `addr` from local address `ip` (any of 127.0.0.0/8 works on loopback), for
/// per-IP caps.
pub async fn connect_from(ip: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(ip, 0)).expect("bind");
    socket.connect(addr).await.expect("connect")
}

/// Sends `POST path` announcing a 100-byte JSON body, sends only its first bytes, and returns what
/// the server answers within 5 s (the status line and, with it, the body).
pub async fn stalled_body(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"query\":"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let _ = timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
            // The head and the (small) body have arrived.
            let text = String::from_utf8_lossy(&response);
            if text.contains("\r\n\r\n") && text.ends_with('}') {
                break;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&response).into_owned()
}
