//! A minimal HTTP/1.1 client on hyper: one keep-alive connection per [`Connection`].
//!
//! The load generator wants exactly one TCP connection per simulated client (like k6's virtual
//! users), so it drives hyper's connection-level API instead of a pooled client that would open and
//! share connections as it likes.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("`{0}` is not an http:// URL with a host")]
    UnsupportedUrl(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    #[error("invalid request: {0}")]
    Request(#[from] http::Error),
}

/// Where requests go: the socket address to dial and the request target on it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    pub addr: String,
    /// The request URI as sent on the wire (`/graphql?x=y`).
    pub path_and_query: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, ClientError> {
        let unsupported = || ClientError::UnsupportedUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| unsupported())?;
        if uri.scheme_str() != Some("http") {
            return Err(unsupported());
        }
        let authority = uri.authority().ok_or_else(unsupported)?;
        let port = authority.port_u16().unwrap_or(80);
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        Ok(Target {
            addr: format!("{}:{port}", authority.host()),
            path_and_query,
        })
    }
}

/// One open HTTP/1.1 connection; requests on it go one after another (no pipelining).
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    pub async fn open(target: &Target) -> Result<Connection, ClientError> {
        let connect_error = |source| ClientError::Connect {
            addr: target.addr.clone(),
            source,
        };
        let stream = TcpStream::connect(&target.addr)
            .await
            .map_err(connect_error)?;
        // Requests are small and latency is what we measure: do not let Nagle hold them back.
        stream.set_nodelay(true).map_err(connect_error)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // The connection future does the socket I/O; it ends when the server or we close it, and
        // the sender then reports itself closed, which is how callers learn to reconnect.
        tokio::spawn(async move {
            let _closed = connection.await;
        });
        Ok(Connection {
            sender,
            host: target.addr.clone(),
        })
    }

    /// Whether the server has closed this connection (callers then open a new one).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// POSTs a JSON body to `path` and returns the status and the whole response body.
    pub async fn post_json(
        &mut self,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.post_json_as(path, body, None).await
    }

    /// [`post_json`](Self::post_json) with an `Authorization` header when `authorization` is given
    /// (`Bearer <token>`): the pipeline benchmark acts as many signed-in users.
    pub async fn post_json_as(
        &mut self,
        path: &str,
        body: Bytes,
        authorization: Option<&str>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        self.send(request.body(Full::new(body))?).await
    }

    pub async fn get(&mut self, path: &str) -> Result<(StatusCode, Bytes), ClientError> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, &self.host)
            .body(Full::new(Bytes::new()))?;
        self.send(request).await
    }

    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Opens a connection and POSTs once: for one-off checks, not for load.
pub async fn post_once(url: &str, body: Bytes) -> Result<(StatusCode, Bytes), ClientError> {
    let target = Target::parse(url)?;
    Connection::open(&target)
        .await?
        .post_json(&target.path_and_query, body)
        .await
}

/// Polls `url` with GET until it answers 200 or `timeout` passes; returns whether it became ready.
pub async fn wait_ready(url: &str, timeout: Duration) -> Result<bool, ClientError> {
    let target = Target::parse(url)?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(mut connection) = Connection::open(&target).await
            && let Ok((StatusCode::OK, _)) = connection.get(&target.path_and_query).await
        {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_path_and_default_the_port() {
        let t = Target::parse("http://127.0.0.1:4000/graphql?x=1").unwrap();
        assert_eq!(t.addr, "127.0.0.1:4000");
        assert_eq!(t.path_and_query, "/graphql?x=1");
        let t = Target::parse("http://localhost").unwrap();
        assert_eq!(t.addr, "localhost:80");
        assert_eq!(t.path_and_query, "/");
    }

    #[test]
    fn only_plain_http_urls_are_accepted() {
        for url in [
            "https://example.com/graphql",
            "127.0.0.1:4000",
            "/graphql",
            "not a url",
        ] {
            assert!(
                matches!(Target::parse(url), Err(ClientError::UnsupportedUrl(_))),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn wait_ready_gives_up_after_the_timeout() {
        // Bind then drop: the port is very likely closed for the duration of the test.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ready = wait_ready(
            &format!("http://127.0.0.1:{port}/health"),
            Duration::from_millis(120),
        )
        .await
        .unwrap();
        assert!(!ready);
    }
}
