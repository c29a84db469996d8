//! Federated subscriptions through the router over WebSocket: a scripted subgraph streams
//! `Tick`s, the router completes each with `Tick.label` from a second subgraph. Event order,
//! authentication (and token expiry), identity propagation, refusal, subgraph death, shutdown,
//! reloads, supergraph swaps and the limits.

#[path = "common/mock.rs"]
mod mock;
#[path = "subscriptions/support.rs"]
mod support;

use futures::SinkExt;
use serde_json::json;
use support::{
    Client, TICKS, WAIT, refused_upgrade_status, sse_events, start, token, upgrade_request,
};

#[tokio::test]
async fn events_arrive_in_order_with_fields_from_another_subgraph() {
    let env = start(|_| {}).await;
    let alice = token("alice");
    let mut client = Client::init(&env.ws_url, &alice).await;
    client.subscribe("s1", TICKS, json!({"from": 1})).await;
    env.until("the upstream subscription", || env.events.open() == 1)
        .await;
    for n in 1..=20 {
        env.events.tick(n);
    }
    for n in 1..=20 {
        let message = client.message().await;
        assert_eq!(message["type"], "next", "{message}");
        assert_eq!(message["id"], "s1");
        assert_eq!(
            message["payload"],
            json!({"data": {"ticks": {"n": n, "label": format!("tick t{n}")}}})
        );
    }
    // The caller's identity reached the subgraph: in connection_init for the stream, and as the
    // forwarded header on every entity fetch.
    let bearer = format!("Bearer {alice}");
    assert_eq!(
        env.events.inits.lock().unwrap()[0]["Authorization"],
        bearer.as_str()
    );
    assert!(env.names.seen.lock().unwrap().iter().all(|h| *h == bearer));
    assert_eq!(
        env.events.subscribes.lock().unwrap()[0]["variables"],
        json!({"from": 1})
    );
    // `complete` from the client ends the upstream subscription.
    client.send(json!({"type": "complete", "id": "s1"})).await;
    env.until("the upstream complete", || env.events.open() == 0)
        .await;
}

#[tokio::test]
async fn the_subgraph_completing_completes_the_client() {
    let env = start(|_| {}).await;
    let mut client = Client::init(&env.ws_url, &token("alice")).await;
    client.subscribe("a", TICKS, json!({"from": 1})).await;
    env.until("the upstream subscription", || env.events.open() == 1)
        .await;
    env.events.tick(1);
    assert_eq!(client.message().await["type"], "next");
    let _ = env.events.feed.send(support::Command::Complete);
    assert_eq!(
        client.message().await,
        json!({"type": "complete", "id": "a"})
    );
    // The id is free again and the connection still works.
    client.subscribe("a", TICKS, json!({"from": 2})).await;
    env.until("a second upstream subscription", || env.events.open() == 1)
        .await;
}

#[tokio::test]
async fn identical_subscriptions_share_one_upstream_stream() {
    let env = start(|_| {}).await;
    let alice = token("alice");
    let mut first = Client::init(&env.ws_url, &alice).await;
    let mut second = Client::init(&env.ws_url, &alice).await;
    first.subscribe("1", TICKS, json!({"from": 1})).await;
    env.until("the upstream subscription", || env.events.open() == 1)
        .await;
    second.subscribe("1", TICKS, json!({"from": 1})).await;
    // The second joined the first's stream once both are attached to it; then tick.
    env.until("the second subscriber", || {
        env.router.subscription_streams() == 1 && env.router.subscriptions() == 2
    })
    .await;
    env.events.tick(7);
    for client in [&mut first, &mut second] {
        let message = client.message().await;
        assert_eq!(message["payload"]["data"]["ticks"]["n"], 7, "{message}");
    }
    assert_eq!(env.events.subscribes.lock().unwrap().len(), 1);
    // The stream lives while one subscriber is left, and stops with the last.
    drop(first);
    env.events.tick(8);
    assert_eq!(second.message().await["payload"]["data"]["ticks"]["n"], 8);
    second.send(json!({"type": "complete", "id": "1"})).await;
    env.until("the upstream complete", || env.events.open() == 0)
        .await;
}

