//! Tokens, identity propagation and `@authenticated` / `@requiresScopes`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value as Json, json};

use crate::harness::env;
use crate::support::*;

#[tokio::test]
async fn every_bad_token_is_a_401_and_no_token_is_anonymous() {
    let env = env().config(with_jwt).supergraph(secured).start().await;
    let good = claims("u1", &[]);
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 120);
    let mut early = good.clone();
    early["nbf"] = json!(now() + 600);
    let mut wrong_audience = good.clone();
    wrong_audience["aud"] = json!("elsewhere");
    let mut wrong_issuer = good.clone();
    wrong_issuer["iss"] = json!("evil");
    let unsigned = {
        let payload = hs256(&good).split('.').nth(1).unwrap().to_string();
        // {"alg":"none","typ":"JWT"}
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
    };
    let other_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(b"not-the-router-secret-not-the-router-secret"),
    )
    .unwrap();
    let other_algorithm = rs256(&good, "rs256-private.pem", None);
    let cases = [
        ("alg none", unsigned),
        ("wrong key", other_key),
        ("algorithm other than the key's", other_algorithm),
        ("expired", hs256(&expired)),
        ("not yet valid", hs256(&early)),
        ("wrong audience", hs256(&wrong_audience)),
        ("wrong issuer", hs256(&wrong_issuer)),
        ("garbage", "abc.def.ghi".to_string()),
    ];
    for (what, token) in cases {
        let reply = post_as(&env, "{ topProducts(first: 1) { upc } }", &token).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text);
        assert_eq!(reply.error_codes(), vec!["UNAUTHENTICATED"], "{what}");
        assert!(reply.headers.contains_key("www-authenticate"), "{what}");
    }
    // Not a bearer token at all.
    let reply = post(
        &env,
        "{ topProducts(first: 1) { upc } }",
        Json::Null,
        &[("authorization", "Basic dXNlcjpwYXNz")],
    )
    .await;
    assert_eq!(reply.status, 401);
    // No subgraph saw any of those requests.
    assert_eq!(env.knobs("products").calls(), 0);

    // No token: anonymous, the request runs.
    let reply = post(&env, "{ topProducts(first: 1) { upc } }", Json::Null, &[]).await;
    assert_eq!(
        reply.json(),
        json!({"data": {"topProducts": [{"upc": "1"}]}})
    );
    // A good token works.
    let reply = post_as(&env, "{ me { name } }", &hs256(&good)).await;
    assert_eq!(
        reply.json(),
        json!({"data": {"me": {"name": "Uri Goldshtein"}}})
    );
}

