//! Federated subscriptions: the engine shared by the client transports (`server::ws` for
//! graphql-transport-ws and the legacy graphql-ws, `server::sse` for GraphQL over SSE) and the
//! upstream WebSocket client (`upstream`). No transport lives here.
//!
//! A subscription goes through exactly the stages an HTTP request does (`prepare`, then
//! `admit`: variables, field authorization, rate limits, the plan of what is left). Its plan is a
//! [`SubscriptionNode`]: the primary fetch opens a graphql-transport-ws stream on the subgraph that
//! owns the root field, with the caller's `Authorization` in `connection_init`; for every event
//! the rest of the plan (entity fetches to other subgraphs) runs on the event's data and the
//! result is shaped like a query response.
//!
//! Identical subscriptions (same operation, variables, forwarded headers, identity and removed
//! fields: the inbound deduplication key of queries) share one upstream stream and one execution
//! per event; the rendered response is fanned out to every subscriber through a bounded
//! broadcast buffer (`subscriptions.buffer_size`). A subscriber that falls that far behind is
//! closed or loses events, by `subscriptions.slow_client`, so memory stays bounded.
//!
//! A connection or stream authenticated with a JWT ends when the token expires (`expiry`); a
//! reload ends them only when it changes the rules they were admitted under (`reload`).
//!
//! A stream keeps the supergraph state it started on. When the supergraph is swapped, each stream
//! prepares its operation again against the new one: if it still validates and plans as a
//! subscription the stream keeps running (on its own plan, with its upstream stream), else it
//! ends with a `SUPERGRAPH_CHANGED` error, so a client learns why and can subscribe anew.

pub(crate) mod expiry;
pub(crate) mod reload;
pub(crate) mod upstream;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use tokio::sync::{Notify, broadcast, watch};
use xxhash_rust::xxh3::Xxh3;

use self::upstream::{UpstreamEvent, UpstreamSubscription};
use crate::auth::Identity;
use crate::config::SubscriptionsConfig;
use crate::error::{GraphQLError, codes};
use crate::operation::{
    Admitted, Caller, GraphQLRequest, PipelineError, RouterState, admit, dedupe_key, plan_variables,
};
use crate::query_planner::{OperationKind, PlanNode, QueryPlan};

/// Gauge of open WebSocket connections (both protocols).
pub(crate) const CONNECTIONS_GAUGE: &str =
    shippy_telemetry::metrics::names::ROUTER_WEBSOCKET_CONNECTIONS;
/// Gauge of active client subscriptions (WebSocket and SSE).
pub(crate) const SUBSCRIPTIONS_GAUGE: &str = shippy_telemetry::metrics::names::ROUTER_SUBSCRIPTIONS;

/// What every subscriber of a stream receives.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A response (`{"data":…}` with any errors), rendered once for all subscribers.
    Next(Bytes),
    /// The stream ended with these errors (the subgraph refused it, failed or went away).
    Error(Arc<Vec<GraphQLError>>),
    /// The subgraph completed the stream.
    Complete,
}

/// What a subscriber gets from [`Subscriber::recv`].
#[derive(Debug)]
pub(crate) enum Received {
    Event(Event),
    /// The subscriber fell behind by more than the buffer; this many events were lost.
    Lagged(u64),
}

/// The subscription state shared by every connection of a router.
pub(crate) struct Hub {
    config: SubscriptionsConfig,
    connections: AtomicUsize,
    streams: Mutex<HashMap<u128, Arc<Stream>>>,
    shutdown: watch::Sender<bool>,
    /// Bumped when a reload changed the rules subscriptions were admitted under.
    reloads: watch::Sender<u64>,
    /// The state of the last supergraph swapped in (`None` until the first swap): streams
    /// watch it to check their operation against the new supergraph.
    supergraphs: watch::Sender<Option<Arc<RouterState>>>,
}

