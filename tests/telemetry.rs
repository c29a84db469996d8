//! Observability of the whole system, end to end: `shippy up` exports its traces over OTLP/HTTP to a
//! receiver in this test, and serves Prometheus metrics.
//!
//! - One client request through the router is one trace: the router's request and fetch spans, the
//!   subgraph's request span (a child of the fetch, through `traceparent`), its resolver and SeaORM
//!   query spans all share the trace id. The event the mutation recorded is published in that trace,
//!   and the vessel subgraph's consumer handles it in a span linked to it.
//! - `/metrics` (Prometheus text, parsed) has every series the issue lists.
//!
//! Its own test binary: trace export is configured per process.

mod support;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value,
};
use prost::Message;
use serde_json::json;
use shippy_kit::testing::WsClient;
use support::{Running, shippy};

/// One exported span, reduced to what the assertions need.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    /// `(trace id, span id)` of each link.
    links: Vec<(String, String)>,
    attributes: BTreeMap<String, String>,
}

type Received = Arc<Mutex<Vec<Span>>>;

/// `POST /v1/traces`: decodes the OTLP protobuf body and keeps its spans.
async fn receive(State(received): State<Received>, body: Bytes) -> (StatusCode, Vec<u8>) {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut spans = received.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref())
            .and_then(|v| match &v.value {
                Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(Span {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    links: span
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|a| {
                            let value = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(any_value::Value::StringValue(s)) => s.clone(),
                                Some(any_value::Value::IntValue(i)) => i.to_string(),
                                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                                other => format!("{other:?}"),
                            };
                            (a.key.clone(), value)
                        })
                        .collect(),
                });
            }
        }
    }
    // An empty ExportTraceServiceResponse: everything accepted.
    (StatusCode::OK, Vec::new())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn otlp_receiver() -> (SocketAddr, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

/// Waits (generously: the batch exporter flushes every 100ms here, but the machine may be loaded)
/// until `found` finds what it looks for in the spans received so far.
async fn wait_for<T>(received: &Received, what: &str, found: impl Fn(&[Span]) -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(value) = found(&received.lock().unwrap()) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let names: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|s| format!("{} {} {}", s.trace_id, s.name, s.parent_span_id))
        .collect();
    panic!("never received {what}; spans: {names:#?}");
}