#[tokio::test]
async fn verified_claims_and_the_token_reach_subgraphs_as_configured() {
    let env = env()
        .config(|c| {
            with_jwt(c);
            c.subgraphs.insert(
                "products".into(),
                shippy_router::config::SubgraphOverride {
                    forward_claims: Some(false),
                    ..Default::default()
                },
            );
        })
        .start()
        .await;
    let token = hs256(&claims("u7", &["admin"]));
    let reply = post_as(
        &env,
        "{ me { name } topProducts(first: 1) { upc } }",
        &token,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let body: Json =
        serde_json::from_str(&env.knobs("accounts").bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(body["extensions"]["claims"]["sub"], "u7");
    assert_eq!(body["extensions"]["claims"]["scopes"], json!(["admin"]));
    let headers = env.knobs("accounts").headers.lock().unwrap()[0].clone();
    assert_eq!(headers["authorization"], format!("Bearer {token}"));

    // Turned off for products: the token still goes (the subgraph verifies it), the claims not.
    let body: Json =
        serde_json::from_str(&env.knobs("products").bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(body.get("extensions"), None, "{body}");
    assert!(env.knobs("products").headers.lock().unwrap()[0].contains_key("authorization"));

    // Anonymous requests carry no claims at all.
    post(&env, "{ me { name } }", Json::Null, &[]).await;
    let bodies = env.knobs("accounts").bodies.lock().unwrap().clone();
    let last: Json = serde_json::from_str(bodies.last().unwrap()).unwrap();
    assert_eq!(last.get("extensions"), None);
}

#[tokio::test]
async fn unauthorized_fields_are_null_with_errors_and_the_rest_runs() {
    let env = env().config(with_jwt).supergraph(secured).start().await;
    let query = "{ me { name } users { name } topProducts(first: 1) { upc } }";

    let anonymous = post(&env, query, Json::Null, &[]).await;
    assert_eq!(anonymous.status, 200);
    let json = anonymous.json();
    assert_eq!(
        json["data"],
        json!({"me": null, "users": null, "topProducts": [{"upc": "1"}]})
    );
    let errors = json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{json}");
    for (error, path) in errors.iter().zip([json!(["me"]), json!(["users"])]) {
        assert_eq!(error["extensions"]["code"], "UNAUTHORIZED_FIELD_OR_TYPE");
        assert_eq!(error["path"], path);
    }
    // Refused fields were never asked of the subgraph.
    assert_eq!(env.knobs("accounts").calls(), 0);

    // A token without the scope: `me` runs, `users` stays refused.
    let user = post_as(&env, query, &hs256(&claims("u1", &[])))
        .await
        .json();
    assert_eq!(user["data"]["me"], json!({"name": "Uri Goldshtein"}));
    assert_eq!(user["data"]["users"], Json::Null);
    assert_eq!(user["errors"].as_array().unwrap().len(), 1);

    // With the scope, everything.
    let admin = post_as(&env, query, &hs256(&claims("u1", &["admin"])))
        .await
        .json();
    assert_eq!(admin.get("errors"), None, "{admin}");
    assert!(!admin["data"]["users"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn scope_alternatives_and_refusals_inside_lists() {
    let env = env().config(with_jwt).supergraph(secured).start().await;
    let query = "{ me { birthday } }";
    // `birthday` takes `birthday:read` or `admin`.
    let reader = post_as(&env, query, &hs256(&claims("u1", &["birthday:read"]))).await;
    let json = reader.json();
    // The accounts subgraph refuses user 1's birthday itself; what matters is it was asked.
    assert_eq!(json["errors"][0]["extensions"]["code"], "SECRET", "{json}");
    let plain = post_as(&env, query, &hs256(&claims("u1", &["other"])))
        .await
        .json();
    assert_eq!(plain["data"], json!({"me": {"birthday": null}}));
    assert_eq!(
        plain["errors"][0]["extensions"]["code"],
        "UNAUTHORIZED_FIELD_OR_TYPE"
    );
    assert_eq!(plain["errors"][0]["path"], json!(["me", "birthday"]));

    // `User.id` is non-null and needs a token: anonymously each author becomes null (its only
    // nullable position), with one error for the whole list.
    let reply = post(
        &env,
        "{ topProducts(first: 2) { upc reviews { author { id username } } } }",
        Json::Null,
        &[],
    )
    .await
    .json();
    let products = reply["data"]["topProducts"].as_array().unwrap();
    assert_eq!(products.len(), 2);
    for product in products {
        for review in product["reviews"].as_array().unwrap() {
            assert_eq!(review["author"], Json::Null, "{reply}");
        }
    }
    let errors = reply["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{reply}");
    assert_eq!(
        errors[0]["path"],
        json!(["topProducts", "@", "reviews", "@", "author", "id"])
    );
}

#[tokio::test]
async fn skipped_guarded_fields_are_not_refused() {
    let env = env().config(with_jwt).supergraph(secured).start().await;
    let query = "query($withMe: Boolean!) { me @include(if: $withMe) { name } topProducts(first: 1) { upc } }";
    let reply = post(&env, query, json!({"withMe": false}), &[])
        .await
        .json();
    assert_eq!(reply, json!({"data": {"topProducts": [{"upc": "1"}]}}));
    let reply = post(&env, query, json!({"withMe": true}), &[]).await.json();
    assert_eq!(reply["errors"][0]["path"], json!(["me"]));
}

#[tokio::test]
async fn an_all_refused_mutation_reaches_no_subgraph() {
    let env = env()
        .config(with_jwt)
        .supergraph(|sdl| {
            secured(sdl).replacen(
                "updateName(id: ID!, name: String!): User @join__field(graph: ACCOUNTS)",
                "updateName(id: ID!, name: String!): User @join__field(graph: ACCOUNTS) @authenticated",
                1,
            )
        })
        .start()
        .await;
    let reply = post(
        &env,
        "mutation { updateName(id: \"1\", name: \"Mallory\") { id } }",
        Json::Null,
        &[],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["data"], json!({"updateName": null}));
    assert_eq!(reply.error_codes(), vec!["UNAUTHORIZED_FIELD_OR_TYPE"]);
    assert!(env.data.mutation_log.lock().unwrap().is_empty());
}

/// A key set server whose keys can be swapped, counting fetches.
async fn jwks_server(
    keys: Arc<Mutex<JwkSet>>,
    fetches: Arc<AtomicUsize>,
) -> (String, crate::mock::MockServer) {
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let keys = Arc::clone(&keys);
            let fetches = Arc::clone(&fetches);
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::to_string(&*keys.lock().unwrap()).unwrap();
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let server = crate::mock::MockServer::spawn(listener, app, std::future::pending());
    (url, server)
}

fn jwk(private_key: &str, kid: &str) -> Jwk {
    let pem = std::fs::read(key_file(private_key)).unwrap();
    let mut jwk =
        Jwk::from_encoding_key(&EncodingKey::from_rsa_pem(&pem).unwrap(), Algorithm::RS256)
            .unwrap();
    jwk.common.key_id = Some(kid.to_string());
    jwk
}

#[tokio::test]
async fn jwks_keys_are_fetched_rotated_and_not_hammered() {
    let keys = Arc::new(Mutex::new(JwkSet {
        keys: vec![jwk("rs256-private.pem", "k1")],
    }));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (url, _jwks) = jwks_server(Arc::clone(&keys), Arc::clone(&fetches)).await;
    let configure = |min_refresh: std::time::Duration| {
        let url = url.clone();
        move |c: &mut shippy_router::RouterConfig| {
            c.auth.jwt.jwks_url = Some(url);
            c.auth.jwt.jwks_min_refresh_interval = min_refresh;
            c.auth.jwt.issuers = vec!["shippy".into()];
        }
    };

    // Unknown kids may only trigger a fetch once per hour here.
    let env = env()
        .config(configure(std::time::Duration::from_secs(3600)))
        .start()
        .await;
    let k1 = rs256(&claims("u1", &[]), "rs256-private.pem", Some("k1"));
    let reply = post_as(&env, "{ me { name } }", &k1).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let after_first = fetches.load(Ordering::SeqCst);
    assert!(after_first >= 1);
    for _ in 0..3 {
        let forged = rs256(
            &claims("u1", &[]),
            "rs256-other-private.pem",
            Some("forged"),
        );
        assert_eq!(post_as(&env, "{ me { name } }", &forged).await.status, 401);
    }
    // The background refresh may have run once at start-up; forged kids added nothing.
    assert!(fetches.load(Ordering::SeqCst) <= after_first + 1);

    // Rotation: the issuer now signs with k2 only; a token with k2 makes the router re-fetch.
    let env = crate::harness::env()
        .config(configure(std::time::Duration::ZERO))
        .start()
        .await;
    assert_eq!(post_as(&env, "{ me { name } }", &k1).await.status, 200);
    *keys.lock().unwrap() = JwkSet {
        keys: vec![jwk("rs256-other-private.pem", "k2")],
    };
    let k2 = rs256(&claims("u1", &[]), "rs256-other-private.pem", Some("k2"));
    let reply = post_as(&env, "{ me { name } }", &k2).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // k1 is gone from the set.
    assert_eq!(post_as(&env, "{ me { name } }", &k1).await.status, 401);
}

#[tokio::test]
async fn an_unreachable_key_set_refuses_tokens_without_crashing() {
    let env = env()
        .config(|c| {
            c.auth.jwt.jwks_url = Some("http://127.0.0.1:1/jwks.json".into());
            c.auth.jwt.jwks_timeout = std::time::Duration::from_millis(500);
        })
        .start()
        .await;
    let token = rs256(&claims("u1", &[]), "rs256-private.pem", Some("k1"));
    let reply = post_as(&env, "{ me { name } }", &token).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error_codes(), vec!["UNAUTHENTICATED"]);
    // Anonymous requests are unaffected.
    assert_eq!(
        post(&env, "{ me { name } }", Json::Null, &[]).await.status,
        200
    );
}

/// Issue 14's claim matrix at the router's edge: with issuers and audiences configured, a token that
/// leaves either out is refused; `exp` and `nbf` share the leeway (30 s by default).
#[tokio::test]
async fn one_claim_policy_iss_aud_required_exp_and_nbf_share_the_leeway() {
    let env = env().config(with_jwt).supergraph(secured).start().await;
    let query = "{ me { name } }";
    for claim in ["iss", "aud", "exp"] {
        let mut token = claims("u1", &[]);
        token.as_object_mut().unwrap().remove(claim);
        let reply = post_as(&env, query, &hs256(&token)).await;
        assert_eq!(reply.status, 401, "without {claim}: {}", reply.text);
        assert_eq!(reply.error_codes(), vec!["UNAUTHENTICATED"]);
        assert!(reply.text.contains(&format!("`{claim}`")), "{}", reply.text);
    }
    let shifted = |claim: &str, by: i64| {
        let mut token = claims("u1", &[]);
        token[claim] = json!(now() + by);
        hs256(&token)
    };
    for (what, token, status) in [
        ("nbf within the leeway", shifted("nbf", 20), 200),
        ("nbf beyond it", shifted("nbf", 60), 401),
        ("exp within the leeway", shifted("exp", -20), 200),
        ("exp beyond it", shifted("exp", -60), 401),
    ] {
        let reply = post_as(&env, query, &token).await;
        assert_eq!(reply.status, status, "{what}: {}", reply.text);
    }
}

/// A `logout` elsewhere (here: written straight into the shared Redis store) makes every router that
/// reads the store refuse the token from its next request on, and only that token.
#[tokio::test]
async fn revoked_tokens_are_refused_by_every_router_sharing_the_store() {
    use shippy_security::revocation::{RedisRevocations, RevocationStore};
    let redis_url =
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!(
        "shippy:test:revoked:{}:{}:",
        std::process::id(),
        now_nanos()
    );
    let configure = |c: &mut shippy_router::RouterConfig| {
        with_jwt(c);
        c.auth.revocation.redis_url = Some(redis_url.clone());
        c.auth.revocation.key_prefix = prefix.clone();
    };
    let first = env().config(configure).supergraph(secured).start().await;
    let second = env().config(configure).supergraph(secured).start().await;
    let mut revoked = claims("u1", &[]);
    revoked["jti"] = json!("token-a");
    let mut kept = claims("u1", &[]);
    kept["jti"] = json!("token-b");
    let (revoked, kept) = (hs256(&revoked), hs256(&kept));
    for env in [&first, &second] {
        assert_eq!(post_as(env, "{ me { name } }", &revoked).await.status, 200);
    }

    let store =
        RedisRevocations::new(&redis_url, &prefix, std::time::Duration::from_secs(2)).unwrap();
    store.revoke("token-a", now() + 600).await.unwrap();
    for env in [&first, &second] {
        let reply = post_as(env, "{ me { name } }", &revoked).await;
        assert_eq!(reply.status, 401, "{}", reply.text);
        assert_eq!(reply.error_codes(), vec!["UNAUTHENTICATED"]);
        assert!(
            reply.text.contains("the token has been revoked"),
            "{}",
            reply.text
        );
        assert_eq!(post_as(env, "{ me { name } }", &kept).await.status, 200);
    }
}

/// The router tells subgraphs the client's address on mutations (for the user subgraph's login
/// limits), replacing whatever the client sent under that name; queries go without it, so identical
/// queries of different clients can still share one fetch.
#[tokio::test]
async fn mutations_carry_the_client_ip_set_by_the_router_alone() {
    let env = env()
        .config(|c| {
            c.subgraph_defaults
                .forward_headers
                .push("shippy-client-ip".into());
        })
        .start()
        .await;
    let spoofed = [("shippy-client-ip", "203.0.113.66")];
    let mutation = "mutation { updateName(id: \"2\", name: \"same\") { id } }";
    let reply = post(&env, mutation, Json::Null, &spoofed).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let headers = env.knobs("accounts").headers.lock().unwrap().clone();
    assert_eq!(headers.last().unwrap()["shippy-client-ip"], "127.0.0.1");

    let reply = post(&env, "{ me { name } }", Json::Null, &spoofed).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let headers = env.knobs("accounts").headers.lock().unwrap().clone();
    assert!(!headers.last().unwrap().contains_key("shippy-client-ip"));
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
