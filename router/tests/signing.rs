//! The router signs every subgraph request with `subgraph_signing.key`: the HTTP fetch of a query
//! and the WebSocket upgrade of a subscription carry a `shippy-router-signature` that the subgraph
//! it was sent to (and no other) accepts; without a key, requests go unsigned.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, Uri};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use shippy_router::config::Secret;
use shippy_router::{Router, RouterConfig};
use shippy_security::signing::{
    Credential, CredentialError, DEFAULT_MAX_SKEW, RequestVerifier, SIGNATURE_HEADER,
};

const JWT_SECRET: &str = "signing-tests-jwt-secret-0123456789abcdef";
const KEY: &str = "signing-tests-router-key-0123456789abcdef";
const SUPERGRAPH: &str = include_str!("../../schema/supergraph.graphql");

/// One request a subgraph received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A stand-in for every subgraph: records each request, answers queries with `null` data and
/// accepts WebSocket upgrades only to close them.
async fn subgraph(State(log): State<Log>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    log.lock().unwrap().push(Seen {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers: parts.headers.clone(),
        body,
    });
    use axum::extract::FromRequestParts;
    match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade
            .protocols(["graphql-transport-ws"])
            .on_upgrade(|socket| async move { drop(socket) })
            .into_response(),
        Err(_) => axum::Json(json!({ "data": { "findAvailableVessel": null } })).into_response(),
    }
}

async fn start(key: Option<&str>) -> (String, Log) {
    let log: Log = Arc::default();
    let mock = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock_addr = mock.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/graphql", axum::routing::any(subgraph))
        .with_state(log.clone());
    tokio::spawn(async move { axum::serve(mock, app).await.unwrap() });

    let mut config = RouterConfig::default();
    config.auth.jwt.secret = Some(Secret::new(JWT_SECRET));
    config.subgraph_signing.key = key.map(Secret::new);
    for name in ["user", "vessel", "consignment", "log"] {
        config.subgraphs.entry(name.into()).or_default().url =
            Some(format!("http://{mock_addr}/graphql"));
    }
    let router = Router::from_supergraph_sdl(SUPERGRAPH, config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    tokio::spawn(router.serve(listener, std::future::pending()));
    (url, log)
}

fn verifier(audience: &str) -> RequestVerifier {
    RequestVerifier::new(audience, &[KEY], &[] as &[&str], DEFAULT_MAX_SKEW).unwrap()
}

fn check(seen: &Seen, audience: &str) -> Result<Credential, CredentialError> {
    verifier(audience).verify(&seen.method, &seen.uri, &seen.headers, &seen.body)
}

async fn query(url: &str) {
    let resp = reqwest::Client::new()
        .post(url)
        .json(&json!({ "query": "{ findAvailableVessel(capacity: 1, maxWeight: 1) { id } }" }))
        // A client cannot smuggle a signature of its own through.
        .header(SIGNATURE_HEADER.as_str(), "t=1,v1=00")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn subgraph_fetches_are_signed_for_their_subgraph() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (url, log) = start(Some(KEY)).await;
    query(&url).await;
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let fetch = &seen[0];
    assert_eq!(fetch.headers.get_all(SIGNATURE_HEADER).iter().count(), 1);
    assert_eq!(check(fetch, "vessel"), Ok(Credential::Signature));
    // Not valid for another subgraph, nor with its body changed.
    assert_eq!(check(fetch, "user"), Err(CredentialError::BadSignature));
    let mut tampered = fetch.clone();
    tampered.body = Bytes::from_static(br#"{"query":"{ users { email } }"}"#);
    assert_eq!(
        check(&tampered, "vessel"),
        Err(CredentialError::BadSignature)
    );
}

#[tokio::test]
async fn without_a_key_requests_go_unsigned() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (url, log) = start(None).await;
    query(&url).await;
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].headers.get(SIGNATURE_HEADER).is_none());
    assert_eq!(check(&seen[0], "vessel"), Err(CredentialError::Missing));
}

#[tokio::test]
async fn subscription_upgrades_are_signed_for_their_subgraph() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (url, log) = start(Some(KEY)).await;
    let claims = json!({
        "sub": "u1", "iss": "shippy", "aud": "shippy",
        "exp": shippy_security::signing::unix_now() + 600,
    });
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    // Over SSE: the router opens the upstream WebSocket while the stream is open.
    let stream = reqwest::Client::new()
        .post(&url)
        .header("accept", "text/event-stream")
        .bearer_auth(token)
        .json(&json!({ "query": "subscription { logAdded { id } }" }))
        .send();
    let _stream = tokio::time::timeout(Duration::from_secs(20), stream).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let upgrade = loop {
        let found = log
            .lock()
            .unwrap()
            .iter()
            .find(|seen| seen.method == Method::GET)
            .cloned();
        if let Some(upgrade) = found {
            break upgrade;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the router never opened the subscription upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(upgrade.body.is_empty());
    assert_eq!(check(&upgrade, "log"), Ok(Credential::Signature));
    assert_eq!(
        check(&upgrade, "consignment"),
        Err(CredentialError::BadSignature)
    );
}