/// One upstream stream and its subscribers.
struct Stream {
    sender: broadcast::Sender<Event>,
    /// Changed only under the hub's `streams` lock.
    subscribers: AtomicUsize,
    /// Woken when the last subscriber leaves.
    idle: Notify,
}

impl Hub {
    pub(crate) fn new(config: SubscriptionsConfig) -> Hub {
        Hub {
            config,
            connections: AtomicUsize::new(0),
            streams: Mutex::new(HashMap::new()),
            shutdown: watch::channel(false).0,
            reloads: watch::channel(0).0,
            supergraphs: watch::channel(None).0,
        }
    }

    /// Tells open streams (and the health-check supervisor) that `core` now serves.
    pub(crate) fn supergraph_changed(&self, core: Arc<RouterState>) {
        self.supergraphs.send_replace(Some(core));
    }

    /// Swaps from now on (the current value counts as seen).
    pub(crate) fn supergraph_updates(&self) -> watch::Receiver<Option<Arc<RouterState>>> {
        self.supergraphs.subscribe()
    }

    pub(crate) fn config(&self) -> &SubscriptionsConfig {
        &self.config
    }

    /// A connection slot, or `None` at `max_connections`.
    pub(crate) fn connect(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let previous = self.connections.fetch_add(1, Ordering::AcqRel);
        if previous >= self.config.max_connections {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnectionSlot {
            hub: Arc::clone(self),
        })
    }

    /// Open subscription connections (WebSocket and SSE).
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Client subscriptions attached to a stream (each subscriber of a shared stream counts).
    pub(crate) fn subscribers(&self) -> usize {
        self.lock()
            .values()
            .map(|stream| stream.subscribers.load(Ordering::Acquire))
            .sum()
    }

    /// Distinct upstream streams running.
    pub(crate) fn upstream_streams(&self) -> usize {
        self.lock().len()
    }

    /// Completes once the router shuts down.
    pub(crate) fn shutting_down(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut signal = self.shutdown.subscribe();
        async move {
            // An error means the hub is gone, which only happens at shutdown too.
            let _ = signal.wait_for(|down| *down).await;
        }
    }

