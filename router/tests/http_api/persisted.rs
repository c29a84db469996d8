//! Persisted documents over HTTP: automatic persisted queries (POST and GET), trusted documents
//! from a manifest file or URL, and the safelist of `persisted_documents.only`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use super::harness::{Reply, TestEnv, env};

const QUERY: &str = "{ topProducts(first: 1) { upc } }";
const ANSWER: &str = r#"{"data":{"topProducts":[{"upc":"1"}]}}"#;

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn apq(hash: &str) -> Json {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

async fn post_json(env: &TestEnv, body: Json) -> Reply {
    env.raw(
        Method::POST,
        &[
            ("content-type", "application/json"),
            ("accept", "application/graphql-response+json"),
        ],
        body.to_string(),
    )
    .await
}

async fn get(env: &TestEnv, params: &[(&str, &str)]) -> Reply {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    env.send(
        env.client
            .get(format!("{}/graphql?{query}", env.url))
            .header("accept", "application/graphql-response+json")
            .header("apollo-require-preflight", "true"),
    )
    .await
}

fn apollo_manifest(documents: &[(&str, &str)]) -> String {
    let operations: Vec<Json> = documents
        .iter()
        .map(|(id, body)| json!({ "id": id, "body": body, "name": null, "type": "query" }))
        .collect();
    json!({ "format": "apollo-persisted-query-manifest", "version": 1, "operations": operations })
        .to_string()
}

#[tokio::test]
async fn apq_registers_on_the_second_request_then_serves_post_and_get_by_hash() {
    let env = env().start().await;
    let hash = sha256(QUERY);
    let extensions = apq(&hash).to_string();

    let miss = post_json(&env, json!({ "extensions": apq(&hash) })).await;
    assert_eq!(miss.status, 400, "{}", miss.text);
    assert_eq!(miss.error_codes(), ["PERSISTED_QUERY_NOT_FOUND"]);
    let get_miss = get(&env, &[("extensions", &extensions)]).await;
    assert_eq!(get_miss.error_codes(), ["PERSISTED_QUERY_NOT_FOUND"]);

    let registered = post_json(&env, json!({ "query": QUERY, "extensions": apq(&hash) })).await;
    assert_eq!((registered.status, registered.text.as_str()), (200, ANSWER));

    let by_hash = post_json(&env, json!({ "extensions": apq(&hash) })).await;
    assert_eq!((by_hash.status, by_hash.text.as_str()), (200, ANSWER));
    // GET with the hash alone: the URL a CDN can cache.
    let by_get = get(&env, &[("extensions", &extensions)]).await;
    assert_eq!((by_get.status, by_get.text.as_str()), (200, ANSWER));

    let mismatch = post_json(
        &env,
        json!({ "query": "{ __typename }", "extensions": apq(&hash) }),
    )
    .await;
    assert_eq!(mismatch.error_codes(), ["PERSISTED_QUERY_HASH_MISMATCH"]);
    // Legacy JSON clients get the error with a 200, as APQ links expect.
    let legacy = env
        .raw(
            Method::POST,
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            json!({ "extensions": apq(&sha256("{ unknown }")) }).to_string(),
        )
        .await;
    assert_eq!(legacy.status, 200);
    assert_eq!(legacy.error_codes(), ["PERSISTED_QUERY_NOT_FOUND"]);
}

#[tokio::test]
async fn apq_off_refuses_hashes_alone() {
    let env = env()
        .config(|c| c.persisted_documents.apq = false)
        .start()
        .await;
    let hash = sha256(QUERY);
    let reply = post_json(&env, json!({ "query": QUERY, "extensions": apq(&hash) })).await;
    assert_eq!(reply.text, ANSWER, "the text still runs");
    let reply = post_json(&env, json!({ "extensions": apq(&hash) })).await;
    assert_eq!(reply.error_codes(), ["PERSISTED_QUERY_NOT_SUPPORTED"]);
}

#[tokio::test]
async fn the_safelist_runs_only_manifest_documents() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    let hash = sha256(QUERY);
    std::fs::write(&manifest, apollo_manifest(&[(&hash, QUERY)])).unwrap();
    let path = manifest.display().to_string();
    let env = env()
        .config(move |c| {
            c.persisted_documents.manifest = Some(path);
            c.persisted_documents.only = true;
        })
        .start()
        .await;

    let by_id = post_json(&env, json!({ "documentId": hash })).await;
    assert_eq!((by_id.status, by_id.text.as_str()), (200, ANSWER));
    let by_get = get(&env, &[("documentId", &hash)]).await;
    assert_eq!(by_get.text, ANSWER);
    let by_apq_hash = post_json(&env, json!({ "extensions": apq(&hash) })).await;
    assert_eq!(by_apq_hash.text, ANSWER);
    let listed_text = env.post(QUERY).await;
    assert_eq!(
        listed_text.text, ANSWER,
        "a listed document sent as text runs"
    );

    let free = env.post("{ topProducts(first: 2) { upc } }").await;
    assert_eq!(free.status, 400);
    assert_eq!(free.error_codes(), ["PERSISTED_QUERY_NOT_IN_LIST"]);
    let registering = post_json(
        &env,
        json!({ "query": "{ __typename }", "extensions": apq(&sha256("{ __typename }")) }),
    )
    .await;
    assert_eq!(registering.error_codes(), ["PERSISTED_QUERY_NOT_IN_LIST"]);
    let introspection = env.post("{ __schema { queryType { name } } }").await;
    assert_eq!(introspection.error_codes(), ["PERSISTED_QUERY_NOT_IN_LIST"]);
    let unknown = post_json(&env, json!({ "documentId": "nope" })).await;
    assert_eq!(unknown.error_codes(), ["PERSISTED_QUERY_NOT_FOUND"]);
    let both = post_json(&env, json!({ "documentId": hash, "query": QUERY })).await;
    assert_eq!(both.error_codes(), ["BAD_REQUEST"]);
}

