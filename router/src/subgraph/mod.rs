//! HTTP client for subgraphs: pooled keep-alive connections, a concurrency limit and a timeout per
//! subgraph, outbound deduplication of identical in-flight queries, and the resilience of
//! `resilience`: a circuit breaker, several replicas with load balancing and health
//! checks, and retries of queries within a budget.
//!
//! One [`SubgraphClient`] per subgraph, built at start-up and shared by all requests. A request
//! is only ever a POST of a JSON body the executor already serialized; the response body is
//! returned as bytes for the executor to parse once.
//!
//! A fetch goes: dedupe (queries) → breaker admission → attempt on a replica (timeout) → on a
//! connection error or 502/503/504, for queries only and while the budget allows, back off and
//! try again (another replica first) → the final outcome is reported to the breaker.

pub(crate) mod headers;
pub(crate) mod resilience;
pub(crate) mod single_flight;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use shippy_security::signing::RequestSigner;
use tokio::sync::Semaphore;
use xxhash_rust::xxh3::Xxh3;

use self::single_flight::SingleFlight;
use crate::config::{
    EffectiveSubgraphConfig, HealthCheckConfig, MIN_READ_BUFFER, SubgraphDefaults,
};
use crate::subgraph::resilience::balancer::Balancer;
use crate::subgraph::resilience::breaker::{CircuitBreaker, Rejected};
use crate::subgraph::resilience::retry::{RetryPolicy, retryable_status};

/// Why a subgraph call produced no HTTP response. Cloneable so deduplicated waiters share it.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("subgraph did not answer within {0:?}")]
    Timeout(Duration),
    #[error("subgraph request failed: {0}")]
    Transport(Arc<str>),
    #[error("subgraph response exceeds {0} bytes")]
    TooLarge(usize),
    #[error("the subgraph's circuit breaker is open")]
    CircuitOpen,
    #[error("too many requests in flight to the subgraph")]
    ConcurrencyExceeded,
}

/// A subgraph's HTTP answer (any status; the executor decides what a non-2xx body means).
#[derive(Debug, Clone)]
pub(crate) struct SubgraphResponse {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    /// For the `headers` response rules and `Cache-Control` merging.
    pub(crate) headers: HeaderMap,
}

pub(crate) type FetchResult = Result<SubgraphResponse, FetchError>;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The HTTP clients of a router's subgraph clients, one per connection setting (connect timeout):
/// subgraphs at one address (one server or gateway for several subgraphs) share a connection
/// pool, since hyper keys pooled connections by scheme and authority. With a pool each, every
/// subgraph kept its own connections to the same server: 2.5-3x the connections (each with its
/// buffers) on the benchmark, where four subgraphs share one server.
///
/// The pool itself has no idle cap: connections to a host are bounded by the subgraphs'
/// `max_connections` permits, and idle ones close after `pool_idle_timeout`.
#[derive(Default)]
pub(crate) struct ConnectionPools {
    clients: Vec<(Duration, HttpClient)>,
}

impl ConnectionPools {
    /// Pools of `clients`, so that new clients share connections with the ones kept.
    pub(crate) fn of(clients: &[Arc<SubgraphClient>]) -> ConnectionPools {
        let mut pools = ConnectionPools::default();
        for client in clients {
            if !pools
                .clients
                .iter()
                .any(|(t, _)| *t == client.connect_timeout)
            {
                pools
                    .clients
                    .push((client.connect_timeout, client.client.clone()));
            }
        }
        pools
    }

    /// The client for subgraphs connecting within `connect_timeout`, made on first use.
    fn client(
        &mut self,
        connect_timeout: Duration,
        defaults: &SubgraphDefaults,
    ) -> Result<HttpClient, UrlError> {
        if let Some((_, client)) = self.clients.iter().find(|(t, _)| *t == connect_timeout) {
            return Ok(client.clone());
        }
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let connector = crate::tls::https_connector(http).map_err(UrlError::Tls)?;
        let mut builder = Client::builder(TokioExecutor::new());
        // hyper panics below its minimum; `RouterConfig::check` refuses smaller values first.
        builder.http1_max_buf_size(defaults.max_read_buffer.max(MIN_READ_BUFFER));
        let client = builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(defaults.pool_idle_timeout)
            .build(connector);
        self.clients.push((connect_timeout, client.clone()));
        Ok(client)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.clients.len()
    }
}

