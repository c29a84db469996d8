//! Connection caps (total and per client IP) and header, body and idle timeouts of the HTTP servers.
//!
//! [`serve`] replaces `axum::serve` for the router and every subgraph: its own accept loop over
//! hyper-util's HTTP/1 + HTTP/2 connection builder, so that the server decides per connection
//! what `axum::serve` leaves open forever:
//!
//! - **caps**: at most [`ConnectionLimits::max_connections`] open connections, and at most
//!   [`ConnectionLimits::max_connections_per_ip`] from one peer address. A connection past a cap
//!   is answered `503` (best effort, one non-blocking write) and closed at accept, before any of
//!   its bytes are read, so refusing costs next to nothing while requests on open connections are
//!   served. [`cap_process_connections`] adds one total over every server of the process (for
//!   `shippy up`). Refusals are counted (`shippy_connections_refused_total{server, reason}`) and logged
//!   at most once per [`REFUSAL_LOG_INTERVAL`] with the number left out. A connection keeps its
//!   place until its socket closes, also after an upgrade to WebSocket.
//! - **header read**: a new connection, and a keep-alive connection once a client starts sending its
//!   next request, must deliver the request's headers within
//!   [`ConnectionLimits::header_read_timeout`]; slower ones (slowloris) are closed.
//! - **body read**: a request's body must arrive within [`ConnectionLimits::body_read_timeout`] of its
//!   headers; reading it past that fails with [`BodyError::Timeout`] (see [`is_body_timeout`], for
//!   answering `408`).
//! - **idle**: a keep-alive connection without a request in flight is closed (gracefully: HTTP/2
//!   gets `GOAWAY`) after [`ConnectionLimits::idle_timeout`]. A response still streaming (SSE)
//!   counts as in flight, and an upgraded connection (WebSocket) is no longer the HTTP server's, so
//!   neither is cut by it: they keep themselves alive with their own pings.
//!
//! Shutdown is graceful as with `axum::serve`: stop accepting, let every connection finish its
//! in-flight requests, then return (the caller bounds how long it waits). Each request carries
//! axum's `ConnectInfo<SocketAddr>` with the peer address, as `into_make_service_with_connect_info`
//! would give it.

#[cfg(feature = "testing")]
pub mod testing;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use shippy_telemetry::metrics::names::{
    CONNECTIONS_OPEN as OPEN_METRIC, CONNECTIONS_REFUSED as REFUSED_METRIC,
};
/// Refusals are logged at most this often, each line with the number left out since the last.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What a server refuses past its caps, and how long it waits for slow or idle clients. The same
/// keys and defaults for the router (`http.connections`) and every subgraph (`server.connections`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Most open connections (WebSocket ones included); more are refused at accept. Default
    /// 10,000: well under a file-descriptor limit of 20,000, which 20,000 idle connections
    /// exhausted before this cap existed.
    pub max_connections: usize,
    /// Most open connections from one client IP (the TCP peer: behind a proxy that is the proxy,
    /// so raise it, up to `max_connections` which turns it off). Default 1,024: far more than a
    /// browser or an office NAT opens, while one host cannot take the whole server.
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request's headers: from accept for the first request, from its
    /// first byte for the next ones on a keep-alive connection. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body, counted from its headers; past it reading the
    /// body fails (answered `408`). Default `30s`.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this long. Streaming
    /// responses and WebSocket connections are not idle. Default `120s`: longer than the router
    /// keeps an idle pooled connection to a subgraph (`subgraph_defaults.pool_idle_timeout`, 90 s),
    /// so that the router drops its end first and never reuses one a subgraph is closing.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 1_024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// A [`ConnectionLimits`] that cannot work, naming the key (relative to the section) to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// A cap of zero would refuse every connection.
    #[error("`{0}` must be at least 1")]
    ZeroCap(&'static str),
    /// A zero timeout would close every connection at once.
    #[error("`{0}` must be longer than zero")]
    ZeroTimeout(&'static str),
    /// The per-IP cap can never be reached past the total one.
    #[error(
        "`max_connections_per_ip` ({per_ip}) must not exceed `max_connections` ({total}); set it to `max_connections` to turn it off"
    )]
    PerIpAboveTotal {
        /// The configured per-IP cap.
        per_ip: usize,
        /// The configured total cap.
        total: usize,
    },
}