#[tokio::test]
async fn introspection_can_pass_the_safelist_in_development() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, json!({ "products": QUERY }).to_string()).unwrap();
    let path = manifest.display().to_string();
    let env = env()
        .config(move |c| {
            c.persisted_documents.manifest = Some(path);
            c.persisted_documents.only = true;
            c.persisted_documents.allow_introspection = true;
        })
        .start()
        .await;
    let by_id = post_json(&env, json!({ "documentId": "products" })).await;
    assert_eq!(by_id.text, ANSWER, "a plain id -> document map works too");
    let introspection = env
        .post("query IntrospectionQuery { __schema { queryType { name } } ...T } fragment T on Query { __typename }")
        .await;
    assert_eq!(
        introspection.text,
        r#"{"data":{"__schema":{"queryType":{"name":"Query"}},"__typename":"Query"}}"#
    );
    // Introspection beside a real field is not introspection.
    let smuggled = env
        .post("{ __schema { queryType { name } } topProducts(first: 1) { upc } }")
        .await;
    assert_eq!(smuggled.error_codes(), ["PERSISTED_QUERY_NOT_IN_LIST"]);
}

/// A manifest server: its document can be changed, it answers `If-None-Match` with 304 and
/// counts what it served; it requires `x-cdn-key: k1`.
struct ManifestServer {
    url: String,
    document: Arc<std::sync::Mutex<(String, u32)>>,
    full: Arc<AtomicUsize>,
    not_modified: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl ManifestServer {
    async fn start(document: String) -> ManifestServer {
        let state = Arc::new(std::sync::Mutex::new((document, 1u32)));
        let full = Arc::new(AtomicUsize::new(0));
        let not_modified = Arc::new(AtomicUsize::new(0));
        let (served, unchanged, shared) = (full.clone(), not_modified.clone(), state.clone());
        let app = axum::Router::new().route(
            "/manifest.json",
            axum::routing::get(move |headers: HeaderMap| {
                let (served, unchanged, shared) =
                    (served.clone(), unchanged.clone(), shared.clone());
                async move {
                    if headers.get("x-cdn-key").and_then(|v| v.to_str().ok()) != Some("k1") {
                        return (StatusCode::FORBIDDEN, HeaderMap::new(), String::new());
                    }
                    let (document, version) = shared.lock().unwrap().clone();
                    let etag = format!("\"v{version}\"");
                    let mut reply = HeaderMap::new();
                    reply.insert("etag", etag.parse().unwrap());
                    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(&etag) {
                        unchanged.fetch_add(1, Ordering::SeqCst);
                        return (StatusCode::NOT_MODIFIED, reply, String::new());
                    }
                    served.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::OK, reply, document)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/manifest.json", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ManifestServer {
            url,
            document: state,
            full,
            not_modified,
            _task: task,
        }
    }

    fn replace(&self, document: String) {
        let mut current = self.document.lock().unwrap();
        *current = (document, current.1 + 1);
    }
}

/// Polls until `documentId` answers `expected` (the manifest is fetched in the background).
async fn until_served(env: &TestEnv, id: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = post_json(env, json!({ "documentId": id })).await;
        if reply.text == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{id}` never served {expected}; last: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_manifest_url_is_polled_with_etags_and_its_changes_served() {
    let server = ManifestServer::start(json!({ "one": QUERY }).to_string()).await;
    let url = server.url.clone();
    let env = env()
        .config(move |c| {
            c.persisted_documents.manifest = Some(url);
            c.persisted_documents.only = true;
            c.persisted_documents.manifest_refresh_interval = Duration::from_secs(1);
            c.persisted_documents.manifest_auth_header = Some("X-CDN-Key: k1".into());
        })
        .start()
        .await;
    until_served(&env, "one", ANSWER).await;
    // Unchanged polls send If-None-Match and get a 304.
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.not_modified.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no poll was answered 304");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    server.replace(json!({ "one": QUERY, "two": "{ topProducts(first: 2) { upc } }" }).to_string());
    until_served(
        &env,
        "two",
        r#"{"data":{"topProducts":[{"upc":"1"},{"upc":"2"}]}}"#,
    )
    .await;
    // A broken deployment of the manifest keeps the documents held.
    server.replace("{ not json".into());
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.full.load(Ordering::SeqCst) < 3 {
        assert!(
            Instant::now() < deadline,
            "the broken manifest was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = post_json(&env, json!({ "documentId": "two" })).await;
    assert_eq!(kept.status, 200, "{}", kept.text);
}
