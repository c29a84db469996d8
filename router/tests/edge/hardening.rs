//! Operation limits, CSRF prevention, suggestions, and inbound deduplication.

use std::time::Duration;

use serde_json::Value as Json;

use crate::harness::env;
use crate::support::*;

#[tokio::test]
async fn each_operation_limit_is_a_400_naming_it() {
    let env = env()
        .config(|c| {
            c.limits.max_depth = 3;
            c.limits.max_aliases = 2;
            c.limits.max_root_fields = 2;
            c.limits.max_directives_per_field = 1;
        })
        .start()
        .await;
    let cases = [
        (
            "{ me { reviews { product { upc } } } }",
            "MAX_DEPTH_EXCEEDED",
            3,
        ),
        ("{ me { a: id b: id c: id } }", "MAX_ALIASES_EXCEEDED", 2),
        (
            "{ me { id } users { id } topProducts { upc } }",
            "MAX_ROOT_FIELDS_EXCEEDED",
            2,
        ),
        (
            "{ me { id @include(if: true) @skip(if: false) } }",
            "MAX_DIRECTIVES_EXCEEDED",
            1,
        ),
    ];
    for (query, code, limit) in cases {
        let reply = post(&env, query, Json::Null, &[]).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
        assert_eq!(reply.error_codes(), vec![code], "{query}");
        assert_eq!(reply.json()["errors"][0]["extensions"]["limit"], limit);
    }
    // Within every limit.
    let reply = post(&env, "{ me { a: id b: id } users { id } }", Json::Null, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // Nothing over a limit reached a subgraph.
    assert_eq!(env.knobs("reviews").calls(), 0);
}

#[tokio::test]
async fn csrf_prevention_blocks_simple_requests_without_a_preflight_header() {
    let env = env().start().await;
    let url = format!("{}/graphql?query=%7B__typename%7D", env.url);
    let blocked = env.send(env.client.get(&url)).await;
    assert_eq!(blocked.status, 400);
    assert_eq!(blocked.error_codes(), vec!["CSRF_PREFLIGHT_REQUIRED"]);
    for header in ["apollo-require-preflight", "x-apollo-operation-name"] {
        let allowed = env.send(env.client.get(&url).header(header, "1")).await;
        assert_eq!(allowed.status, 200, "{header}");
    }
    // A form post (a "simple" request) is blocked before its body is read.
    let form = env
        .raw(
            reqwest::Method::POST,
            &[("content-type", "application/x-www-form-urlencoded")],
            "query=%7B__typename%7D",
        )
        .await;
    assert_eq!(form.error_codes(), vec!["CSRF_PREFLIGHT_REQUIRED"]);
    // JSON needs a preflight anyway.
    assert_eq!(
        post(&env, "{ __typename }", Json::Null, &[]).await.status,
        200
    );

    let open = crate::harness::env()
        .config(|c| c.csrf.enabled = false)
        .start()
        .await;
    assert_eq!(
        open.send(
            open.client
                .get(format!("{}/graphql?query=%7B__typename%7D", open.url))
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn suggestions_are_hidden_when_introspection_is_off() {
    let on = env().start().await;
    let reply = post(&on, "{ me { nmae } }", Json::Null, &[]).await;
    assert!(
        reply.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Did you mean \"name\"?"),
        "{}",
        reply.text
    );
    let off = env().config(|c| c.introspection = false).start().await;
    let reply = post(&off, "{ me { nmae } }", Json::Null, &[]).await;
    assert_eq!(reply.error_codes(), vec!["GRAPHQL_VALIDATION_FAILED"]);
    assert!(!reply.text.contains("Did you mean"), "{}", reply.text);
}

#[tokio::test]
async fn identical_inflight_queries_share_one_execution_per_identity() {
    let env = env()
        .config(|c| {
            with_jwt(c);
            // Outbound deduplication off: only the inbound one can share.
            c.subgraphs.insert(
                "accounts".into(),
                shippy_router::config::SubgraphOverride {
                    dedupe: Some(false),
                    ..Default::default()
                },
            );
        })
        .start()
        .await;
    env.knobs("accounts").set_delay(Duration::from_millis(300));
    let query = "{ me { name } }";
    let (a, b, c) = tokio::join!(
        post(&env, query, Json::Null, &[]),
        post(&env, query, Json::Null, &[]),
        post(&env, query, Json::Null, &[])
    );
    assert_eq!(a.text, b.text);
    assert_eq!(b.text, c.text);
    assert_eq!(env.knobs("accounts").calls(), 1);

    // Different callers never share.
    let alice = hs256(&claims("alice", &[]));
    let bob = hs256(&claims("bob", &[]));
    let (a, b) = tokio::join!(post_as(&env, query, &alice), post_as(&env, query, &bob));
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(env.knobs("accounts").calls(), 3);

    // Mutations never share.
    let mutation = "mutation { updateName(id: \"2\", name: \"same\") { id } }";
    let (a, b) = tokio::join!(
        post(&env, mutation, Json::Null, &[]),
        post(&env, mutation, Json::Null, &[])
    );
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(env.data.mutation_log.lock().unwrap().len(), 2);

    // Turned off: each query runs.
    let separate = crate::harness::env()
        .config(|c| {
            c.http.dedupe = false;
            c.subgraph_defaults.dedupe = false;
        })
        .start()
        .await;
    separate
        .knobs("accounts")
        .set_delay(Duration::from_millis(300));
    let _ = tokio::join!(
        post(&separate, query, Json::Null, &[]),
        post(&separate, query, Json::Null, &[])
    );
    assert_eq!(separate.knobs("accounts").calls(), 2);
}