impl ConnectionLimits {
    /// Every problem with these limits, for the configuration check at start-up.
    pub fn check(&self) -> Vec<LimitsError> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
        ] {
            if value == 0 {
                problems.push(LimitsError::ZeroCap(name));
            }
        }
        for (name, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                problems.push(LimitsError::ZeroTimeout(name));
            }
        }
        if self.max_connections_per_ip > self.max_connections {
            problems.push(LimitsError::PerIpAboveTotal {
                per_ip: self.max_connections_per_ip,
                total: self.max_connections,
            });
        }
        problems
    }
}

/// The total shared by every server of this process, once [`cap_process_connections`] set it.
static PROCESS_TOTAL: OnceLock<Arc<Semaphore>> = OnceLock::new();

/// Caps the open connections of every server this process runs from now on, together, at `max`
/// (each server's own caps still apply). For `shippy up`, whose router and subgraphs share one
/// process and so one file-descriptor limit: per-server caps alone would add up past it. Only the
/// first call counts; it says whether it was this one.
pub fn cap_process_connections(max: usize) -> bool {
    PROCESS_TOTAL
        .set(Arc::new(Semaphore::new(
            max.clamp(1, Semaphore::MAX_PERMITS),
        )))
        .is_ok()
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are open.
    Total,
    /// The process-wide total of [`cap_process_connections`] is open.
    Process,
    /// `max_connections_per_ip` are open from this peer's address.
    PerIp,
}

impl Refusal {
    /// The `reason` label of [`REFUSED_METRIC`].
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Total => "total",
            Refusal::Process => "process",
            Refusal::PerIp => "per_ip",
        }
    }
}

/// Admits connections under the caps; one per server (shared by its accept loop and its
/// connections, whose [`Admission`]s give their place back when dropped).
pub struct ConnectionGate {
    server: String,
    per_ip_cap: usize,
    /// One permit per open connection; `try_acquire` at accept, so a full server never waits.
    total: Arc<Semaphore>,
    /// The process-wide total, when set before this gate was made; used like `total`.
    process: Option<Arc<Semaphore>>,
    /// Open connections per peer address; entries are removed when they reach zero, so the map
    /// holds at most `max_connections` entries. Never locked across an `.await`.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    refusals: RefusalLog,
}

impl ConnectionGate {
    /// A gate for `server` (the metrics label and log field) under `limits`' caps.
    pub fn new(server: impl Into<String>, limits: &ConnectionLimits) -> Arc<Self> {
        let total = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            server: server.into(),
            per_ip_cap: limits.max_connections_per_ip.max(1),
            total: Arc::new(Semaphore::new(total)),
            process: PROCESS_TOTAL.get().cloned(),
            per_ip: Mutex::new(HashMap::new()),
            refusals: RefusalLog::default(),
        })
    }

    /// A place for a connection from `ip`, or why there is none (counted and logged).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let result = self.try_admit(ip);
        if let Err(refusal) = result {
            metrics::counter!(REFUSED_METRIC, "server" => self.server.clone(), "reason" => refusal.label())
                .increment(1);
            self.refusals.record(&self.server, refusal);
        }
        result
    }

    fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let permit = Arc::clone(&self.total)
            .try_acquire_owned()
            .map_err(|_| Refusal::Total)?;
        let process_permit = match &self.process {
            Some(process) => Some(
                Arc::clone(process)
                    .try_acquire_owned()
                    .map_err(|_| Refusal::Process)?,
            ),
            None => None,
        };
        {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
            let open = per_ip.entry(ip).or_insert(0);
            if *open >= self.per_ip_cap {
                return Err(Refusal::PerIp);
            }
            *open += 1;
        }
        metrics::gauge!(OPEN_METRIC, "server" => self.server.clone()).increment(1.0);
        Ok(Admission {
            gate: Arc::clone(self),
            ip,
            _permit: permit,
            _process_permit: process_permit,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }
}

/// A connection's place under the caps, given back when dropped (when its socket closes).
pub struct Admission {
    gate: Arc<ConnectionGate>,
    ip: IpAddr,
    /// Held for the connection's life: its share of `max_connections`.
    _permit: OwnedSemaphorePermit,
    /// And of the process-wide total, when there is one.
    _process_permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut per_ip = self
            .gate
            .per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = per_ip.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                per_ip.remove(&self.ip);
            }
        }
        drop(per_ip);
        metrics::gauge!(OPEN_METRIC, "server" => self.gate.server.clone()).decrement(1.0);
    }
}

/// Logs refusals without letting a flood of them flood the log.
#[derive(Default)]
struct RefusalLog {
    /// When the last line was written; `None` before the first.
    last: Mutex<Option<Instant>>,
    /// Refusals since then that got no line of their own.
    unlogged: AtomicU64,
}