pub(crate) struct SubgraphClient {
    pub(crate) name: String,
    /// The URLs it was built for: a new supergraph that keeps them keeps this client.
    pub(crate) urls: Vec<String>,
    /// Whether requests carry the caller's verified claims in `extensions.claims`.
    pub(crate) forward_claims: bool,
    /// Signs every request for this subgraph (`subgraph_signing.key`); none: requests go unsigned.
    signer: Option<Arc<RequestSigner>>,
    /// The subgraph's URLs and their health.
    replicas: Balancer,
    breaker: Option<CircuitBreaker>,
    retry: Option<RetryPolicy>,
    health_check: HealthCheckConfig,
    /// Shared with the subgraphs of the same `ConnectionPools` and connect timeout.
    client: HttpClient,
    connect_timeout: Duration,
    /// Bounds concurrent requests to this subgraph (and so its HTTP/1.1 connections); a request
    /// holds a permit for its whole exchange and waits for one within its timeout.
    permits: Semaphore,
    timeout: Duration,
    dedupe: bool,
    max_response_size: usize,
    /// In-flight deduplicable requests by hash of (body, forwarded headers). The first caller
    /// initializes the cell; identical callers await it. The entry is removed once answered, so
    /// only truly concurrent requests share a response. If the first caller is cancelled, the
    /// cell stays empty and the next waiter performs the call.
    in_flight: SingleFlight<FetchResult>,
}

/// Why a subgraph URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// No URL at all.
    #[error("no URL")]
    Missing,
    /// An empty URL.
    #[error("it is empty")]
    Empty,
    /// Not a URL.
    #[error("`{url}` is not a valid URL: {source}")]
    Invalid {
        /// The URL given.
        url: String,
        /// What the parser said.
        source: http::uri::InvalidUri,
    },
    /// Not http:// or https://.
    #[error("`{0}` must be an http:// or https:// URL")]
    Scheme(String),
    /// No host.
    #[error("`{0}` has no host")]
    NoHost(String),
    /// The TLS connector could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(rustls::Error),
}

fn parse_url(url: &str) -> Result<Uri, UrlError> {
    let uri: Uri = url.parse().map_err(|source| UrlError::Invalid {
        url: url.to_string(),
        source,
    })?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(UrlError::Scheme(url.to_string())),
    }
    if uri.host().is_none() {
        return Err(UrlError::NoHost(url.to_string()));
    }
    Ok(uri)
}

impl SubgraphClient {
    /// A client for the replicas at `urls` (at least one), signing its requests with `signer`,
    /// its connections from `pools`.
    pub(crate) fn new(
        name: &str,
        urls: &[String],
        settings: &EffectiveSubgraphConfig,
        defaults: &SubgraphDefaults,
        signer: Option<Arc<RequestSigner>>,
        pools: &mut ConnectionPools,
    ) -> Result<SubgraphClient, UrlError> {
        if urls.is_empty() {
            return Err(UrlError::Missing);
        }
        let uris = urls
            .iter()
            .map(|url| parse_url(url))
            .collect::<Result<Vec<_>, _>>()?;
        let health_checked = uris.len() > 1 && settings.health_check.enabled;
        let client = pools.client(settings.timeout, defaults)?;
        Ok(SubgraphClient {
            name: name.to_string(),
            urls: urls.to_vec(),
            forward_claims: settings.forward_claims,
            signer,
            replicas: Balancer::new(
                name,
                uris,
                settings.load_balancing,
                health_checked,
                settings.health_check.unhealthy_threshold,
                settings.health_check.healthy_threshold,
            ),
            breaker: settings
                .circuit_breaker
                .enabled
                .then(|| CircuitBreaker::new(name, settings.circuit_breaker.clone())),
            retry: settings
                .retry
                .enabled
                .then(|| RetryPolicy::new(settings.retry.clone())),
            health_check: settings.health_check.clone(),
            client,
            connect_timeout: settings.timeout,
            permits: Semaphore::new(settings.max_connections),
            timeout: settings.timeout,
            dedupe: settings.dedupe,
            max_response_size: defaults.max_response_size,
            in_flight: SingleFlight::default(),
        })
    }

