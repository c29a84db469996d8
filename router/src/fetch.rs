//! Documents the router fetches over HTTP(S) while it serves (JSON Web Key Sets, the persisted
//! document manifest): one GET with a deadline, a size cap, an optional auth header, and
//! `ETag` / `If-None-Match` so an unchanged document costs the server a 304 and us nothing.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, ETAG, IF_NONE_MATCH};
use http::{HeaderName, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Why a remote document cannot be used at all (a configuration mistake, found at start-up).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Not a URL.
    #[error("`{url}` is not a valid URL: {source}")]
    Url {
        /// The URL given.
        url: String,
        /// What the parser said.
        source: http::uri::InvalidUri,
    },
    /// The TLS connector could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why one fetch failed (logged by the caller, which keeps what it had).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("fetching {url} failed: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
}

/// What a fetch brought.
#[derive(Debug, PartialEq)]
pub(crate) enum Fetched {
    /// A new or changed document.
    Changed(Bytes),
    /// The server said 304: the document is the one fetched last time.
    NotModified,
}

/// A document behind a URL.
pub(crate) struct RemoteDocument {
    url: String,
    uri: Uri,
    timeout: Duration,
    max_size: usize,
    auth: Option<(HeaderName, HeaderValue)>,
    /// The `Accept` header sent (JSON unless [`with_accept`](Self::with_accept) says otherwise).
    accept: HeaderValue,
    client: HttpClient,
    /// The `ETag` of the last document received, sent back as `If-None-Match`.
    etag: std::sync::Mutex<Option<HeaderValue>>,
}

impl RemoteDocument {
    /// `timeout` bounds the connection and the whole exchange; bodies over `max_size` bytes are
    /// refused.
    pub(crate) fn new(
        url: &str,
        timeout: Duration,
        max_size: usize,
    ) -> Result<RemoteDocument, SourceError> {
        let uri: Uri = url.parse().map_err(|source| SourceError::Url {
            url: url.to_string(),
            source,
        })?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeout));
        let connector = crate::tls::https_connector(http)?;
        Ok(RemoteDocument {
            url: url.to_string(),
            uri,
            timeout,
            max_size,
            auth: None,
            accept: HeaderValue::from_static("application/json"),
            client: Client::builder(TokioExecutor::new()).build(connector),
            etag: std::sync::Mutex::new(None),
        })
    }

    /// Sends `name: value` with every fetch (a registry or CDN token).
    pub(crate) fn with_auth_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.auth = Some((name, value));
        self
    }

    /// Asks for `accept` instead of JSON (a supergraph is GraphQL SDL).
    pub(crate) fn with_accept(mut self, accept: &'static str) -> Self {
        self.accept = HeaderValue::from_static(accept);
        self
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Fetches the document, or learns that it has not changed since the last fetch.
    pub(crate) async fn fetch(&self) -> Result<Fetched, FetchError> {
        match tokio::time::timeout(self.timeout, self.get()).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout {
                url: self.url.clone(),
                timeout: self.timeout,
            }),
        }
    }

    async fn get(&self) -> Result<Fetched, FetchError> {
        let fetch_error = |reason: String| FetchError::Fetch {
            url: self.url.clone(),
            reason,
        };
        let mut request = Request::get(self.uri.clone()).header(ACCEPT, self.accept.clone());
        if let Some((name, value)) = &self.auth {
            request = request.header(name, value);
        }
        let etag = self.etag.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| fetch_error(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| fetch_error(e.to_string()))?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !response.status().is_success() {
            return Err(FetchError::Status {
                url: self.url.clone(),
                status: response.status().as_u16(),
            });
        }
        let etag = response.headers().get(ETAG).cloned();
        let body = Limited::new(response.into_body(), self.max_size)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| fetch_error(e.to_string()))?;
        // Remembered only once the body arrived whole: a cut transfer must be fetched again.
        *self.etag.lock().unwrap_or_else(|p| p.into_inner()) = etag;
        Ok(Fetched::Changed(body))
    }
}