impl RefusalLog {
    fn record(&self, server: &str, refusal: Refusal) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_INTERVAL) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        drop(last);
        let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
        tracing::warn!(
            server,
            reason = refusal.label(),
            refused_since_last_report = unlogged,
            "connection refused at accept: the server is at its connection cap"
        );
    }
}

/// Why reading a request body failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client did not send the whole body within `body_read_timeout` of its headers.
    #[error("{BODY_TIMEOUT_MESSAGE} {0:?}")]
    Timeout(Duration),
    /// The connection failed while reading it.
    #[error(transparent)]
    Read(#[from] hyper::Error),
}

/// How the message of [`BodyError::Timeout`] begins (the duration follows).
pub const BODY_TIMEOUT_MESSAGE: &str = "the request body did not arrive within";

/// Whether `err`, or an error it wraps, is a [`BodyError::Timeout`]: for handlers that answer it
/// with `408 Request Timeout` rather than a generic bad request.
pub fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        // Extractors in between may turn the error into its message (async-graphql's does), so
        // the message counts as much as the type.
        if matches!(err.downcast_ref::<BodyError>(), Some(BodyError::Timeout(_)))
            || err.to_string().starts_with(BODY_TIMEOUT_MESSAGE)
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// A request body that must arrive before a deadline set when its headers did.
pub struct RequestBody {
    inner: Incoming,
    /// `None` for a body that was empty from the start (no timer needed) or has ended.
    deadline: Option<Pin<Box<Sleep>>>,
    timeout: Duration,
}

impl RequestBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        let deadline = (!inner.is_end_stream()).then(|| Box::pin(tokio::time::sleep(timeout)));
        Self {
            inner,
            deadline,
            timeout,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.deadline = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame.map_err(BodyError::Read))),
            Poll::Pending => {
                let passed = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if passed {
                    this.deadline = None;
                    Poll::Ready(Some(Err(BodyError::Timeout(this.timeout))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a connection's task watches to know whether the connection is busy, idle, or in the
/// middle of receiving a request's headers.
#[derive(Default)]
struct Activity {
    /// Requests whose response has not been fully sent (or dropped) yet.
    in_flight: AtomicUsize,
    /// Bytes arrived while no request was in flight: the next request's head has begun.
    head_started: AtomicBool,
    /// Bumped on every change above, so that the connection's task sees each one even when
    /// several arrive between two of its wake-ups (a whole request can).
    changes: AtomicU64,
    /// Wakes the connection's task when either changes in a way that moves its deadline.
    changed: Notify,
}

impl Activity {
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.head_started.swap(true, Ordering::AcqRel)
        {
            self.changes.fetch_add(1, Ordering::AcqRel);
            self.changed.notify_one();
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(false, Ordering::Release);
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
        InFlight(Arc::clone(self))
    }
}

/// One request in flight; dropped with its response body (sent, or abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changes.fetch_add(1, Ordering::AcqRel);
            self.0.changed.notify_one();
        }
    }
}

/// A response body that keeps its request counted as in flight until it is done.
pub struct ResponseBody {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The accepted socket, noting reads for [`Activity`] and holding the connection's place under the
/// caps for as long as it lives (through an upgrade too, since hyper hands it to the WebSocket).
struct TrackedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
    _admission: Admission,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.on_read();
        }
        result
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// What a refused client reads before the close, when its socket takes it without waiting.
const REFUSED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 32\r\nconnection: close\r\n\r\ntoo many connections, try later\n";

/// Serves `app` on `listener` under `limits` until `shutdown` completes, then stops accepting,
/// lets every open connection finish its in-flight requests and returns. `server` names it in
/// metrics and logs. Upgraded connections (WebSockets) are not waited for: they close on their own
/// shutdown signal.
pub async fn serve(
    server: impl Into<String>,
    listener: TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let server = server.into();
    let gate = ConnectionGate::new(server.clone(), &limits);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Our own deadlines replace hyper's header timeout, which would also count the idle time
    // between keep-alive requests.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    // Each connection holds a receiver: `true` asks it to finish; all dropped means all finished.
    let (drain_tx, drain_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&server, &err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        send_without_delay(&stream, &server, peer);
        let admission = match gate.admit(peer.ip()) {
            Ok(admission) => admission,
            Err(_) => {
                // Best effort and without waiting: the socket's buffer takes it or the client
                // sees the close alone.
                let _ = stream.try_write(REFUSED_RESPONSE);
                continue;
            }
        };
        let connection = Connection {
            peer,
            app: app.clone(),
            limits: limits.clone(),
            builder: Arc::clone(&builder),
            drain: drain_rx.clone(),
        };
        tokio::spawn(connection.run(stream, admission));
    }
    drop(listener);
    drop(drain_rx);
    let _ = drain_tx.send(true);
    drain_tx.closed().await;
    Ok(())
}

/// Turns off Nagle's algorithm on an accepted socket. With it on, a response's or a stream's
/// next small write (an SSE event, a WebSocket frame, a body chunk) waits until the client has
/// acknowledged the previous one, and clients delay acknowledgements by up to 40 ms.
fn send_without_delay(stream: &TcpStream, server: &str, peer: SocketAddr) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(server, %peer, error = %err, "could not turn off Nagle's algorithm");
    }
}