#[tokio::test]
async fn a_bad_token_closes_with_4403_and_no_token_is_refused_the_field() {
    let env = start(|_| {}).await;
    let mut client = Client::connect(&env.ws_url, "graphql-transport-ws").await;
    client
        .send(
            json!({"type": "connection_init", "payload": {"Authorization": "Bearer not-a-token"}}),
        )
        .await;
    assert_eq!(client.closed().await, (4403, "Forbidden".to_string()));

    // The upgrade request's header counts when connection_init carries none.
    let mut request = upgrade_request(&env.ws_url);
    request
        .headers_mut()
        .insert("authorization", "Bearer forged".parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut client = Client { socket };
    client
        .send(json!({"type": "connection_init", "payload": {}}))
        .await;
    assert_eq!(client.closed().await.0, 4403);

    // Anonymous: connected, but `ticks` is @authenticated.
    let mut client = Client::connect(&env.ws_url, "graphql-transport-ws").await;
    client.send(json!({"type": "connection_init"})).await;
    assert_eq!(client.message().await["type"], "connection_ack");
    client.subscribe("x", TICKS, json!({"from": 1})).await;
    let message = client.message().await;
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(
        message["payload"][0]["extensions"]["code"],
        "UNAUTHORIZED_FIELD_OR_TYPE"
    );
    assert!(env.events.subscribes.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_subgraph_refusal_reaches_the_client_as_an_error() {
    let env = start(|_| {}).await;
    // Bob's token is valid, but the subgraph only lets Alice subscribe. Made once: a token made
    // again a second later has another `exp`.
    let bob = token("bob");
    let mut client = Client::init(&env.ws_url, &bob).await;
    client.subscribe("b", TICKS, json!({"from": 1})).await;
    let message = client.message().await;
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(message["id"], "b");
    assert_eq!(message["payload"][0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(message["payload"][0]["extensions"]["service"], "events");
    assert_eq!(
        env.events.inits.lock().unwrap()[0]["Authorization"],
        format!("Bearer {bob}").as_str()
    );
}

#[tokio::test]
async fn a_killed_subgraph_ends_the_subscription_with_an_error() {
    let mut env = start(|_| {}).await;
    let mut client = Client::init(&env.ws_url, &token("alice")).await;
    client.subscribe("k", TICKS, json!({"from": 1})).await;
    env.until("the upstream subscription", || env.events.open() == 1)
        .await;
    env.events.tick(1);
    assert_eq!(client.message().await["type"], "next");
    env.kill_events();
    let message = client.message().await;
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(
        message["payload"][0]["extensions"]["code"],
        "SUBSCRIPTION_UPSTREAM_CLOSED"
    );
    // The connection stays usable.
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.message().await, json!({"type": "pong"}));
}

#[tokio::test]
async fn router_shutdown_closes_with_going_away() {
    let mut env = start(|_| {}).await;
    let mut client = Client::init(&env.ws_url, &token("alice")).await;
    client.subscribe("s", TICKS, json!({"from": 1})).await;
    env.until("the upstream subscription", || env.events.open() == 1)
        .await;
    env.shut_down();
    assert_eq!(client.closed().await, (1001, "Going away".to_string()));
    let served = env.served.take().unwrap();
    tokio::time::timeout(WAIT, served)
        .await
        .expect("the router stopped")
        .unwrap()
        .unwrap();
    env.until("the upstream complete", || env.events.open() == 0)
        .await;
}

#[tokio::test]
async fn protocol_violations_close_with_the_spec_codes() {
    let env = start(|config| {
        config.subscriptions.connection_init_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let alice = token("alice");
    // subscribe before connection_init: 4401.
    let mut client = Client::connect(&env.ws_url, "graphql-transport-ws").await;
    client.subscribe("1", TICKS, json!({"from": 1})).await;
    assert_eq!(client.closed().await.0, 4401);
    // no connection_init in time: 4408.
    let mut client = Client::connect(&env.ws_url, "graphql-transport-ws").await;
    assert_eq!(client.closed().await.0, 4408);
    // a second connection_init: 4429.
    let mut client = Client::init(&env.ws_url, &alice).await;
    client.send(json!({"type": "connection_init"})).await;
    assert_eq!(client.closed().await.0, 4429);
    // a duplicate id: 4409.
    let mut client = Client::init(&env.ws_url, &alice).await;
    client.subscribe("same", TICKS, json!({"from": 1})).await;
    client.subscribe("same", TICKS, json!({"from": 1})).await;
    assert_eq!(client.closed().await.0, 4409);
    // not JSON: 4400.
    let mut client = Client::init(&env.ws_url, &alice).await;
    client
        .socket
        .send(tokio_tungstenite::tungstenite::Message::text("{nope"))
        .await
        .unwrap();
    assert_eq!(client.closed().await.0, 4400);
}

#[tokio::test]
async fn connection_and_per_connection_subscription_limits() {
    let env = start(|config| {
        config.subscriptions.max_connections = 1;
        config.subscriptions.max_subscriptions_per_connection = 1;
    })
    .await;
    let alice = token("alice");
    let mut client = Client::init(&env.ws_url, &alice).await;
    // A second connection is refused at the upgrade.
    assert_eq!(refused_upgrade_status(&env.ws_url).await, 503);
    client.subscribe("1", TICKS, json!({"from": 1})).await;
    client.subscribe("2", TICKS, json!({"from": 2})).await;
    let message = client.message().await;
    assert_eq!(message["type"], "error");
    assert_eq!(message["id"], "2");
    assert_eq!(
        message["payload"][0]["extensions"]["code"],
        "SUBSCRIPTION_LIMIT_EXCEEDED"
    );
    // Freed when the connection goes.
    drop(client);
    env.until("the connection slot", || {
        env.router.subscription_connections() == 0
    })
    .await;
    let _again = Client::init(&env.ws_url, &alice).await;
}

#[tokio::test]
async fn queries_run_over_the_socket_and_legacy_graphql_ws_is_negotiated() {
    let env = start(|_| {}).await;
    let mut client = Client::connect(&env.ws_url, "graphql-ws").await;
    client
        .send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", token("alice"))}}))
        .await;
    assert_eq!(client.message().await["type"], "connection_ack");
    client
        .send(json!({"type": "start", "id": "q", "payload": {"query": TICKS, "variables": {"from": 1}}}))
        .await;
    env.until("the upstream subscription", || env.events.open() == 1)
        .await;
    env.events.tick(3);
    let message = client.message().await;
    assert_eq!(message["type"], "data", "{message}");
    assert_eq!(message["payload"]["data"]["ticks"]["label"], "tick t3");
    client.send(json!({"type": "stop", "id": "q"})).await;
    env.until("the upstream complete", || env.events.open() == 0)
        .await;
    // A bad token: `connection_error`, then the close.
    let mut refused = Client::connect(&env.ws_url, "graphql-ws").await;
    refused
        .send(json!({"type": "connection_init", "payload": {"authorization": "Bearer forged"}}))
        .await;
    let refusal = refused.message().await;
    assert_eq!(refusal["type"], "connection_error", "{refusal}");
    assert_eq!(
        refusal["payload"]["extensions"]["code"], "UNAUTHENTICATED",
        "{refusal}"
    );
    assert!(
        refusal["payload"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Invalid token:")),
        "{refusal}"
    );
    assert_eq!(refused.closed().await.0, 4403);
    // A query over graphql-transport-ws: one `next`, then `complete`.
    let mut client = Client::init(&env.ws_url, &token("alice")).await;
    client
        .send(json!({"type": "subscribe", "id": "q", "payload": {"query": "{ __typename }"}}))
        .await;
    assert_eq!(
        client.message().await,
        json!({"type": "next", "id": "q", "payload": {"data": {"__typename": "Query"}}})
    );
    assert_eq!(client.message().await["type"], "complete");
}

#[tokio::test]
async fn sse_streams_events_and_reports_refusals_as_events() {
    let env = start(|_| {}).await;
    let client = reqwest::Client::new();
    let body = json!({"query": TICKS, "variables": {"from": 1}}).to_string();
    let mut response = client
        .post(&env.url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .header("authorization", format!("Bearer {}", token("alice")))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    env.until("the upstream subscription", || env.events.open() == 1)
        .await;
    env.events.tick(1);
    env.events.tick(2);
    let events = sse_events(&mut response, 2).await;
    for (n, (event, data)) in events.iter().enumerate() {
        assert_eq!(event, "next");
        let data: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(data["data"]["ticks"]["label"], format!("tick t{}", n + 1));
    }
    // Closing the connection ends the subscription upstream.
    drop(response);
    env.until("the upstream complete", || env.events.open() == 0)
        .await;

    // Anonymous: accepted, then the refusal as a `next`, then `complete`.
    let mut response = client
        .post(&env.url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let events = sse_events(&mut response, 2).await;
    assert_eq!(events[0].0, "next");
    let data: serde_json::Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(
        data["errors"][0]["extensions"]["code"],
        "UNAUTHORIZED_FIELD_OR_TYPE"
    );
    assert_eq!(events[1].0, "complete");
    // A bad token is refused like any HTTP request.
    let response = client
        .post(&env.url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .header("authorization", "Bearer forged")
        .body(json!({"query": TICKS, "variables": {"from": 1}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn plain_http_subscriptions_are_still_refused() {
    let env = start(|_| {}).await;
    let response = reqwest::Client::new()
        .post(&env.url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", token("alice")))
        .body(json!({"query": TICKS, "variables": {"from": 1}}).to_string())
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "UNSUPPORTED_OPERATION"
    );
}

/// Makes the events large and stops reading, then waits until the router has run every event
/// (so a stuck subscriber has fallen behind by then).
async fn overwhelm(env: &support::Env, client: &mut Client, events: i64) {
    client.subscribe("slow", TICKS, json!({"from": 1})).await;
    env.until("the upstream subscription", || env.events.open() == 1)
        .await;
    // 400 KB a label: far more than the socket buffers between router and client hold.
    env.names
        .padding
        .store(400 * 1024, std::sync::atomic::Ordering::SeqCst);
    for n in 1..=events {
        env.events.tick(n);
    }
    env.until("every event executed", || {
        env.names.seen.lock().unwrap().len() == events as usize
    })
    .await;
}

#[tokio::test]
async fn a_slow_subscriber_is_closed_under_the_close_policy() {
    let env = start(|config| {
        config.subscriptions.buffer_size = 2;
        config.subscriptions.slow_client = shippy_router::config::SlowClientPolicy::Close;
    })
    .await;
    let mut client = Client::init(&env.ws_url, &token("alice")).await;
    overwhelm(&env, &mut client, 100).await;
    let mut delivered = 0;
    let (code, _) = loop {
        match client.next().await {
            support::Got::Message(message) => {
                assert_eq!(message["type"], "next");
                delivered += 1;
            }
            support::Got::Closed(code, reason) => break (code, reason),
        }
    };
    assert_eq!(code, 1008);
    assert!(delivered < 100, "nothing was dropped: {delivered}");
}

#[tokio::test]
async fn a_slow_subscriber_loses_events_under_the_drop_policy_and_is_told() {
    let env = start(|config| {
        config.subscriptions.buffer_size = 2;
        config.subscriptions.slow_client = shippy_router::config::SlowClientPolicy::Drop;
    })
    .await;
    let mut client = Client::init(&env.ws_url, &token("alice")).await;
    overwhelm(&env, &mut client, 100).await;
    let mut ticks = Vec::new();
    let mut dropped = 0;
    while ticks.last() != Some(&100) {
        let message = client.message().await;
        assert_eq!(message["type"], "next", "{message}");
        let payload = &message["payload"];
        if let Some(n) = payload["data"]["ticks"]["n"].as_i64() {
            ticks.push(n);
        } else {
            assert_eq!(
                payload["errors"][0]["extensions"]["code"],
                "SUBSCRIPTION_EVENTS_DROPPED"
            );
            dropped += payload["errors"][0]["extensions"]["dropped"]
                .as_u64()
                .unwrap();
        }
    }
    assert!(dropped > 0, "nothing was dropped");
    assert_eq!(
        ticks.len() as u64 + dropped,
        100,
        "every event delivered or counted"
    );
    assert!(
        ticks.windows(2).all(|w| w[0] < w[1]),
        "out of order: {ticks:?}"
    );
}

#[tokio::test]
async fn keep_alive_pings_the_client_and_a_hung_subgraph_ends_the_subscription() {
    let env = start(|config| {
        config.subscriptions.keep_alive = std::time::Duration::from_millis(200);
    })
    .await;
    let mut client = Client::init(&env.ws_url, &token("alice")).await;
    match client.next_raw(false).await {
        support::Got::Message(message) => assert_eq!(message, json!({"type": "ping"})),
        other => panic!("expected a ping, got {other:?}"),
    }
    client.subscribe("h", TICKS, json!({"from": 1})).await;
    env.until("the upstream subscription", || env.events.open() == 1)
        .await;
    // The subgraph stops answering (pongs included): after a keep-alive interval without an
    // answer, the router gives up on it.
    env.events.frozen.send_replace(true);
    let message = client.message().await;
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(
        message["payload"][0]["extensions"]["code"],
        "SUBSCRIPTION_UPSTREAM_CLOSED"
    );
    env.events.killed.send_replace(true);
}

#[tokio::test]
async fn a_subgraph_that_never_acknowledges_is_given_up_on() {
    let env = start(|config| {
        config.subscriptions.upstream_connect_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    env.events
        .ack
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let mut client = Client::init(&env.ws_url, &token("alice")).await;
    client.subscribe("n", TICKS, json!({"from": 1})).await;
    let message = client.message().await;
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(
        message["payload"][0]["extensions"]["code"],
        "SUBREQUEST_HTTP_ERROR"
    );
    assert_eq!(message["payload"][0]["extensions"]["service"], "events");
}

#[tokio::test]
async fn a_message_over_the_size_limit_ends_the_connection() {
    let env = start(|config| {
        config.subscriptions.max_message_size = 1024;
    })
    .await;
    let mut client = Client::init(&env.ws_url, &token("alice")).await;
    client
        .subscribe(
            "big",
            &format!("{TICKS} # {}", "x".repeat(4096)),
            json!({"from": 1}),
        )
        .await;
    assert!(
        matches!(client.next().await, support::Got::Closed(..)),
        "the connection survived an oversized message"
    );
    assert!(env.events.subscribes.lock().unwrap().is_empty());
}

#[tokio::test]
async fn subscription_settings_need_a_restart() {
    let env = start(|_| {}).await;
    let mut config = shippy_router::RouterConfig::default();
    config.auth.jwt.secret = Some(shippy_router::config::Secret::new(support::SECRET));
    config.auth.jwt.issuers = vec!["shippy".into()];
    config.auth.jwt.audiences = vec!["shippy".into()];
    config.subscriptions.max_connections = 5;
    let outcome = env.router.reload(config.clone()).unwrap();
    assert_eq!(outcome.restart_required, vec!["subscriptions"]);
    config.subscriptions.buffer_size = 0;
    let error = env.router.reload(config).unwrap_err().to_string();
    assert!(
        error.contains("`subscriptions.buffer_size` must be at least 1"),
        "{error}"
    );
}

#[tokio::test]
async fn a_subgraph_websocket_url_can_be_configured() {
    // Nothing listens there: the override is used, so the subscription cannot be opened.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("ws://{}/graphql", closed.local_addr().unwrap());
    drop(closed);
    let env = start(|config| {
        config
            .subscriptions
            .subgraph_urls
            .insert("events".into(), nowhere);
    })
    .await;
    let mut client = Client::init(&env.ws_url, &token("alice")).await;
    client.subscribe("u", TICKS, json!({"from": 1})).await;
    let message = client.message().await;
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(
        message["payload"][0]["extensions"]["code"],
        "SUBREQUEST_HTTP_ERROR"
    );
    assert!(env.events.subscribes.lock().unwrap().is_empty());
    // An unknown subgraph name is refused at load.
    let mut config = shippy_router::RouterConfig::default();
    config
        .subscriptions
        .subgraph_urls
        .insert("nope".into(), "ws://127.0.0.1:1/graphql".into());
    let sdl = std::fs::read_to_string(format!(
        "{}/tests/fixtures/subscriptions.supergraph.graphql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert!(shippy_router::Router::from_supergraph_sdl(&sdl, config).is_err());
}

#[tokio::test]
async fn disabled_subscriptions_refuse_both_transports() {
    let env = start(|config| config.subscriptions.enabled = false).await;
    assert_eq!(refused_upgrade_status(&env.ws_url).await, 400);
    let response = reqwest::Client::new()
        .post(&env.url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .header("authorization", format!("Bearer {}", token("alice")))
        .body(json!({"query": TICKS, "variables": {"from": 1}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "UNSUPPORTED_OPERATION"
    );
}

#[tokio::test]
async fn sse_keeps_idle_streams_alive_and_counts_against_the_connection_limit() {
    let env = start(|config| {
        config.subscriptions.keep_alive = std::time::Duration::from_millis(300);
        config.subscriptions.max_connections = 1;
    })
    .await;
    let client = reqwest::Client::new();
    let sse = || {
        client
            .post(&env.url)
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .header("authorization", format!("Bearer {}", token("alice")))
            .body(json!({"query": TICKS, "variables": {"from": 1}}).to_string())
            .send()
    };
    let mut response = sse().await.unwrap();
    assert_eq!(response.status(), 200);
    let chunk = tokio::time::timeout(WAIT, response.chunk())
        .await
        .expect("a keep-alive in time")
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&chunk), ":\n\n");
    // The one connection slot is taken by the stream.
    assert_eq!(sse().await.unwrap().status(), 503);
    drop(response);
    env.until("the slot to be freed", || {
        env.router.subscription_connections() == 0
    })
    .await;
    assert_eq!(sse().await.unwrap().status(), 200);
}

/// An SSE subscription to `TICKS` from `from`, authenticated with `token`.
async fn sse_ticks(env: &support::Env, token: &str, from: i64) -> reqwest::Response {
    let response = reqwest::Client::new()
        .post(&env.url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .body(json!({"query": TICKS, "variables": {"from": from}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

/// Reads `response` to its end, failing on anything but keep-alive comments.
async fn sse_ends(response: &mut reqwest::Response) {
    loop {
        match tokio::time::timeout(WAIT, response.chunk()).await {
            Ok(Ok(Some(chunk))) => assert_eq!(&chunk[..], b":\n\n", "an event after the end"),
            Ok(Ok(None)) | Ok(Err(_)) => break,
            Err(_) => panic!("the stream did not end"),
        }
    }
}

#[tokio::test]
async fn a_reload_closes_subscriptions_only_when_it_changes_their_rules() {
    let env = start(|_| {}).await;
    let alice = token("alice");
    let mut client = Client::init(&env.ws_url, &alice).await;
    client.subscribe("r", TICKS, json!({"from": 1})).await;
    let mut sse = sse_ticks(&env, &alice, 2).await;
    env.until("the upstream subscriptions", || env.events.open() == 2)
        .await;
    let mut config = shippy_router::RouterConfig::default();
    config.auth.jwt.secret = Some(shippy_router::config::Secret::new(support::SECRET));
    config.auth.jwt.issuers = vec!["shippy".into()];
    config.auth.jwt.audiences = vec!["shippy".into()];
    // CSRF and introspection cannot change what a subscription was admitted with: both stay.
    config.csrf.enabled = false;
    config.introspection = false;
    assert!(env.router.reload(config.clone()).unwrap().applied);
    env.events.tick(1);
    let message = client.message().await;
    assert_eq!(message["type"], "next", "{message}");
    let events = sse_events(&mut sse, 1).await;
    assert_eq!(events[0].0, "next", "{events:?}");
    assert_eq!(env.events.open(), 2);
    // A lower limit could refuse them: both end, and reconnect under it.
    config.limits.max_depth = 5;
    assert!(env.router.reload(config.clone()).unwrap().applied);
    assert_eq!(client.closed().await.0, 1012);
    sse_ends(&mut sse).await;
    env.until("the upstream complete", || env.events.open() == 0)
        .await;
    // Reconnecting works, and a reload that changes nothing closes nothing.
    let mut client = Client::init(&env.ws_url, &alice).await;
    assert!(!env.router.reload(config).unwrap().applied);
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.message().await, json!({"type": "pong"}));
}

#[tokio::test]
async fn an_expiring_token_ends_its_subscriptions_on_every_transport() {
    let env = start(|config| config.auth.jwt.leeway = std::time::Duration::ZERO).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Long enough to set everything up on a loaded machine, short enough to wait for.
    let short = support::token_until("alice", now + 8);
    env.events.allow(&short);
    let mut modern = Client::init(&env.ws_url, &short).await;
    modern.subscribe("m", TICKS, json!({"from": 1})).await;
    let mut legacy = Client::connect(&env.ws_url, "graphql-ws").await;
    legacy
        .send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {short}")}}))
        .await;
    assert_eq!(legacy.message().await["type"], "connection_ack");
    legacy
        .send(json!({"type": "start", "id": "l", "payload": {"query": TICKS, "variables": {"from": 2}}}))
        .await;
    let mut sse = sse_ticks(&env, &short, 3).await;
    // Anonymous and long-lived connections have nothing to expire.
    let mut anonymous = Client::connect(&env.ws_url, "graphql-transport-ws").await;
    anonymous.send(json!({"type": "connection_init"})).await;
    assert_eq!(anonymous.message().await["type"], "connection_ack");
    let mut lasting = Client::init(&env.ws_url, &token("alice")).await;
    env.until("the upstream subscriptions", || env.events.open() == 3)
        .await;
    env.events.tick(1);
    assert_eq!(modern.message().await["type"], "next");
    assert_eq!(legacy.message().await["type"], "data");
    assert_eq!(sse_events(&mut sse, 1).await[0].0, "next");

    assert_eq!(
        modern.closed().await,
        (4403, "Forbidden: the token has expired".to_string())
    );
    let error = legacy.message().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "l");
    assert_eq!(error["payload"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert_eq!(legacy.closed().await.0, 4403);
    let events = sse_events(&mut sse, 2).await;
    assert_eq!(events[0].0, "next");
    let data: serde_json::Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(data["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert_eq!(events[1].0, "complete");
    sse_ends(&mut sse).await;
    env.until("the upstream complete", || env.events.open() == 0)
        .await;
    for client in [&mut anonymous, &mut lasting] {
        client.send(json!({"type": "ping"})).await;
        assert_eq!(client.message().await, json!({"type": "pong"}));
    }
}

#[tokio::test]
async fn field_rate_limits_apply_to_subscriptions() {
    let env = start(|config| {
        config.rate_limit.fields.insert(
            "Subscription.ticks".into(),
            shippy_router::config::FieldRateLimit::parse("1 per 1h per user").unwrap(),
        );
    })
    .await;
    let mut client = Client::init(&env.ws_url, &token("alice")).await;
    client.subscribe("1", TICKS, json!({"from": 1})).await;
    env.until("the upstream subscription", || env.events.open() == 1)
        .await;
    client.subscribe("2", TICKS, json!({"from": 2})).await;
    let message = client.message().await;
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(message["id"], "2");
    assert_eq!(message["payload"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(env.events.subscribes.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn router_shutdown_ends_sse_streams() {
    let mut env = start(|_| {}).await;
    let mut response = reqwest::Client::new()
        .post(&env.url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .header("authorization", format!("Bearer {}", token("alice")))
        .body(json!({"query": TICKS, "variables": {"from": 1}}).to_string())
        .send()
        .await
        .unwrap();
    env.until("the upstream subscription", || env.events.open() == 1)
        .await;
    env.shut_down();
    // The stream ends (keep-alive comments aside) and the router stops.
    sse_ends(&mut response).await;
    let served = env.served.take().unwrap();
    tokio::time::timeout(WAIT, served)
        .await
        .expect("the router stopped")
        .unwrap()
        .unwrap();
    env.until("the upstream complete", || env.events.open() == 0)
        .await;
}

#[tokio::test]
async fn a_supergraph_swap_keeps_subscriptions_whose_fields_remain_and_ends_the_others() {
    let env = start(|_| {}).await;
    let mut client = Client::init(&env.ws_url, &token("alice")).await;
    client
        .subscribe("labelled", TICKS, json!({"from": 1}))
        .await;
    let numbers = "subscription($from: Int!) { ticks(from: $from) { n } }";
    client
        .subscribe("numbers", numbers, json!({"from": 1}))
        .await;
    env.until("both upstream subscriptions", || env.events.open() == 2)
        .await;
    let label = "  label: String! @join__field(graph: NAMES)\n";
    assert!(env.supergraph.contains(label));

    // A new field: every subscription still exists and keeps running.
    let added = env.supergraph.replace(
        label,
        &format!("{label}  title: String @join__field(graph: NAMES)\n"),
    );
    env.router.update_supergraph(added).await.unwrap();
    env.events.tick(1);
    let mut got = vec![client.message().await, client.message().await];
    got.sort_by_key(|m| m["id"].as_str().unwrap().to_string());
    assert_eq!(
        got,
        [
            json!({"type": "next", "id": "labelled", "payload": {"data": {"ticks": {"n": 1, "label": "tick t1"}}}}),
            json!({"type": "next", "id": "numbers", "payload": {"data": {"ticks": {"n": 1}}}}),
        ]
    );

    // `label` renamed: the subscription selecting it ends with a clear reason, the other stays.
    let renamed = env
        .supergraph
        .replace(label, "  title: String! @join__field(graph: NAMES)\n");
    env.router.update_supergraph(renamed).await.unwrap();
    let ended = client.message().await;
    assert_eq!(ended["type"], "error", "{ended}");
    assert_eq!(ended["id"], "labelled");
    assert_eq!(
        ended["payload"][0]["extensions"]["code"],
        "SUPERGRAPH_CHANGED"
    );
    env.until("the ended upstream subscription", || env.events.open() == 1)
        .await;
    env.events.tick(2);
    assert_eq!(
        client.message().await,
        json!({"type": "next", "id": "numbers", "payload": {"data": {"ticks": {"n": 2}}}})
    );
    // Subscribing again says why: the field is gone.
    client.subscribe("again", TICKS, json!({"from": 1})).await;
    let refused = client.message().await;
    assert_eq!(refused["id"], "again");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    assert_eq!(env.events.open(), 1);
}