    pub(crate) fn replicas(&self) -> &Balancer {
        &self.replicas
    }

    pub(crate) fn breaker(&self) -> Option<&CircuitBreaker> {
        self.breaker.as_ref()
    }

    /// Adds this router's signature for this subgraph to a request about to be sent (replacing one
    /// a client may have sent along); does nothing when no signing key is configured. The WebSocket
    /// upgrade of a subscription is signed through here too (`GET`, empty body).
    pub(crate) fn sign(&self, headers: &mut HeaderMap, method: &Method, uri: &Uri, body: &[u8]) {
        if let Some(signer) = &self.signer {
            signer.sign_headers(headers, &self.name, method, uri, body);
        }
    }

    /// Sends `body` (a JSON GraphQL request). `is_query` is false for mutations, which must reach
    /// the subgraph once per client request: they are neither deduplicated nor retried.
    pub(crate) async fn fetch(
        &self,
        body: Bytes,
        headers: &HeaderMap,
        is_query: bool,
    ) -> FetchResult {
        if !(self.dedupe && is_query) {
            return self.send(body, headers, is_query).await;
        }
        let key = dedupe_key(&body, headers);
        let flight = self
            .in_flight
            .run(key, || self.send(body, headers, true))
            .await;
        if flight.shared {
            metrics::counter!("shippy_router_subgraph_deduplicated_total", "subgraph" => self.name.clone()).increment(1);
        }
        flight.value
    }

    /// Breaker, attempts and retries for one fetch.
    async fn send(&self, body: Bytes, headers: &HeaderMap, is_query: bool) -> FetchResult {
        let permit = match self.breaker.as_ref().map(CircuitBreaker::admit) {
            None => None,
            Some(Ok(permit)) => Some(permit),
            Some(Err(Rejected::Open)) => return Err(FetchError::CircuitOpen),
            Some(Err(Rejected::Concurrency)) => return Err(FetchError::ConcurrencyExceeded),
        };
        let retry = self.retry.as_ref().filter(|_| is_query);
        if let Some(retry) = retry {
            retry.record_request();
        }
        let mut tried: Vec<usize> = Vec::new();
        let result = loop {
            let replica = self.replicas.pick(&tried);
            tried.push(replica);
            let result = self.attempt(replica, body.clone(), headers).await;
            let retryable = match &result {
                Err(FetchError::Transport(_)) => true,
                Ok(response) => retryable_status(response.status),
                Err(_) => false,
            };
            let Some(retry) = retry else { break result };
            let attempts = tried.len() as u32;
            if !retryable || attempts >= retry.max_attempts() || !retry.try_retry() {
                break result;
            }
            let wait = retry.backoff(attempts);
            tracing::debug!(subgraph = %self.name, attempt = attempts, ?wait, "retrying subgraph query");
            metrics::counter!("shippy_router_subgraph_retries_total", "subgraph" => self.name.clone())
                .increment(1);
            tokio::time::sleep(wait).await;
        };
        if let Some(permit) = permit {
            let success = match &result {
                Ok(response) => !response.status.is_server_error(),
                Err(_) => false,
            };
            permit.finish(success);
        }
        result
    }

    /// One attempt on one replica, within the subgraph's timeout.
    async fn attempt(&self, replica: usize, body: Bytes, headers: &HeaderMap) -> FetchResult {
        let _outstanding = self.replicas.begin(replica);
        let uri = &self.replicas.replicas()[replica].uri;
        let result =
            match tokio::time::timeout(self.timeout, self.send_inner(uri, body, headers)).await {
                Ok(result) => result,
                Err(_) => Err(FetchError::Timeout(self.timeout)),
            };
        self.replicas
            .report_request(replica, !matches!(result, Err(FetchError::Transport(_))));
        result
    }