/// Errors of `accept` that concern one connection are skipped; others (out of file descriptors)
/// are logged and waited out briefly, so that the loop does not spin on them.
async fn accept_failed(server: &str, err: &io::Error) {
    use io::ErrorKind::*;
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    ) {
        return;
    }
    tracing::error!(server, error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Where a connection's timers stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request is in flight: no connection timer (the body timer is the request's own).
    Busy,
    /// Waiting for the headers of a request (a new connection, or bytes after an idle spell).
    ReadingHead,
    /// Keep-alive, nothing in flight and nothing received.
    Idle,
}

struct Connection {
    peer: SocketAddr,
    app: axum::Router,
    limits: ConnectionLimits,
    builder: Arc<auto::Builder<TokioExecutor>>,
    /// `true` once the server shuts down.
    drain: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, admission: Admission) {
        let activity = Arc::new(Activity::default());
        let io = TokioIo::new(TrackedStream {
            inner: stream,
            activity: Arc::clone(&activity),
            _admission: admission,
        });
        let service = {
            let activity = Arc::clone(&activity);
            let app = self.app.clone();
            let peer = self.peer;
            let body_timeout = self.limits.body_read_timeout;
            hyper::service::service_fn(move |request: http::Request<Incoming>| {
                let in_flight = activity.begin();
                let mut request = request.map(|body| RequestBody::new(body, body_timeout));
                request.extensions_mut().insert(ConnectInfo(peer));
                let response = app.clone().oneshot(request);
                async move {
                    let response = response.await?;
                    Ok::<_, Infallible>(response.map(|inner| ResponseBody {
                        inner,
                        _in_flight: in_flight,
                    }))
                }
            })
        };
        let connection = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(connection);
        // A new connection owes its first request's headers from now.
        let mut phase = Phase::ReadingHead;
        let mut since = Instant::now();
        let mut seen = 0;
        let mut draining = false;
        loop {
            let deadline = match phase {
                Phase::Busy => None,
                Phase::ReadingHead => Some(since + self.limits.header_read_timeout),
                Phase::Idle if draining => None,
                Phase::Idle => Some(since + self.limits.idle_timeout),
            };
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(peer = %self.peer, error = %err, "connection ended with an error");
                    }
                    return;
                }
                changed = self.drain.changed(), if !draining => {
                    // An error means the server is gone: finish as for a shutdown.
                    if changed.is_err() || *self.drain.borrow() {
                        draining = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
                () = activity.changed.notified() => {}
                () = sleep_until(deadline) => match phase {
                    Phase::ReadingHead => {
                        tracing::debug!(peer = %self.peer, "closing a connection: request headers not received in time");
                        return;
                    }
                    Phase::Idle => {
                        tracing::debug!(peer = %self.peer, "closing an idle keep-alive connection");
                        draining = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    Phase::Busy => {}
                },
            }
            let changes = activity.changes.load(Ordering::Acquire);
            if changes != seen {
                // Whatever happened in between, the current phase began just now.
                seen = changes;
                since = Instant::now();
                phase = if activity.in_flight.load(Ordering::Acquire) > 0 {
                    Phase::Busy
                } else if activity.head_started.load(Ordering::Acquire) {
                    Phase::ReadingHead
                } else {
                    Phase::Idle
                };
            }
        }
    }
}

/// Completes at `deadline`; never without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_send_without_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        assert!(!stream.nodelay().unwrap(), "sockets start with Nagle on");
        send_without_delay(&stream, "test", peer);
        assert!(stream.nodelay().unwrap());
    }
}