/// One sample of a Prometheus text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (label values here never contain `,` or `"`).
fn parse_prometheus(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let labels = rest
                        .trim_end_matches('}')
                        .split(',')
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (key, value) = pair.split_once('=').expect("label=value");
                            (key.to_owned(), value.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
            };
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The value of the sample `name` whose labels include `labels`, if there is one.
fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

const REGISTER: &str =
    "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }";
const SHIP: &str = "mutation Ship { createConsignment(input: {description: \"Tea\", weight: 10, containers: [{customerId: \"c1\", origin: \"Rotterdam\"}]}) { id status } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_across_router_and_subgraphs_and_metrics_have_every_series() {
    let (otlp, received) = otlp_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = shippy();
    cmd.args(["--port-base", "0", "--data-dir"])
        .arg(dir.path())
        // The standard OpenTelemetry variables (SHIPPY_OTLP_* set the same settings, see settings.rs).
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let shippy = Running::start(cmd, "shippy is up").await;

    let registered = shippy
        .client("user")
        .query(
            REGISTER,
            json!({ "input": { "name": "Ada", "email": "ada@example.com", "password": "correct horse" } }),
            None,
        )
        .await;
    let token = registered.data()["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let router = shippy.client("router");
    let shipped = router.query(SHIP, json!({}), Some(&token)).await;
    assert_eq!(shipped.data()["createConsignment"]["status"], "PENDING");

    // The router's request span for that mutation names its trace.
    let root = wait_for(&received, "the router's request span", |spans| {
        spans
            .iter()
            .find(|s| {
                s.name == "router.request"
                    && s.attributes
                        .get("graphql.operation.name")
                        .map(String::as_str)
                        == Some("Ship")
            })
            .cloned()
    })
    .await;
    assert_eq!(
        root.attributes
            .get("graphql.operation.type")
            .map(String::as_str),
        Some("mutation")
    );
    let trace = root.trace_id.clone();
    let in_trace = |spans: &[Span], name: &str| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| s.trace_id == trace && s.name == name)
            .cloned()
            .collect()
    };
    let fetch = wait_for(&received, "the subgraph fetch span", |spans| {
        in_trace(spans, "subgraph.fetch").into_iter().next()
    })
    .await;
    assert_eq!(
        fetch.attributes.get("subgraph.name").map(String::as_str),
        Some("consignment")
    );
    assert_eq!(
        fetch
            .attributes
            .get("http.response.status_code")
            .map(String::as_str),
        Some("200")
    );
    // The subgraph continued the router's trace: its request span is a child of the fetch span.
    let served = wait_for(&received, "the subgraph's request span", |spans| {
        in_trace(spans, "subgraph.request").into_iter().next()
    })
    .await;
    assert_eq!(served.parent_span_id, fetch.span_id);
    assert_eq!(
        served.attributes.get("shippy.service").map(String::as_str),
        Some("consignment")
    );
    // The router's stages: prepare (parse, validate, plan) and execute under the request span,
    // the fetch under execute.
    let child = |name: &'static str, parent: String| {
        let trace = trace.clone();
        move |spans: &[Span]| {
            spans
                .iter()
                .find(|s| s.trace_id == trace && s.name == name && s.parent_span_id == parent)
                .cloned()
        }
    };
    let prepare = wait_for(&received, "prepare", child("prepare", root.span_id.clone())).await;
    assert_eq!(
        prepare.attributes.get("cache.hit").map(String::as_str),
        Some("false")
    );
    for stage in ["parse", "validate"] {
        wait_for(&received, stage, child(stage, prepare.span_id.clone())).await;
    }
    let plan = wait_for(&received, "plan", child("plan", prepare.span_id.clone())).await;
    assert_eq!(
        plan.attributes.get("cache.hit").map(String::as_str),
        Some("false")
    );
    let execute = wait_for(&received, "execute", child("execute", root.span_id.clone())).await;
    assert_eq!(fetch.parent_span_id, execute.span_id);
    // A resolver span and a database query span of the subgraph, in the same trace.
    wait_for(&received, "a SeaORM query span in the trace", |spans| {
        spans
            .iter()
            .find(|s| s.trace_id == trace && s.name.starts_with("sea_orm."))
            .map(|_| ())
    })
    .await;
    wait_for(&received, "a resolver span in the trace", |spans| {
        spans
            .iter()
            .find(|s| s.trace_id == trace && s.name == "field")
            .map(|_| ())
    })
    .await;

    // The relay published the recorded event in the same trace; the vessel subgraph's consumer
    // handled it in a span of its own linked to that publish span.
    let publish = wait_for(
        &received,
        "the publish span of the recorded event",
        |spans| {
            in_trace(spans, "events.publish").into_iter().find(|s| {
                s.attributes.get("event.kind").map(String::as_str) == Some("consignment.created")
            })
        },
    )
    .await;
    let consume = wait_for(
        &received,
        "a consumer span linked to the publish",
        |spans| {
            spans
                .iter()
                .find(|s| {
                    s.name == "events.consume"
                        && s.links
                            .contains(&(publish.trace_id.clone(), publish.span_id.clone()))
                        && s.attributes
                            .get("messaging.consumer.group.name")
                            .map(String::as_str)
                            == Some("vessel")
                })
                .cloned()
        },
    )
    .await;
    assert_ne!(
        consume.trace_id, trace,
        "a consumer's work is its own trace"
    );
    assert!(
        received
            .lock()
            .unwrap()
            .iter()
            .all(|s| s.service == "shippy"),
        "one process, one service name"
    );

    // Ten createConsignment a minute per user (@rateLimit): the next ones are refused and counted.
    let mut limited = false;
    for _ in 0..12 {
        let resp = router.query(SHIP, json!({}), Some(&token)).await;
        limited |= resp.status == 429;
    }
    assert!(limited, "createConsignment is rate limited");

    // A client subscription over WebSocket, for the connection and subscription gauges.
    let (mut ws, ack) = WsClient::connect(&shippy.url("router"), Some(&token)).await;
    assert_eq!(ack["type"], "connection_ack");
    ws.subscribe(
        "mine",
        "subscription { consignmentUpdated { id status } }",
        json!({}),
    )
    .await;

    let metrics_url = shippy.url("router").replace("/graphql", "/metrics");
    let http = reqwest::Client::new();
    // Stream stats and the outbox backlog are sampled every 5s; wait for a sample that saw the
    // consignment stream, and for the subscription to be counted.
    let mut text = String::new();
    for _ in 0..300 {
        text = http
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("shippy_stream_consumer_lag{stream=\"consignment\",group=\"vessel\"}")
            && text.contains("shippy_outbox_backlog{service=\"consignment\"}")
            && text.contains("shippy_router_subscriptions 1")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let samples = parse_prometheus(&text);
    let expect = |name: &str, labels: &[(&str, &str)]| {
        sample(&samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert!(
        expect(
            "shippy_router_requests_total",
            &[("operation_type", "mutation"), ("result", "ok")]
        ) >= 1.0
    );
    assert!(
        expect(
            "shippy_router_requests_total",
            &[("operation_type", "mutation"), ("result", "rejected")]
        ) >= 1.0
    );
    assert!(
        expect(
            "shippy_router_request_duration_seconds_count",
            &[("operation_type", "mutation"), ("result", "ok")]
        ) >= 1.0
    );
    expect(
        "shippy_router_request_duration_seconds_bucket",
        &[("operation_type", "mutation"), ("le", "+Inf")],
    );
    assert!(
        expect(
            "shippy_router_subgraph_fetch_duration_seconds_count",
            &[("subgraph", "consignment"), ("result", "ok")]
        ) >= 1.0
    );
    assert!(expect("shippy_router_cache_misses_total", &[("cache", "plan")]) >= 1.0);
    assert!(expect("shippy_router_cache_hits_total", &[("cache", "operation")]) >= 1.0);
    assert_eq!(
        expect(
            "shippy_router_circuit_breaker_state",
            &[("subgraph", "consignment")]
        ),
        0.0,
        "closed"
    );
    assert!(
        expect(
            "shippy_router_rate_limit_rejections_total",
            &[("field", "Mutation.createConsignment")]
        ) >= 1.0
    );
    assert_eq!(expect("shippy_router_websocket_connections", &[]), 1.0);
    assert_eq!(expect("shippy_router_subscriptions", &[]), 1.0);
    assert!(
        expect(
            "shippy_subgraph_requests_total",
            &[
                ("service", "consignment"),
                ("operation_type", "mutation"),
                ("result", "ok")
            ]
        ) >= 1.0
    );
    expect(
        "shippy_subgraph_request_duration_seconds_count",
        &[("service", "user"), ("operation_type", "mutation")],
    );
    expect(
        "shippy_stream_consumer_lag",
        &[("stream", "consignment"), ("group", "vessel")],
    );
    expect(
        "shippy_stream_pending_entries",
        &[("stream", "consignment"), ("group", "vessel")],
    );
    expect("shippy_outbox_backlog", &[("service", "consignment")]);

    // Every subgraph serves the same registry (one process).
    let user_metrics = http
        .get(shippy.url("user").replace("/graphql", "/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(user_metrics.status(), 200);
    assert!(
        user_metrics
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(
        user_metrics
            .text()
            .await
            .unwrap()
            .contains("shippy_subgraph_requests_total")
    );
    assert!(shippy.stop("-TERM").await, "stops cleanly, flushing spans");
}
