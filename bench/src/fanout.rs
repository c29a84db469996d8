//! The subscription fan-out benchmark: N WebSocket subscribers (graphql-transport-ws) through a
//! router, all on one subscription whose events a subgraph emits; each event is completed with an
//! entity fetch to a second subgraph, as in a federated subscription.
//!
//! The event source and the subscribers run in this process and share one clock: each event
//! carries the time it was emitted (`sentAtMs`, milliseconds since the run began), so a
//! subscriber's delivery latency is its receive time minus that. The router runs in its own
//! process (or in this one, for tests), so its resident memory can be read before the
//! subscribers connect and once they all receive events: the difference per subscriber is what a
//! subscription costs it.
//!
//! Both processes' CPU time (`/proc/<pid>/stat`) is read around the measured events, so a latency
//! figure comes with where the time went: the router's fan-out, or the subscribers' own receiving
//! and parsing, which share the machine with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::State;
use axum::extract::ws::{Message as AxMessage, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, broadcast};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::procfs;

/// What every subscriber runs.
pub const SUBSCRIPTION: &str = "subscription { tick { seq sentAtMs label } }";

/// The fan-out's parameters.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    /// The router's GraphQL endpoint as a `ws://` URL.
    pub url: String,
    pub subscribers: usize,
    /// Measured events.
    pub events: usize,
    /// Time between measured events.
    pub interval: Duration,
    /// Subscribers connecting at once.
    pub connect_concurrency: usize,
    /// The whole run (connecting included) fails after this long.
    pub timeout: Duration,
    /// The router process, to read its resident memory and CPU time (`None`: not measured).
    pub router_pid: Option<u32>,
    /// Clock ticks per second of /proc CPU times (`getconf CLK_TCK`).
    pub clk_tck: u64,
    /// Each subscriber's WebSocket read buffer, in bytes ([`CLIENT_READ_BUFFER_SIZE`]).
    pub client_read_buffer: usize,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub subscribers: usize,
    pub events: usize,
    /// Events received by all subscribers together (`subscribers * events` when none was lost).
    pub delivered: u64,
    /// Events that arrived out of order or not at all.
    pub lost_or_reordered: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// Time to connect and subscribe everyone.
    pub connect_seconds: f64,
    /// Upstream subscriptions the source saw (identical subscriptions share one).
    pub upstream_subscriptions: usize,
    pub router_rss_before_mib: Option<f64>,
    pub router_rss_after_mib: Option<f64>,
    pub router_rss_per_subscriber_kib: Option<f64>,
    /// Wall time from the first measured event until every subscriber had the last one.
    pub measured_seconds: f64,
    /// CPU time (user + system) of this process over `measured_seconds`: the subscribers
    /// receiving and parsing (and the event source, one event and one entity fetch per event).
    /// With the router in-process (tests) it includes the router.
    pub subscriber_cpu_seconds: f64,
    /// The same for the router process (`None` without `router_pid`).
    pub router_cpu_seconds: Option<f64>,
    /// `subscriber_cpu_seconds` per delivered event, in microseconds.
    pub subscriber_cpu_us_per_delivery: f64,
    /// `router_cpu_seconds` per delivered event, in microseconds.
    pub router_cpu_us_per_delivery: Option<f64>,
    /// Each measured event's latencies across the subscribers, in order: whether a tail is
    /// every event's last subscribers or a few slow events.
    pub by_event: Vec<EventLatency>,
}

/// One measured event's delivery latencies across the subscribers.
#[derive(Debug, Clone, Serialize)]
pub struct EventLatency {
    /// When it was emitted, in seconds after the first subscriber started connecting.
    pub at_s: f64,
    pub delivered: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The event source: a graphql-transport-ws subgraph (`/events`) and the HTTP subgraph that
/// resolves `Tick.label` (`/labels`).
pub struct Source {
    feed: broadcast::Sender<Value>,
    subscriptions: AtomicUsize,
    epoch: Instant,
}

impl Source {
    pub fn new() -> Arc<Source> {
        Arc::new(Source {
            feed: broadcast::channel(1024).0,
            subscriptions: AtomicUsize::new(0),
            epoch: Instant::now(),
        })
    }

    /// Milliseconds since the source was created: the clock of `sentAtMs`.
    pub fn now_ms(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64() * 1000.0
    }

    /// Emits event `seq` to every upstream subscription.
    pub fn emit(&self, seq: i64) {
        let payload = json!({"data": {"tick": {"__typename": "Tick", "id": seq.to_string(),
            "seq": seq, "sentAtMs": self.now_ms()}}});
        let _ = self.feed.send(payload);
    }