    /// Completes at the next reload that changes the rules subscriptions are admitted under.
    pub(crate) fn next_reload(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut signal = self.reloads.subscribe();
        async move {
            if signal.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Ends every subscription connection: they were admitted under rules (tokens, access,
    /// limits) that just changed, and reconnecting re-admits them under the new ones. Called
    /// only when [`reload::affects_subscriptions`] says so.
    pub(crate) fn reloaded(&self) {
        self.reloads.send_modify(|generation| *generation += 1);
    }

    /// Tells every connection to close ("going away").
    pub(crate) fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Waits until every connection has closed.
    pub(crate) async fn drained(&self) {
        // Connections close within a write once told; poll rather than track each one.
        while self.connections() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the stream `key`, starting it with `start` when nobody runs it yet.
    fn join(
        self: &Arc<Self>,
        key: u128,
        start: impl FnOnce(Arc<Stream>) -> tokio::task::JoinHandle<()>,
    ) -> Subscriber {
        let mut streams = self.lock();
        let stream = match streams.get(&key) {
            Some(stream) => Arc::clone(stream),
            None => {
                let stream = Arc::new(Stream {
                    sender: broadcast::channel(self.config.buffer_size).0,
                    subscribers: AtomicUsize::new(0),
                    idle: Notify::new(),
                });
                streams.insert(key, Arc::clone(&stream));
                // The producer needs the lock only when it ends, after this returns.
                drop(start(Arc::clone(&stream)));
                stream
            }
        };
        // Receiving first: once a subscriber is counted, it gets every event sent after.
        let receiver = stream.sender.subscribe();
        stream.subscribers.fetch_add(1, Ordering::AcqRel);
        metrics::gauge!(SUBSCRIPTIONS_GAUGE).increment(1.0);
        Subscriber {
            hub: Arc::clone(self),
            key,
            stream,
            receiver,
        }
    }

    /// Removes `stream` from the map (if it is still the one under `key`), so that nobody joins
    /// it any more.
    fn retire(&self, key: u128, stream: &Arc<Stream>) {
        let mut streams = self.lock();
        if streams.get(&key).is_some_and(|s| Arc::ptr_eq(s, stream)) {
            streams.remove(&key);
        }
    }
}

/// Holds one of `max_connections`; released when dropped.
pub(crate) struct ConnectionSlot {
    hub: Arc<Hub>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.hub.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One client subscription on a shared stream. Leaving (drop) as the last subscriber stops the
/// upstream stream.
pub(crate) struct Subscriber {
    hub: Arc<Hub>,
    key: u128,
    stream: Arc<Stream>,
    receiver: broadcast::Receiver<Event>,
}

impl Subscriber {
    /// The next event; `None` when the stream ended without a final event (its producer
    /// stopped for the router's shutdown).
    pub(crate) async fn recv(&mut self) -> Option<Received> {
        match self.receiver.recv().await {
            Ok(event) => Some(Received::Event(event)),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Received::Lagged(missed)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        metrics::gauge!(SUBSCRIPTIONS_GAUGE).decrement(1.0);
        // Under the lock, so that nobody joins a stream whose last subscriber is leaving.
        let mut streams = self.hub.lock();
        if self.stream.subscribers.fetch_sub(1, Ordering::AcqRel) == 1 {
            if streams
                .get(&self.key)
                .is_some_and(|s| Arc::ptr_eq(s, &self.stream))
            {
                streams.remove(&self.key);
            }
            // `notify_one` keeps a permit, so a producer not waiting yet still sees it.
            self.stream.idle.notify_one();
        }
    }
}

/// What [`start`] made of an operation.
pub(crate) enum Started {
    /// A query or mutation sent over a subscription transport: its one response.
    Single(Bytes),
    /// A subscription.
    Stream(Subscriber),
}

/// Who subscribes: the caller as the HTTP pipeline sees it, plus the credential to present to
/// the subgraph's WebSocket in `connection_init`.
pub(crate) struct Subscribing<'r> {
    pub(crate) caller: Caller<'r>,
    pub(crate) identity: Option<Arc<Identity>>,
    pub(crate) authorization: Option<HeaderValue>,
}

/// Runs `request` for a subscription transport: refused, a single response (queries and
/// mutations), or a subscriber on the (possibly shared) upstream stream.
pub(crate) async fn start(
    state: &Arc<RouterState>,
    hub: &Arc<Hub>,
    request: &GraphQLRequest,
    who: Subscribing<'_>,
) -> Result<Started, PipelineError> {
    let live = state.live.load_full();
    let prepared = state
        .prepare_request(request, &live, &who.caller)
        .await
        .map_err(|rejection| (*rejection).clone())?;
    if request.is_get && prepared.kind == OperationKind::Mutation {
        return Err(PipelineError::rejected(
            StatusCode::METHOD_NOT_ALLOWED,
            GraphQLError::new(
                "Mutations cannot be sent with GET; use POST",
                codes::OPERATION_NOT_ALLOWED,
            ),
        ));
    }
    let admitted = admit(state, &live, prepared, &request.variables, who.caller).await?;
    if admitted.prepared.kind != OperationKind::Subscription {
        let body = state
            .execute(
                &admitted.prepared,
                admitted.plan.as_deref(),
                &admitted.variables,
                &admitted.headers,
                who.caller.identity,
                admitted.errors,
            )
            .await;
        return Ok(Started::Single(Bytes::from(body)));
    }
    let Some(plan) = admitted
        .plan
        .clone()
        .filter(|plan| matches!(plan.root, Some(PlanNode::Subscription(_))))
    else {
        // Everything subscribed to was removed (unauthorized or rate limited).
        let mut errors = admitted.errors;
        if errors.is_empty() {
            errors.push(GraphQLError::new(
                "The subscription has nothing to subscribe to",
                codes::UNSUPPORTED_OPERATION,
            ));
        }
        return Err(PipelineError::Rejected {
            status: StatusCode::FORBIDDEN,
            errors,
        });
    };
    let mut hasher = Xxh3::new();
    let base = dedupe_key(
        &admitted.prepared,
        &admitted.removed,
        &admitted.variables,
        &admitted.headers,
        who.caller.identity,
        &admitted.errors,
    );
    hasher.update(&base.to_le_bytes());
    if let Some(authorization) = &who.authorization {
        hasher.update(authorization.as_bytes());
    }
    let key = hasher.digest128();
    let producer = Producer {
        state: Arc::clone(state),
        hub: Arc::clone(hub),
        plan,
        admitted,
        identity: who.identity,
        authorization: who.authorization,
        key,
    };
    Ok(Started::Stream(
        hub.join(key, |stream| tokio::spawn(producer.run(stream))),
    ))
}

/// Runs one upstream stream: opens it, executes the rest of the plan per event, broadcasts.
struct Producer {
    state: Arc<RouterState>,
    hub: Arc<Hub>,
    plan: Arc<QueryPlan>,
    admitted: Admitted,
    identity: Option<Arc<Identity>>,
    authorization: Option<HeaderValue>,
    key: u128,
}

impl Producer {
    async fn run(self, stream: Arc<Stream>) {
        let mut ending = Ending {
            hub: Arc::clone(&self.hub),
            key: self.key,
            stream: Arc::clone(&stream),
            finished: false,
        };
        let last = self.produce(&stream).await;
        ending.finished = true;
        if let Some(event) = last {
            // Out of the hub first, so that new subscribers start a fresh stream.
            self.hub.retire(self.key, &stream);
            let _ = stream.sender.send(event);
        }
    }

    /// Runs the stream; returns the final event for the subscribers, or `None` when none is
    /// owed (the last subscriber left, or the router is shutting down).
    async fn produce(&self, stream: &Arc<Stream>) -> Option<Event> {
        let Some(PlanNode::Subscription(node)) = &self.plan.root else {
            return Some(Event::Error(Arc::new(vec![GraphQLError::new(
                "The operation is not a subscription",
                codes::INTERNAL_SERVER_ERROR,
            )])));
        };
        let hub = &self.hub;
        let shutdown = hub.shutting_down();
        tokio::pin!(shutdown);
        let mut swaps = hub.supergraph_updates();
        let service = node.primary.service.as_str();
        let admitted = &self.admitted;
        let variables = plan_variables(&admitted.prepared, &admitted.variables);
        let body = crate::operation::execute::request_body(
            &self.state,
            &variables,
            self.identity.as_deref().map(Identity::claims_json),
            &node.primary,
            &[],
        );
        let client = &self.state.subgraphs[node.primary.subgraph];
        let opened = tokio::select! {
            opened = UpstreamSubscription::open(
                client,
                admitted.headers.for_subgraph(&client.name),
                self.authorization.as_ref(),
                body,
                hub.config(),
            ) => opened,
            () = stream.idle.notified() => return None,
            () = &mut shutdown => return None,
        };
        let mut upstream = match opened {
            Ok(upstream) => upstream,
            Err(error) => {
                tracing::warn!(subgraph = service, %error, "subscription could not be opened upstream");
                let error = GraphQLError::new(
                    format!("Subgraph \"{service}\" could not be subscribed to"),
                    codes::SUBREQUEST_HTTP_ERROR,
                )
                .with_extension("service", service.to_string());
                return Some(Event::Error(Arc::new(vec![error])));
            }
        };
        loop {
            let event = tokio::select! {
                event = upstream.next() => event,
                () = stream.idle.notified() => {
                    upstream.complete().await;
                    return None;
                }
                () = &mut shutdown => {
                    upstream.complete().await;
                    return None;
                }
                Ok(()) = swaps.changed() => {
                    let next = swaps.borrow_and_update().clone();
                    match next {
                        Some(core) if !self.still_exists(&core).await => {
                            upstream.complete().await;
                            return Some(Event::Error(Arc::new(vec![supergraph_changed_error()])));
                        }
                        _ => continue,
                    }
                }
            };
            match event {
                UpstreamEvent::Next(payload) => {
                    let body = self
                        .state
                        .execute_event(
                            &admitted.prepared,
                            node,
                            payload,
                            &admitted.variables,
                            &admitted.headers,
                            self.identity.as_deref(),
                            admitted.errors.clone(),
                        )
                        .await;
                    // No receivers only means the last one is leaving; `idle` ends the loop.
                    let _ = stream.sender.send(Event::Next(Bytes::from(body)));
                }
                UpstreamEvent::Error(errors) => {
                    let errors = errors
                        .into_iter()
                        .map(|e| crate::operation::execute::subgraph_error(e, service, Some))
                        .collect();
                    return Some(Event::Error(Arc::new(errors)));
                }
                UpstreamEvent::Complete => {
                    return Some(Event::Complete);
                }
                UpstreamEvent::Closed(reason) => {
                    tracing::warn!(
                        subgraph = service,
                        reason,
                        "subgraph ended a subscription stream"
                    );
                    let error = GraphQLError::new(
                        format!("Subgraph \"{service}\" closed the subscription stream"),
                        codes::SUBSCRIPTION_UPSTREAM_CLOSED,
                    )
                    .with_extension("service", service.to_string());
                    return Some(Event::Error(Arc::new(vec![error])));
                }
            }
        }
    }
}

impl Producer {
    /// Whether this stream's operation is still a subscription under the supergraph of `core`:
    /// it validates, normalizes and plans there, with the same admission (guards, variables)
    /// as before. Prepared against `core`, which also warms its cache for resubscribing clients.
    async fn still_exists(&self, core: &RouterState) -> bool {
        let prepared = &self.admitted.prepared;
        let (text, name) = &*prepared.source;
        let live = core.live.load_full();
        match core
            .prepare(text, name.as_deref(), &live, prepared.override_variant)
            .await
        {
            Ok(prepared) => {
                prepared.kind == OperationKind::Subscription
                    && matches!(
                        prepared.plan.as_deref().and_then(|plan| plan.root.as_ref()),
                        Some(PlanNode::Subscription(_))
                    )
            }
            Err(rejection) => {
                tracing::info!(
                    errors = ?rejection.errors(),
                    "ending a subscription: its operation does not exist in the new supergraph"
                );
                false
            }
        }
    }
}

/// What a subscriber gets when the supergraph changed under its subscription in a way that
/// removed what it subscribed to.
pub(crate) fn supergraph_changed_error() -> GraphQLError {
    GraphQLError::new(
        "The supergraph changed and this subscription's operation is no longer valid; subscribe again",
        codes::SUPERGRAPH_CHANGED,
    )
}

/// Ends a stream however its producer stops: a producer that panicked owes its subscribers an
/// error (else they would wait forever on a stream nobody feeds).
struct Ending {
    hub: Arc<Hub>,
    key: u128,
    stream: Arc<Stream>,
    finished: bool,
}

impl Drop for Ending {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        tracing::error!("a subscription stream stopped unexpectedly");
        self.hub.retire(self.key, &self.stream);
        let error = GraphQLError::new(
            "The subscription stopped unexpectedly",
            codes::INTERNAL_SERVER_ERROR,
        );
        let _ = self.stream.sender.send(Event::Error(Arc::new(vec![error])));
    }
}

/// The request in a `subscribe` (graphql-transport-ws), `start` (graphql-ws) or SSE payload.
pub(crate) fn request_from_payload(
    payload: &serde_json::Value,
) -> Result<GraphQLRequest, GraphQLError> {
    let bad = |message: &str| GraphQLError::new(message.to_string(), codes::BAD_REQUEST);
    let object = payload
        .as_object()
        .ok_or_else(|| bad("The payload must be an object"))?;
    let query = match object.get("query") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(query)) => Some(query.clone()),
        Some(_) => return Err(bad("`query` must be a string")),
    };
    let document_id = match object.get("documentId") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(id)) => Some(id.clone()),
        Some(_) => return Err(bad("`documentId` must be a string")),
    };
    let operation_name = match object.get("operationName") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(name)) => Some(name.clone()),
        Some(_) => return Err(bad("`operationName` must be a string")),
    };
    let variables = match object.get("variables") {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(map)) => map.clone(),
        Some(_) => return Err(bad("`variables` must be an object")),
    };
    let extensions = match object.get("extensions") {
        Some(serde_json::Value::Object(map)) => map.clone(),
        _ => serde_json::Map::new(),
    };
    let request = GraphQLRequest {
        query,
        document_id,
        operation_name,
        variables,
        extensions,
        is_get: false,
    };
    if !request.names_an_operation() {
        return Err(bad("The payload has no `query` string"));
    }
    Ok(request)
}