    /// Checks every replica once (`POST { __typename }`), reporting to the balancer.
    pub(crate) async fn check_health(&self) {
        let checks = (0..self.replicas.replicas().len()).map(|replica| async move {
            let uri = &self.replicas.replicas()[replica].uri;
            let body =
                Bytes::from_static(br#"{"query":"query __ShippyHealthCheck { __typename }"}"#);
            let healthy = matches!(
                tokio::time::timeout(
                    self.health_check.timeout,
                    self.send_inner(uri, body, &HeaderMap::new())
                )
                .await,
                Ok(Ok(response)) if response.status.is_success()
            );
            self.replicas.report_check(replica, healthy);
        });
        futures::future::join_all(checks).await;
    }

    pub(crate) fn health_check_enabled(&self) -> bool {
        self.health_check.enabled
    }

    /// Runs health checks every `health_check.interval`, when this subgraph has several replicas
    /// and checks are enabled; returns at once otherwise.
    pub(crate) async fn run_health_checks(&self) {
        if self.replicas.replicas().len() < 2 || !self.health_check.enabled {
            return;
        }
        let mut ticker = tokio::time::interval(self.health_check.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.check_health().await;
        }
    }

    async fn send_inner(&self, uri: &Uri, body: Bytes, headers: &HeaderMap) -> FetchResult {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| FetchError::Transport(e.to_string().into()))?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .body(Full::new(body.clone()))
            .map_err(|e| FetchError::Transport(e.to_string().into()))?;
        let request_headers = request.headers_mut();
        request_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request_headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/graphql-response+json, application/json;q=0.9"),
        );
        for (name, value) in headers {
            request_headers.append(name.clone(), value.clone());
        }
        // Signed per attempt, so a retry carries a fresh timestamp.
        self.sign(request_headers, &Method::POST, uri, &body);
        // Our fetch span's position replaces a `traceparent` forwarded from the client, so the
        // subgraph's spans hang under this fetch (the client's trace is still the parent of ours).
        shippy_telemetry::propagation::inject_current(request_headers);
        let response = self.client.request(request).await.map_err(|e| {
            let reason = error_chain(&e);
            tracing::warn!(subgraph = %self.name, error = %reason, "subgraph request failed");
            FetchError::Transport(reason.into())
        })?;
        let status = response.status();
        let (parts, body) = response.into_parts();
        let body = read_body(body, &parts.headers, self.max_response_size).await?;
        Ok(SubgraphResponse {
            status,
            body,
            headers: parts.headers,
        })
    }
}

/// The most a response body's buffer reserves up front from its `Content-Length` (1 MiB).
const PREALLOCATE_AT_MOST: usize = 1 << 20;