    /// Upstream subscriptions opened so far.
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::SeqCst)
    }

    /// The subgraphs' HTTP application.
    pub fn app(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/events", axum::routing::get(events))
            .route("/labels", axum::routing::post(labels))
            .with_state(Arc::clone(self))
    }
}

async fn events(State(source): State<Arc<Source>>, ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.protocols(["graphql-transport-ws"])
        .on_upgrade(move |socket| serve_events(source, socket))
}

async fn serve_events(source: Arc<Source>, mut socket: WebSocket) {
    let mut feed = source.feed.subscribe();
    let mut id: Option<String> = None;
    loop {
        tokio::select! {
            message = socket.recv() => {
                let text = match message {
                    Some(Ok(AxMessage::Text(text))) => text,
                    // axum answers the router's keep-alive pings itself.
                    Some(Ok(AxMessage::Ping(_) | AxMessage::Pong(_))) => continue,
                    _ => return,
                };
                let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else { return };
                let reply = match message["type"].as_str() {
                    Some("connection_init") => json!({"type": "connection_ack"}),
                    Some("ping") => json!({"type": "pong"}),
                    Some("subscribe") => {
                        id = message["id"].as_str().map(str::to_owned);
                        source.subscriptions.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    Some("complete") => return,
                    _ => continue,
                };
                if socket.send(AxMessage::text(reply.to_string())).await.is_err() {
                    return;
                }
            }
            payload = feed.recv() => {
                let Ok(payload) = payload else { continue };
                let Some(id) = &id else { continue };
                let frame = json!({"type": "next", "id": id, "payload": payload});
                if socket.send(AxMessage::text(frame.to_string())).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn labels(body: String) -> impl IntoResponse {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let entities: Vec<Value> = body["variables"]["representations"]
        .as_array()
        .map(|reps| {
            reps.iter()
                .map(|r| json!({"__typename": "Tick", "label": format!("tick {}", r["id"].as_str().unwrap_or(""))}))
                .collect()
        })
        .unwrap_or_default();
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        json!({"data": {"_entities": entities}}).to_string(),
    )
}

/// The supergraph of the two source subgraphs served at `base` (`http://host:port`).
pub fn supergraph(base: &str) -> String {
    format!(
        r#"schema
  @link(url: "https://specs.apollo.dev/link/v1.0")
  @link(url: "https://specs.apollo.dev/join/v0.3", for: EXECUTION) {{
  query: Query
  subscription: Subscription
}}

directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE
directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE
directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA

scalar join__FieldSet
scalar link__Import

enum join__Graph {{
  EVENTS @join__graph(name: "events", url: "{base}/events")
  LABELS @join__graph(name: "labels", url: "{base}/labels")
}}

enum link__Purpose {{
  SECURITY
  EXECUTION
}}

type Query @join__type(graph: EVENTS) @join__type(graph: LABELS) {{
  ping: Boolean @join__field(graph: EVENTS)
}}

type Subscription @join__type(graph: EVENTS) {{
  tick: Tick! @join__field(graph: EVENTS)
}}

type Tick @join__type(graph: EVENTS, key: "id") @join__type(graph: LABELS, key: "id") {{
  id: ID!
  seq: Int! @join__field(graph: EVENTS)
  sentAtMs: Float! @join__field(graph: EVENTS)
  label: String! @join__field(graph: LABELS)
}}
"#
    )
}

#[derive(serde::Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    payload: Option<FramePayload>,
}

#[derive(serde::Deserialize)]
struct FramePayload {
    data: Option<TickData>,
}

#[derive(serde::Deserialize)]
struct TickData {
    tick: TickEvent,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TickEvent {
    seq: i64,
    sent_at_ms: f64,
    label: String,
}

/// One subscriber's record: the measured events it got, in order of arrival, as (index of the
/// event among the measured ones, latency).
#[derive(Default)]
struct Received {
    latencies_ms: Vec<(usize, f64)>,
    out_of_order: u64,
}

/// A subscriber's WebSocket read buffer by default, in bytes.
pub const CLIENT_READ_BUFFER_SIZE: usize = 4 * 1024;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(url: &str, read_buffer: usize) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    // tungstenite's default read buffer (128 KiB) is zero-filled before every read: at 10,000
    // subscribers that is gigabytes of memset per event in this process, on the cores the
    // router runs on, and the figure would mostly measure it. Frames here are ~100 bytes.
    let config = WebSocketConfig::default().read_buffer_size(read_buffer);
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), false).await?;
    socket
        .send(Message::text(r#"{"type":"connection_init"}"#))
        .await?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("connection_ack") => break,
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
            other => bail!("no connection_ack: {other:?}"),
        }
    }
    let subscribe = json!({"type": "subscribe", "id": "1", "payload": {"query": SUBSCRIPTION}});
    socket.send(Message::text(subscribe.to_string())).await?;
    Ok(socket)
}

/// Reads events until the measured ones (`seq >= first`, `events` of them) arrived, and gives the
/// socket back still subscribed ([`leave`]). Warm-up events (`seq < first`) only mark the
/// subscriber as attached.
async fn receive(
    mut socket: Socket,
    source: Arc<Source>,
    first: i64,
    events: usize,
    attached: Arc<AtomicUsize>,
) -> anyhow::Result<(Received, Socket)> {
    let mut received = Received::default();
    let mut is_attached = false;
    let mut expected = first;
    while received.latencies_ms.len() < events {
        let text = match socket.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => bail!("the subscription ended: {other:?}"),
        };
        let now = source.now_ms();
        // Typed and borrowed: 10,000 subscribers parse every event on the benchmark's own cores.
        let message: Frame<'_> = serde_json::from_str(text.as_str())
            .with_context(|| format!("unexpected message {text}"))?;
        if message.kind != "next" {
            if message.kind == "ping" {
                socket.send(Message::text(r#"{"type":"pong"}"#)).await?;
                continue;
            }
            bail!("unexpected message {text}");
        }
        let tick = message
            .payload
            .and_then(|p| p.data)
            .map(|d| d.tick)
            .with_context(|| format!("an event without a tick: {text}"))?;
        let seq = tick.seq;
        if tick.label.strip_prefix("tick ") != Some(seq.to_string().as_str()) {
            bail!("the entity fetch did not complete event {seq}: {text}");
        }
        if !is_attached {
            is_attached = true;
            attached.fetch_add(1, Ordering::SeqCst);
        }
        if seq < first {
            continue;
        }
        if seq != expected {
            received.out_of_order += 1;
        }
        expected = seq + 1;
        let index = usize::try_from(seq - first).context("a measured event before the first")?;
        received.latencies_ms.push((index, now - tick.sent_at_ms));
    }
    Ok((received, socket))
}

/// Unsubscribes and closes, as a client that is done would. Only once every subscriber has the
/// last event: a subscriber closing early would put its `complete` and close handshake on both
/// processes' cores while the others still wait for that event, and into its latency.
async fn leave(mut socket: Socket) {
    let _ = socket
        .send(Message::text(r#"{"type":"complete","id":"1"}"#))
        .await;
    let _ = socket.close(None).await;
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// CPU time of this process and of the router, in clock ticks.
fn cpu_now(router_pid: Option<u32>) -> anyhow::Result<(u64, Option<u64>)> {
    let own = procfs::cpu_ticks(std::process::id()).context("reading our own CPU time")?;
    let router = router_pid
        .map(procfs::cpu_ticks)
        .transpose()
        .context("reading the router's CPU time")?;
    Ok((own, router))
}

fn rss_mib(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line["VmRSS:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Connects the subscribers, waits until all receive warm-up events, then emits the measured
/// events and collects their delivery latencies.
pub async fn run(source: Arc<Source>, options: &FanoutOptions) -> anyhow::Result<FanoutReport> {
    let deadline = Instant::now() + options.timeout;
    let rss_before = rss_mib(options.router_pid);
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(options.connect_concurrency.max(1)));
    let attached = Arc::new(AtomicUsize::new(0));
    // Measured events start at a sequence number far above the warm-ups.
    let first: i64 = 1_000_000;
    let mut connecting = Vec::with_capacity(options.subscribers);
    for _ in 0..options.subscribers {
        let permits = Arc::clone(&permits);
        let url = options.url.clone();
        let read_buffer = options.client_read_buffer;
        connecting.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await?;
            subscribe(&url, read_buffer).await
        }));
    }
    let mut receivers = Vec::with_capacity(options.subscribers);
    for connection in connecting {
        let socket = connection.await??;
        receivers.push(tokio::spawn(receive(
            socket,
            Arc::clone(&source),
            first,
            options.events,
            Arc::clone(&attached),
        )));
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    // Subscribers attach to the shared stream asynchronously: warm up until every one has an
    // event.
    let mut warmup = 0;
    while attached.load(Ordering::SeqCst) < options.subscribers {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} subscribers received an event in time",
                attached.load(Ordering::SeqCst),
                options.subscribers
            );
        }
        source.emit(warmup);
        warmup += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the last warm-up event drain before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_mib(options.router_pid);
    let cpu_before = cpu_now(options.router_pid)?;
    let measuring = Instant::now();
    let mut emitted_at = Vec::with_capacity(options.events);
    for seq in 0..options.events {
        emitted_at.push(started.elapsed().as_secs_f64());
        source.emit(first + seq as i64);
        tokio::time::sleep(options.interval).await;
    }
    let mut latencies = Vec::with_capacity(options.subscribers * options.events);
    let mut by_event = vec![Vec::with_capacity(options.subscribers); options.events];
    let mut lost_or_reordered = 0;
    let mut sockets = Vec::with_capacity(options.subscribers);
    let mut all_received = Vec::with_capacity(options.subscribers);
    for receiver in receivers {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (received, socket) = tokio::time::timeout(remaining, receiver)
            .await
            .context("subscribers still waiting for events at the timeout")???;
        sockets.push(socket);
        all_received.push(received);
    }
    // The receivers finished with their last event, so this window holds the whole fan-out of
    // every measured event (and the idle time between events, which costs no CPU), and none of
    // the unsubscribing below.
    let measured_seconds = measuring.elapsed().as_secs_f64();
    let cpu_after = cpu_now(options.router_pid)?;
    let leaving: Vec<_> = sockets
        .into_iter()
        .map(|socket| tokio::spawn(leave(socket)))
        .collect();
    for left in leaving {
        let remaining = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(remaining, left)
            .await
            .context("subscribers still closing at the timeout")??;
    }
    for received in all_received {
        lost_or_reordered += received.out_of_order;
        for (index, latency) in received.latencies_ms {
            latencies.push(latency);
            if let Some(event) = by_event.get_mut(index) {
                event.push(latency);
            }
        }
    }
    let delivered = latencies.len() as u64;
    let seconds = |ticks: u64| ticks as f64 / options.clk_tck.max(1) as f64;
    let subscriber_cpu_seconds = seconds(cpu_after.0.saturating_sub(cpu_before.0));
    let router_cpu_seconds = match (cpu_before.1, cpu_after.1) {
        (Some(before), Some(after)) => Some(seconds(after.saturating_sub(before))),
        _ => None,
    };
    let per_delivery = |cpu: f64| cpu * 1e6 / delivered.max(1) as f64;
    lost_or_reordered += (options.subscribers * options.events) as u64 - delivered;
    latencies.sort_by(f64::total_cmp);
    let by_event = by_event
        .into_iter()
        .zip(emitted_at)
        .map(|(mut event, at_s)| {
            event.sort_by(f64::total_cmp);
            EventLatency {
                at_s,
                delivered: event.len(),
                p50_ms: percentile(&event, 50.0),
                p99_ms: percentile(&event, 99.0),
                max_ms: event.last().copied().unwrap_or(f64::NAN),
            }
        })
        .collect();
    let per_subscriber = match (rss_before, rss_after) {
        (Some(before), Some(after)) => {
            Some((after - before) * 1024.0 / options.subscribers.max(1) as f64)
        }
        _ => None,
    };
    Ok(FanoutReport {
        subscribers: options.subscribers,
        events: options.events,
        delivered,
        lost_or_reordered,
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p99_ms: percentile(&latencies, 99.0),
        latency_max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        connect_seconds,
        upstream_subscriptions: source.subscriptions(),
        router_rss_before_mib: rss_before,
        router_rss_after_mib: rss_after,
        router_rss_per_subscriber_kib: per_subscriber,
        measured_seconds,
        subscriber_cpu_seconds,
        router_cpu_seconds,
        subscriber_cpu_us_per_delivery: per_delivery(subscriber_cpu_seconds),
        router_cpu_us_per_delivery: router_cpu_seconds.map(per_delivery),
        by_event,
    })
}

/// The report in one line, for the log and the README.
pub fn summary(report: &FanoutReport) -> String {
    let rss = report
        .router_rss_per_subscriber_kib
        .map(|kib| format!(", router RSS {kib:.1} KiB per subscriber"))
        .unwrap_or_default();
    let router_cpu = match (report.router_cpu_seconds, report.router_cpu_us_per_delivery) {
        (Some(seconds), Some(us)) => format!(", router CPU {seconds:.2} s ({us:.1} us/delivery)"),
        _ => String::new(),
    };
    let worst = report
        .by_event
        .iter()
        .map(|event| event.p99_ms)
        .fold(f64::NAN, f64::max);
    format!(
        "{} subscribers x {} events: {} delivered, {} lost or reordered, p50 {:.2} ms, p99 {:.2} ms (worst event's p99 {worst:.2} ms), max {:.2} ms, connected in {:.1} s, {} upstream subscription(s){rss}; over {:.1} s of events: subscribers' CPU {:.2} s ({:.1} us/delivery){router_cpu}",
        report.subscribers,
        report.events,
        report.delivered,
        report.lost_or_reordered,
        report.latency_p50_ms,
        report.latency_p99_ms,
        report.latency_max_ms,
        report.connect_seconds,
        report.upstream_subscriptions,
        report.measured_seconds,
        report.subscriber_cpu_seconds,
        report.subscriber_cpu_us_per_delivery,
    )
}