/// The error item a subscriber gets in place of `missed` events under the `drop` policy.
pub(crate) fn dropped_error(missed: u64) -> GraphQLError {
    GraphQLError::new(
        format!("{missed} events were dropped because the subscriber fell behind"),
        codes::SUBSCRIPTION_EVENTS_DROPPED,
    )
    .with_extension("dropped", missed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_may_name_a_persisted_document_instead_of_a_query() {
        let by_id = request_from_payload(&serde_json::json!({ "documentId": "abc" })).unwrap();
        assert_eq!(
            (by_id.query, by_id.document_id.as_deref()),
            (None, Some("abc"))
        );
        let by_hash = request_from_payload(&serde_json::json!({
            "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "00" } }
        }))
        .unwrap();
        assert!(by_hash.query.is_none());
        let neither = request_from_payload(&serde_json::json!({ "variables": {} }));
        assert_eq!(
            neither.err().unwrap().code(),
            Some(codes::BAD_REQUEST),
            "nothing to run"
        );
        let wrong = request_from_payload(&serde_json::json!({ "documentId": 5 }));
        assert!(wrong.is_err());
    }

    #[tokio::test]
    async fn a_producer_that_panics_ends_its_stream_with_an_error() {
        let hub = Arc::new(Hub::new(SubscriptionsConfig::default()));
        let producer_hub = Arc::clone(&hub);
        let mut subscriber = hub.join(7, move |stream| {
            tokio::spawn(async move {
                let _ending = Ending {
                    hub: producer_hub,
                    key: 7,
                    stream,
                    finished: false,
                };
                tokio::task::yield_now().await;
                panic!("a bug in a producer");
            })
        });
        match subscriber.recv().await {
            Some(Received::Event(Event::Error(errors))) => {
                assert_eq!(errors[0].extensions["code"], codes::INTERNAL_SERVER_ERROR);
            }
            other => panic!("expected an error, got {other:?}"),
        }
        assert_eq!(
            hub.upstream_streams(),
            0,
            "the dead stream is out of the hub"
        );
    }

    #[tokio::test]
    async fn the_last_subscriber_leaving_stops_the_stream() {
        let hub = Arc::new(Hub::new(SubscriptionsConfig::default()));
        let (idle_tx, idle_rx) = tokio::sync::oneshot::channel();
        let first = hub.join(1, move |stream| {
            tokio::spawn(async move {
                stream.idle.notified().await;
                let _ = idle_tx.send(());
            })
        });
        let second = hub.join(1, |_| unreachable!("the stream is shared"));
        assert_eq!(hub.upstream_streams(), 1);
        drop(first);
        assert_eq!(hub.upstream_streams(), 1, "one subscriber is left");
        drop(second);
        assert_eq!(hub.upstream_streams(), 0);
        idle_rx.await.unwrap();
    }
}