/// Reads a subgraph response body into one buffer of exactly its size, at most `limit` bytes.
///
/// The frames hyper yields are slices of its connection read buffer, which it sizes adaptively (tens
/// of KiB for these responses): keeping a frame keeps the whole buffer, and the parsed response
/// borrows the body until the client's response is written. Copying each frame into a buffer
/// sized from `Content-Length` and dropping it at once lets hyper reuse its read buffer for the next
/// response on the connection, so an in-flight request holds what its subgraphs sent, not their
/// connections' buffers (bench/README.md, "Where the peak RSS goes"). The copy is one `memcpy` of
/// the body.
async fn read_body(
    mut body: hyper::body::Incoming,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, FetchError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(FetchError::TooLarge(limit));
    }
    // The declared length is the subgraph's word: reserve at most `PREALLOCATE_AT_MOST` on it,
    // so responses that announce much and send little cannot make the router reserve up to
    // `limit` each; a larger body grows the buffer as it actually arrives.
    let mut buffer = Vec::with_capacity(declared.unwrap_or(0).min(PREALLOCATE_AT_MOST));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::Transport(e.to_string().into()))?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(FetchError::TooLarge(limit));
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buffer))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn dedupe_key(body: &[u8], headers: &HeaderMap) -> u128 {
    let mut hasher = Xxh3::new();
    hasher.update(body);
    for (name, value) in headers {
        hasher.update(&[0]);
        hasher.update(name.as_str().as_bytes());
        hasher.update(&[1]);
        hasher.update(value.as_bytes());
    }
    hasher.digest128()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouterConfig;

    fn client(
        name: &str,
        url: &str,
        config: &RouterConfig,
        pools: &mut ConnectionPools,
    ) -> Arc<SubgraphClient> {
        let settings = config.subgraph(name);
        let client = SubgraphClient::new(
            name,
            &[url.to_string()],
            &settings,
            &config.subgraph_defaults,
            None,
            pools,
        );
        Arc::new(client.expect("a valid subgraph client"))
    }

    #[test]
    fn subgraphs_with_one_connect_timeout_share_a_pool() {
        let mut config = RouterConfig::default();
        config.subgraphs.insert(
            "slow".into(),
            crate::config::SubgraphOverride {
                timeout: Some(Duration::from_secs(60)),
                ..Default::default()
            },
        );
        let mut pools = ConnectionPools::default();
        let kept = vec![
            client("a", "http://127.0.0.1:1/a", &config, &mut pools),
            client("b", "http://127.0.0.1:1/b", &config, &mut pools),
        ];
        assert_eq!(pools.len(), 1, "same connect timeout: one pool");
        client("slow", "http://127.0.0.1:1/slow", &config, &mut pools);
        assert_eq!(pools.len(), 2, "another connect timeout: its own pool");

        // A supergraph swap starts from the kept clients' pools instead of new ones.
        let mut after_swap = ConnectionPools::of(&kept);
        assert_eq!(after_swap.len(), 1);
        client("c", "http://127.0.0.1:1/c", &config, &mut after_swap);
        assert_eq!(after_swap.len(), 1);
    }

    /// A one-shot HTTP server: answers the first request on its port with `response`, verbatim.
    async fn answer_once(response: Vec<u8>) -> Uri {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            // Read the request head and its body before answering, as a server would.
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = socket.read(&mut chunk).await.unwrap();
                request.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
                assert!(n > 0, "the client closed before sending its request");
            }
            socket.write_all(&response).await.unwrap();
            socket.shutdown().await.ok();
        });
        format!("http://127.0.0.1:{port}/graphql").parse().unwrap()
    }

    async fn fetch_from(response: Vec<u8>, max_response_size: usize) -> FetchResult {
        fetch_with(
            response,
            max_response_size,
            RouterConfig::default().subgraph_defaults.max_read_buffer,
        )
        .await
    }

    async fn fetch_with(
        response: Vec<u8>,
        max_response_size: usize,
        max_read_buffer: usize,
    ) -> FetchResult {
        let uri = answer_once(response).await;
        let mut config = RouterConfig::default();
        config.subgraph_defaults.max_response_size = max_response_size;
        config.subgraph_defaults.max_read_buffer = max_read_buffer;
        let subgraph = client(
            "s",
            &uri.to_string(),
            &config,
            &mut ConnectionPools::default(),
        );
        subgraph
            .send_inner(&uri, Bytes::from_static(b"{}"), &HeaderMap::new())
            .await
    }

    fn response(extra_headers: &str, body: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_headers}\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn a_body_larger_than_the_read_buffer_arrives_whole_in_one_exact_buffer() {
        // 100 KB against the default 16 KiB read buffer: read in pieces, copied into one buffer.
        let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let answer = fetch_from(response("", &body), 1 << 20).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body.len(), body.len());
        assert!(answer.body == body, "the body arrived altered");
    }

    #[tokio::test]
    async fn a_body_larger_than_the_up_front_reservation_arrives_whole() {
        let body: Vec<u8> = (0..PREALLOCATE_AT_MOST + 300_000)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        let answer = fetch_from(response("", &body), 4 << 20).await.unwrap();
        assert!(answer.body == body, "the body arrived altered");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let body = vec![b' '; 2_000];
        let err = fetch_from(response("", &body), 1_000).await.unwrap_err();
        assert!(matches!(err, FetchError::TooLarge(1_000)), "{err:?}");
    }

    #[tokio::test]
    async fn a_chunked_body_is_refused_once_it_grows_over_the_limit() {
        let mut raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..3 {
            raw.extend_from_slice(b"200\r\n");
            raw.extend_from_slice(&[b' '; 0x200]);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        let err = fetch_from(raw.clone(), 1_000).await.unwrap_err();
        assert!(matches!(err, FetchError::TooLarge(1_000)), "{err:?}");
        // Under the limit the same body is accepted, so it was the size that was refused.
        let answer = fetch_from(raw, 4_096).await.unwrap();
        assert_eq!(answer.body.len(), 3 * 0x200);
    }

    #[tokio::test]
    async fn response_headers_larger_than_the_read_buffer_fail_the_fetch() {
        // `max_read_buffer` (16 KiB by default) bounds the head of a response too.
        let huge = format!("x-padding: {}\r\n", "p".repeat(20 * 1024));
        let err = fetch_from(response(&huge, b"{}"), 1 << 20)
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Transport(_)), "{err:?}");
    }
}
