//! The router over real (in-process) subgraphs, through HTTP: the benchmark operation, GraphQL
//! over HTTP rules, failure handling, deduplication, caches, introspection and shutdown.

#[path = "common/mock.rs"]
mod mock;
mod http_api {
    pub mod harness;
    mod persisted;
    pub mod subgraphs;
    mod supergraph;
}

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value as Json, json};

use http_api::harness::{TestEnv, env, fixture};
use http_api::subgraphs::Mode;
use shippy_security::connections::testing::{idle_connections, stalled_body};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

fn get_url(base: &str, params: &[(&str, &str)]) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{base}/graphql?{query}")
}

#[tokio::test]
async fn bench_operation_returns_exactly_the_expected_response() {
    let env = env().start().await;
    let reply = env.post(&fixture("bench.operation.graphql")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.content_type,
        "application/graphql-response+json; charset=utf-8"
    );
    // Byte for byte: same fields, same order, nothing extra.
    assert_eq!(
        reply.text,
        fixture("bench.expected_response.json").trim_end()
    );
}

#[tokio::test]
async fn health_check_answers_once_serving() {
    let env = env().start().await;
    let reply = env
        .send(env.client.get(format!("{}/health", env.url)))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"status": "pass"}));
}

#[tokio::test]
async fn aliases_typename_and_fragments_shape_the_response() {
    let env = env().start().await;
    let reply = env
        .post("{ me { __typename handle: username id ... on User { who: name } } first: topProducts(first: 1) { upc } }")
        .await;
    assert_eq!(
        reply.text,
        r#"{"data":{"me":{"__typename":"User","handle":"urigo","id":"1","who":"Uri Goldshtein"},"first":[{"upc":"1"}]}}"#
    );
}

#[tokio::test]
async fn typename_only_needs_no_subgraph() {
    let env = env().start().await;
    let reply = env.post("{ __typename }").await;
    assert_eq!(reply.text, r#"{"data":{"__typename":"Query"}}"#);
    assert!(env.knobs.values().all(|k| k.calls() == 0));
}

#[tokio::test]
async fn skip_and_include_follow_variables_and_defaults() {
    let env = env().start().await;
    let query = "query($withName: Boolean = false, $skipId: Boolean!) { me { id @skip(if: $skipId) name @include(if: $withName) } }";
    let reply = env
        .post_with(GRAPHQL_RESPONSE, query, json!({"skipId": false}))
        .await;
    assert_eq!(reply.json(), json!({"data": {"me": {"id": "1"}}}));
    let reply = env
        .post_with(
            GRAPHQL_RESPONSE,
            query,
            json!({"skipId": true, "withName": true}),
        )
        .await;
    assert_eq!(
        reply.json(),
        json!({"data": {"me": {"name": "Uri Goldshtein"}}})
    );
}

#[tokio::test]
async fn requires_and_provides_across_subgraphs() {
    let env = env().start().await;
    let reply = env
        .post("{ topProducts(first: 2) { upc shippingEstimate reviews { author { username } } } }")
        .await;
    let json = reply.json();
    assert_eq!(json["data"]["topProducts"][0]["shippingEstimate"], 50);
    assert_eq!(json["data"]["topProducts"][1]["shippingEstimate"], 0);
    assert_eq!(
        json["data"]["topProducts"][0]["reviews"][0]["author"]["username"],
        "urigo"
    );
    // `username` is provided by reviews: accounts is never asked.
    assert_eq!(env.knobs("accounts").calls(), 0);
}

#[tokio::test]
async fn client_variables_named_like_the_planners_own_are_renamed() {
    let env = env().start().await;
    let query = "query($representations: Boolean!) { topProducts(first: 1) { upc reviews { id author @include(if: $representations) { name } } } }";
    for (flag, author) in [
        (true, json!({"name": "Uri Goldshtein"})),
        (false, Json::Null),
    ] {
        let reply = env
            .post_with(GRAPHQL_RESPONSE, query, json!({"representations": flag}))
            .await;
        let json = reply.json();
        assert_eq!(json.get("errors"), None, "{json}");
        let first = &json["data"]["topProducts"][0]["reviews"][0];
        assert_eq!(
            first.get("author").cloned().unwrap_or(Json::Null),
            author,
            "{json}"
        );
    }
    let bodies = env.knobs("reviews").bodies.lock().unwrap().clone();
    assert!(
        bodies
            .iter()
            .all(|b| b.matches("$representations:").count() == 1),
        "{bodies:?}"
    );
}

// ---- GraphQL over HTTP ----

#[tokio::test]
async fn get_runs_queries_with_url_parameters() {
    let env = env().start().await;
    let reply = env
        .send(
            env.client
                .get(get_url(
                    &env.url,
                    &[
                        ("query", "query Q($id: ID!) { user(id: $id) { name } }"),
                        ("variables", "{\"id\":\"2\"}"),
                        ("operationName", "Q"),
                    ],
                ))
                .header("apollo-require-preflight", "true"),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"data": {"user": {"name": "Dotan Simha"}}})
    );
}

#[tokio::test]
async fn get_refuses_mutations_with_405() {
    let env = env().start().await;
    let reply = env
        .send(
            env.client
                .get(get_url(
                    &env.url,
                    &[(
                        "query",
                        "mutation { updateName(id: \"1\", name: \"x\") { id } }",
                    )],
                ))
                .header("accept", GRAPHQL_RESPONSE)
                .header("apollo-require-preflight", "true"),
        )
        .await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.headers["allow"], "POST");
    assert_eq!(reply.error_codes(), vec!["OPERATION_NOT_ALLOWED"]);
    assert!(env.data.mutation_log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn request_errors_get_400_under_graphql_response_json() {
    let env = env().start().await;
    let parse = env.post("{ me { id }").await;
    assert_eq!(
        (parse.status, parse.error_codes()),
        (400, vec!["GRAPHQL_PARSE_FAILED".to_string()])
    );
    assert_eq!(parse.json().get("data"), None);
    let validation = env.post("{ me { nope } }").await;
    assert_eq!(
        (validation.status, validation.error_codes()),
        (400, vec!["GRAPHQL_VALIDATION_FAILED".to_string()])
    );
    let variables = env
        .post_with(
            GRAPHQL_RESPONSE,
            "query($id: ID!) { user(id: $id) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        (variables.status, variables.error_codes()),
        (400, vec!["BAD_USER_INPUT".to_string()])
    );
    let wrong_type = env
        .post_with(
            GRAPHQL_RESPONSE,
            "query($n: Int) { topProducts(first: $n) { upc } }",
            json!({"n": "ten"}),
        )
        .await;
    assert_eq!(wrong_type.status, 400);
}

#[tokio::test]
async fn request_errors_get_200_under_legacy_json() {
    let env = env().start().await;
    for query in ["{ me { id }", "{ me { nope } }"] {
        let reply = env.post_with("application/json", query, Json::Null).await;
        assert_eq!(reply.status, 200, "{query}");
        assert_eq!(reply.content_type, "application/json; charset=utf-8");
        assert!(reply.json()["errors"].is_array());
    }
}

#[tokio::test]
async fn malformed_http_requests_get_clear_4xx() {
    let env = env().start().await;
    let json_type = ("content-type", "application/json");
    let preflight = ("apollo-require-preflight", "true");
    type Case<'c> = (Method, Vec<(&'c str, &'c str)>, &'c str, u16);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            vec![preflight],
            r#"{"query":"{ me { id } }"}"#,
            415,
        ),
        (
            Method::POST,
            vec![("content-type", "text/plain"), preflight],
            r#"{"query":"{ me { id } }"}"#,
            415,
        ),
        // Without a preflight header, CSRF prevention answers first.
        (Method::POST, vec![], r#"{"query":"{ me { id } }"}"#, 400),
        (Method::POST, vec![json_type], "{not json", 400),
        (Method::POST, vec![json_type], r#"{"variables":{}}"#, 400),
        (
            Method::POST,
            vec![json_type],
            r#"[{"query":"{ me { id } }"}]"#,
            400,
        ),
        (
            Method::POST,
            vec![json_type, ("accept", "text/html")],
            r#"{"query":"{ me { id } }"}"#,
            406,
        ),
        (
            Method::PUT,
            vec![json_type],
            r#"{"query":"{ me { id } }"}"#,
            405,
        ),
        (Method::GET, vec![preflight], "", 400),
    ];
    for (method, headers, body, status) in cases {
        let reply = env.raw(method.clone(), &headers, body.to_string()).await;
        assert_eq!(
            reply.status, status,
            "{method} {headers:?} {body}: {}",
            reply.text
        );
        assert!(
            reply.json()["errors"][0]["extensions"]["code"].is_string(),
            "{}",
            reply.text
        );
    }
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let env = env().config(|c| c.http.max_body_size = 1024).start().await;
    let big = format!(
        r#"{{"query":"{{ me {{ id }} }}","variables":{{"pad":"{}"}}}}"#,
        "x".repeat(2048)
    );
    let reply = env
        .raw(Method::POST, &[("content-type", "application/json")], big)
        .await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error_codes(), vec!["MAX_BODY_SIZE_EXCEEDED"]);
    assert_eq!(reply.json()["errors"][0]["extensions"]["limit"], 1024);
}

#[tokio::test]
async fn token_limit_rejects_huge_queries() {
    let env = env().config(|c| c.limits.max_tokens = 50).start().await;
    let query = format!(
        "{{ {} }}",
        (0..60)
            .map(|i| format!("a{i}: __typename"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let reply = env.post(&query).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_codes(), vec!["MAX_TOKENS_EXCEEDED"]);
}

#[tokio::test]
async fn subscriptions_are_refused_over_plain_http() {
    let env = env().start().await;
    let reply = env.post("subscription { reviewAdded { id } }").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_codes(), vec!["UNSUPPORTED_OPERATION"]);
}

// ---- mutations ----

#[tokio::test]
async fn mutation_root_fields_run_in_order_and_are_never_deduplicated() {
    let env = env().start().await;
    let reply = env
        .post(
            r#"mutation {
                a: updateName(id: "1", name: "slow first") { name }
                b: updateName(id: "1", name: "second") { name }
                c: updateName(id: "1", name: "second") { name }
            }"#,
        )
        .await;
    assert_eq!(
        reply.json(),
        json!({"data": {"a": {"name": "slow first"}, "b": {"name": "second"}, "c": {"name": "second"}}})
    );
    assert_eq!(
        *env.data.mutation_log.lock().unwrap(),
        vec!["slow first", "second", "second"]
    );
}

// ---- failures ----

#[tokio::test]
async fn a_subgraph_that_is_down_gives_partial_data_and_a_named_error() {
    let env = env().down("inventory").start().await;
    let reply = env
        .post("{ topProducts(first: 2) { upc name inStock } }")
        .await;
    assert_eq!(reply.status, 200);
    let json = reply.json();
    assert_eq!(
        json["data"],
        json!({"topProducts": [{"upc": "1", "name": "Table", "inStock": null}, {"upc": "2", "name": "Couch", "inStock": null}]})
    );
    // One error per field the failed fetch left null, each with the code and the subgraph.
    let errors = json["errors"].as_array().unwrap();
    let paths: Vec<&Json> = errors.iter().map(|e| &e["path"]).collect();
    assert_eq!(
        paths,
        vec![
            &json!(["topProducts", 0, "inStock"]),
            &json!(["topProducts", 1, "inStock"])
        ],
        "{json}"
    );
    for error in errors {
        assert_eq!(error["extensions"]["code"], "SUBREQUEST_HTTP_ERROR");
        assert_eq!(error["extensions"]["service"], "inventory");
    }
}

#[tokio::test]
async fn a_failed_root_fetch_names_each_root_field_it_left_null() {
    let env = env().down("accounts").start().await;
    let reply = env.post("{ me { id } alias: me { name } }").await;
    let json = reply.json();
    assert_eq!(json["data"], json!({"me": null, "alias": null}));
    let errors = json["errors"].as_array().unwrap();
    let paths: Vec<&Json> = errors.iter().map(|e| &e["path"]).collect();
    assert_eq!(paths, vec![&json!(["me"]), &json!(["alias"])], "{json}");
    for error in errors {
        assert_eq!(error["extensions"]["code"], "SUBREQUEST_HTTP_ERROR");
        assert_eq!(error["extensions"]["service"], "accounts");
    }
}

#[tokio::test]
async fn a_slow_subgraph_times_out_without_hanging_the_request() {
    let env = env()
        .config(|c| {
            c.subgraphs.insert(
                "reviews".into(),
                shippy_router::config::SubgraphOverride {
                    timeout: Some(Duration::from_millis(200)),
                    ..Default::default()
                },
            );
        })
        .start()
        .await;
    env.knobs("reviews").set_delay(Duration::from_secs(5));
    let started = Instant::now();
    let reply = env.post("{ me { name reviews { id } } }").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let json = reply.json();
    assert_eq!(
        json["data"],
        json!({"me": {"name": "Uri Goldshtein", "reviews": null}})
    );
    assert_eq!(
        json["errors"][0]["extensions"]["code"],
        "SUBREQUEST_TIMEOUT"
    );
    assert_eq!(json["errors"][0]["extensions"]["service"], "reviews");
    assert_eq!(json["errors"][0]["path"], json!(["me", "reviews"]));
}

#[tokio::test]
async fn http_errors_and_garbage_from_subgraphs_are_reported() {
    let env = env().start().await;
    env.knobs("accounts").set_mode(Mode::Http500);
    let reply = env.post("{ me { id } }").await;
    assert_eq!(reply.json()["data"], json!({"me": null}));
    assert_eq!(reply.error_codes(), vec!["SUBREQUEST_HTTP_ERROR"]);
    assert!(
        !reply.text.contains("exploded"),
        "subgraph internals leaked: {}",
        reply.text
    );

    env.knobs("accounts").set_mode(Mode::Garbage);
    let reply = env.post("{ me { id } }").await;
    assert_eq!(reply.error_codes(), vec!["SUBREQUEST_MALFORMED_RESPONSE"]);

    env.knobs("accounts").set_mode(Mode::Normal);
    assert_eq!(
        env.post("{ me { id } }").await.json(),
        json!({"data": {"me": {"id": "1"}}})
    );
}

#[tokio::test]
async fn entity_errors_are_repathed_to_the_client_paths() {
    // accounts answers the one deduplicated representation with an error at `_entities.0`.
    let env = env()
        .canned("accounts", |body| {
            assert!(body.contains(r#""representations":[{"__typename":"User","id":"1"}]"#), "{body}");
            let response = json!({
                "data": {"_entities": [{"birthday": null}]},
                "errors": [{"message": "birthday is secret", "path": ["_entities", 0, "birthday"],
                            "locations": [{"line": 1, "column": 2}], "extensions": {"code": "SECRET"}}]
            });
            (200, response.to_string())
        })
        .start()
        .await;
    // Product 1 has four reviews, all by user 1: the error is reported at each client path.
    let reply = env
        .post("{ topProducts(first: 1) { reviews { id author { id birthday } } } }")
        .await;
    let json = reply.json();
    let reviews = json["data"]["topProducts"][0]["reviews"]
        .as_array()
        .unwrap();
    assert_eq!(reviews.len(), 4);
    assert!(
        reviews
            .iter()
            .all(|r| r["author"] == json!({"id": "1", "birthday": null})),
        "{json}"
    );
    let errors = json["errors"].as_array().unwrap();
    let paths: Vec<&Json> = errors.iter().map(|e| &e["path"]).collect();
    let expected: Vec<Json> = (0..4)
        .map(|i| json!(["topProducts", 0, "reviews", i, "author", "birthday"]))
        .collect();
    assert_eq!(paths, expected.iter().collect::<Vec<_>>());
    for error in errors {
        assert_eq!(error["message"], "birthday is secret");
        assert_eq!(error["extensions"]["code"], "SECRET");
        assert_eq!(error["extensions"]["service"], "accounts");
        // Locations point into the subgraph's query, meaningless to the client.
        assert!(error.get("locations").is_none());
    }
}

#[tokio::test]
async fn root_fetch_errors_keep_their_path() {
    let env = env().start().await;
    let reply = env
        .post("{ user(id: \"1\") { birthday } other: user(id: \"3\") { birthday } }")
        .await;
    let json = reply.json();
    // (async-graphql nulls `user` itself here; the router passes that through.)
    assert_eq!(json["data"]["other"], json!({"birthday": 3000}));
    assert_eq!(json["errors"][0]["path"], json!(["user", "birthday"]));
    assert_eq!(json["errors"][0]["extensions"]["code"], "SECRET");
    assert_eq!(json["errors"][0]["extensions"]["service"], "accounts");
}

#[tokio::test]
async fn a_wrong_number_of_entities_is_a_malformed_response() {
    let env = env()
        .canned("accounts", |_| {
            (200, r#"{"data":{"_entities":[]}}"#.to_string())
        })
        .start()
        .await;
    let reply = env
        .post("{ topProducts(first: 1) { reviews { author { name } } } }")
        .await;
    let json = reply.json();
    assert_eq!(
        json["data"]["topProducts"][0]["reviews"][0]["author"],
        json!({"name": null})
    );
    assert_eq!(reply.error_codes(), vec!["SUBREQUEST_MALFORMED_RESPONSE"]);
}

#[tokio::test]
async fn absurdly_nested_subgraph_responses_are_an_error_not_a_crash() {
    let env = env()
        .canned("accounts", |_| {
            let depth = 100_000;
            (
                200,
                format!(
                    r#"{{"data":{{"me":{{"id":"1","name":{}1{}}}}}}}"#,
                    "[".repeat(depth),
                    "]".repeat(depth)
                ),
            )
        })
        .start()
        .await;
    let reply = env.post("{ me { id name } }").await;
    assert_eq!(reply.json()["data"], json!({"me": null}));
    assert_eq!(reply.error_codes(), vec!["SUBREQUEST_MALFORMED_RESPONSE"]);
}

#[tokio::test]
async fn non_null_violations_propagate_with_one_error() {
    // accounts claims user 1 has no id (`User.id: ID!`): `me` becomes null with one error.
    let env = env()
        .canned("accounts", |_| {
            (200, r#"{"data":{"me":{"id":null,"name":"x"}}}"#.to_string())
        })
        .start()
        .await;
    let reply = env.post("{ me { id name } }").await;
    let json = reply.json();
    assert_eq!(json["data"], json!({"me": null}));
    assert_eq!(json["errors"][0]["path"], json!(["me", "id"]));
    assert_eq!(
        json["errors"][0]["extensions"]["code"],
        "NON_NULL_VIOLATION"
    );
    assert_eq!(json["errors"].as_array().unwrap().len(), 1);
}

// ---- deduplication and caches ----

#[tokio::test]
async fn identical_concurrent_queries_share_one_subgraph_call() {
    // Inbound deduplication would share these before they reach the subgraph client.
    let env = env().config(|c| c.http.dedupe = false).start().await;
    env.knobs("accounts").set_delay(Duration::from_millis(300));
    let (a, b, c) = tokio::join!(
        env.post("{ me { name } }"),
        env.post("{ me { name } }"),
        env.post("{ me { name } }")
    );
    for reply in [a, b, c] {
        assert_eq!(
            reply.json(),
            json!({"data": {"me": {"name": "Uri Goldshtein"}}})
        );
    }
    assert_eq!(env.knobs("accounts").calls(), 1);
}

#[tokio::test]
async fn deduplication_can_be_switched_off_per_subgraph() {
    let env = env()
        .config(|c| {
            c.http.dedupe = false;
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
    let (a, b) = tokio::join!(env.post("{ me { name } }"), env.post("{ me { name } }"));
    assert_eq!(a.text, b.text);
    assert_eq!(env.knobs("accounts").calls(), 2);
}

#[tokio::test]
async fn plans_are_cached_by_normalized_operation() {
    let env = env().start().await;
    env.post("{ me { id name } }").await;
    env.post("{ me { id name } }").await;
    // Different text, same normalized operation.
    env.post("query { me { id, name } }").await;
    let stats = env.router.cache_stats();
    assert_eq!((stats.operation_misses, stats.operation_hits), (2, 1));
    assert_eq!((stats.plan_misses, stats.plan_hits), (1, 1));
    assert_eq!(stats.plans_cached, 1);
}

#[tokio::test]
async fn concurrent_first_requests_prepare_and_plan_once() {
    let env = env().start().await;
    let query = "{ users { id name } }";
    let replies = futures::future::join_all((0..8).map(|_| env.post(query))).await;
    assert!(replies.iter().all(|r| r.status == 200));
    let stats = env.router.cache_stats();
    assert_eq!((stats.operation_misses, stats.operation_hits), (1, 7));
    assert_eq!(stats.plan_misses, 1);
}

#[tokio::test]
async fn planning_time_limit_gives_a_clear_error() {
    let env = env()
        .config(|c| c.query_planning.timeout = Duration::ZERO)
        .start()
        .await;
    let reply = env.post(&fixture("bench.operation.graphql")).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.error_codes(), vec!["QUERY_PLANNING_FAILED"]);
    assert_eq!(
        reply.json()["errors"][0]["message"],
        "Query planning took too long"
    );
}

#[tokio::test]
async fn connections_per_subgraph_are_limited() {
    let env = env()
        .config(|c| {
            c.http.dedupe = false;
            c.subgraphs.insert(
                "accounts".into(),
                shippy_router::config::SubgraphOverride {
                    max_connections: Some(1),
                    dedupe: Some(false),
                    ..Default::default()
                },
            );
        })
        .start()
        .await;
    env.knobs("accounts").set_delay(Duration::from_millis(150));
    let replies = futures::future::join_all((0..3).map(|_| env.post("{ me { id } }"))).await;
    assert!(
        replies
            .iter()
            .all(|r| r.json() == json!({"data": {"me": {"id": "1"}}}))
    );
    assert_eq!(env.knobs("accounts").calls(), 3);
    assert_eq!(
        env.knobs("accounts")
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn plan_cache_is_bounded() {
    let env = env()
        .config(|c| c.query_planning.cache_size = 2)
        .start()
        .await;
    for field in ["id", "name", "username", "birthday"] {
        env.post(&format!("{{ me {{ {field} }} }}")).await;
    }
    assert!(env.router.cache_stats().plans_cached <= 2);
}

// ---- headers ----

#[tokio::test]
async fn authorization_and_traceparent_are_forwarded() {
    let env = env().start().await;
    env.send(
        env.client
            .post(format!("{}/graphql", env.url))
            .header("content-type", "application/json")
            .header("authorization", "Bearer abc")
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .header("cookie", "secret=1")
            .body(r#"{"query":"{ me { id } }"}"#),
    )
    .await;
    let headers = env.knobs("accounts").headers.lock().unwrap().clone();
    assert_eq!(headers[0]["authorization"], "Bearer abc");
    assert_eq!(
        headers[0]["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert!(headers[0].get("cookie").is_none());
}

#[tokio::test]
async fn header_rules_shape_each_subgraphs_requests_and_reload_live() {
    use shippy_router::config::{HeaderRules, RequestHeaderRule};
    let rules = |subgraph_rule: RequestHeaderRule| {
        move |c: &mut shippy_router::RouterConfig| {
            c.headers.all.request = vec![
                RequestHeaderRule::Propagate {
                    named: None,
                    matching: Some("^x-feature-".into()),
                    rename: None,
                    default: None,
                },
                RequestHeaderRule::Propagate {
                    named: Some("x-tenant".into()),
                    matching: None,
                    rename: Some("x-org".into()),
                    default: Some("public".into()),
                },
            ];
            c.headers.subgraphs.insert(
                "accounts".into(),
                HeaderRules {
                    request: vec![subgraph_rule],
                    ..HeaderRules::default()
                },
            );
        }
    };
    let remove_features = RequestHeaderRule::Remove {
        named: None,
        matching: Some("^x-feature-".into()),
    };
    let env = env().config(rules(remove_features)).start().await;
    let query = r#"{"query":"{ me { id reviews { product { upc } } } }"}"#;
    let send = || async {
        env.send(
            env.client
                .post(format!("{}/graphql", env.url))
                .header("content-type", "application/json")
                .header("x-feature-dark", "on")
                .header("x-tenant", "acme")
                .header("shippy-router-signature", "forged")
                .body(query),
        )
        .await
    };
    assert_eq!(send().await.status, 200);
    let last = |subgraph: &str| {
        env.knobs(subgraph)
            .headers
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap()
    };
    let reviews = last("reviews");
    assert_eq!(reviews["x-feature-dark"], "on");
    assert_eq!(reviews["x-org"], "acme");
    assert!(reviews.get("x-tenant").is_none(), "renamed");
    let accounts = last("accounts");
    assert!(
        accounts.get("x-feature-dark").is_none(),
        "removed for accounts only"
    );
    assert_eq!(accounts["x-org"], "acme");
    assert!(
        accounts.get("shippy-router-signature").is_none(),
        "a client's value of a router-owned header never passes"
    );

    // A reload applies new rules to the next request.
    let mut config = shippy_router::RouterConfig::default();
    rules(RequestHeaderRule::Insert {
        name: "x-router".into(),
        value: "shippy".into(),
    })(&mut config);
    assert!(env.router.reload(config).unwrap().applied);
    assert_eq!(send().await.status, 200);
    let accounts = last("accounts");
    assert_eq!(accounts["x-router"], "shippy");
    assert_eq!(accounts["x-feature-dark"], "on");

    // Rules for a subgraph the supergraph does not have are refused, and change nothing.
    let mut unknown = shippy_router::RouterConfig::default();
    unknown
        .headers
        .subgraphs
        .insert("nope".into(), HeaderRules::default());
    assert!(env.router.reload(unknown).is_err());
}

#[tokio::test]
async fn response_rules_pass_subgraph_headers_on_and_merge_cache_control() {
    use shippy_router::config::{HeaderRules, MergeAlgorithm, ResponseHeaderRule};
    let env = env()
        .canned("accounts", |body| {
            if body.contains("updateName") {
                (200, r#"{"data":{"updateName":{"id":"1"}}}"#.to_string())
            } else if body.contains("boom") {
                (
                    200,
                    r#"{"data":{"me":null},"errors":[{"message":"boom"}]}"#.to_string(),
                )
            } else {
                (200, r#"{"data":{"me":{"id":"1"}}}"#.to_string())
            }
        })
        .canned_headers(
            "accounts",
            vec![
                ("cache-control", "public, max-age=60, s-maxage=30"),
                ("x-served-by", "accounts-7"),
                ("x-internal", "secret"),
            ],
        )
        .config(|c| {
            c.headers.merge_cache_control = true;
            c.headers.all = HeaderRules {
                response: vec![
                    ResponseHeaderRule::Propagate {
                        named: Some("x-served-by".into()),
                        matching: None,
                        rename: Some("x-backend".into()),
                        default: None,
                        algorithm: MergeAlgorithm::Append,
                    },
                    ResponseHeaderRule::Propagate {
                        named: Some("x-region".into()),
                        matching: None,
                        rename: None,
                        default: Some("unknown".into()),
                        algorithm: MergeAlgorithm::Last,
                    },
                ],
                ..HeaderRules::default()
            };
        })
        .start()
        .await;
    let query = env.post("{ me { id } }").await;
    assert_eq!(query.text, r#"{"data":{"me":{"id":"1"}}}"#);
    assert_eq!(
        query.headers["cache-control"],
        "public, max-age=60, s-maxage=30"
    );
    assert_eq!(query.headers["x-backend"], "accounts-7");
    assert_eq!(
        query.headers["x-region"], "unknown",
        "the default when no subgraph sent it"
    );
    assert!(
        query.headers.get("x-internal").is_none(),
        "only what a rule names"
    );

    let failed = env.post("{ me { id boom: id } }").await;
    assert_eq!(
        failed.headers["cache-control"], "no-store",
        "{}",
        failed.text
    );
    let mutation = env
        .post(r#"mutation { updateName(id: "1", name: "x") { id } }"#)
        .await;
    assert_eq!(mutation.status, 200, "{}", mutation.text);
    assert_eq!(mutation.headers["cache-control"], "no-store");
}

/// The bench supergraph with `Query.me` moved from accounts to reviews under `label`.
fn override_me(label: &'static str) -> impl FnOnce(String) -> String {
    move |sdl| {
        sdl.replace(
            "  me: User @join__field(graph: ACCOUNTS)",
            &format!(
                "  me: User @join__field(graph: REVIEWS, override: \"accounts\", overrideLabel: \"{label}\") @join__field(graph: ACCOUNTS)"
            ),
        )
        .replace(
            "  usedOverridden: Boolean\n",
            "  usedOverridden: Boolean\n  overrideLabel: String\n",
        )
    }
}

/// Reviews answering `me` with a user of its own, so the side that served is visible.
fn reviews_knows_me(body: &str) -> (u16, String) {
    assert!(body.contains("me"), "reviews got {body}");
    (200, r#"{"data":{"me":{"id":"from-reviews"}}}"#.to_string())
}

/// How many of `n` requests for `me` the reviews subgraph served.
async fn served_by_reviews(env: &TestEnv, n: usize, headers: &[(&str, &str)]) -> usize {
    let mut reviews = 0;
    for _ in 0..n {
        let mut request = env
            .client
            .post(format!("{}/graphql", env.url))
            .header("content-type", "application/json")
            .body(r#"{"query":"{ me { id } }"}"#);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let reply = env.send(request).await;
        match reply.text.as_str() {
            r#"{"data":{"me":{"id":"from-reviews"}}}"# => reviews += 1,
            r#"{"data":{"me":{"id":"1"}}}"# => {}
            other => panic!("unexpected answer {other}"),
        }
    }
    reviews
}

#[tokio::test]
async fn progressive_override_routes_a_share_of_requests() {
    for (label, n, low, high) in [
        ("percent(0)", 200, 0, 0),
        ("percent(100)", 200, 200, 200),
        // Binomial(1000, 0.5): 400..=600 is more than six standard deviations wide.
        ("percent(50)", 1000, 400, 600),
    ] {
        let env = env()
            .supergraph(override_me(label))
            .canned("reviews", reviews_knows_me)
            .start()
            .await;
        let served = served_by_reviews(&env, n, &[]).await;
        assert!(
            (low..=high).contains(&served),
            "{label}: reviews served {served} of {n}"
        );
    }
}

#[tokio::test]
async fn a_label_can_be_put_in_effect_by_header() {
    let env = env()
        .supergraph(override_me("beta"))
        .canned("reviews", reviews_knows_me)
        .config(|c| c.override_labels.header = Some("x-override-labels".into()))
        .start()
        .await;
    assert_eq!(served_by_reviews(&env, 20, &[]).await, 0, "off by default");
    assert_eq!(
        served_by_reviews(&env, 20, &[("x-override-labels", "alpha, beta")]).await,
        20
    );
}

#[tokio::test]
async fn too_many_override_labels_refuse_the_supergraph() {
    let mut config = shippy_router::RouterConfig::default();
    config.override_labels.max_labels = 0;
    let sdl = override_me("beta")(http_api::harness::supergraph_with_mutation());
    let error = shippy_router::Router::from_supergraph_sdl(&sdl, config)
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("override_labels.max_labels"),
        "{error}"
    );
}

// ---- @inaccessible runtime types ----

#[tokio::test]
async fn an_inaccessible_object_fetched_for_a_requires_through_nested_interfaces_is_null() {
    // `interface Item implements Node`; Book.summary requires
    // `related { ... on Node { id ... on Item { title } } }`, and b1's `related` is a Draft, a
    // type the API schema does not have.
    let representations = Arc::new(std::sync::Mutex::new(Vec::<Json>::new()));
    let seen = Arc::clone(&representations);
    let env = env()
        .supergraph(|_| fixture("inaccessible-requires.supergraph.graphql"))
        .canned("products", |body| {
            assert!(body.contains("books"), "catalog got {body}");
            (
                200,
                json!({ "data": { "books": [
                    { "__typename": "Book", "id": "b1", "title": "Dune",
                      "related": { "__typename": "Draft", "id": "d1", "title": "Untitled" } },
                    { "__typename": "Book", "id": "b2", "title": "Emma",
                      "related": { "__typename": "Book", "id": "b1", "title": "Dune" } },
                ] } })
                .to_string(),
            )
        })
        .canned("reviews", move |body| {
            let request: Json = serde_json::from_str(body).unwrap();
            let reps = request["variables"]["representations"]
                .as_array()
                .unwrap()
                .clone();
            let entities: Vec<Json> = reps
                .iter()
                .map(|rep| {
                    let related = &rep["related"];
                    json!({ "summary": format!("see {}: {}",
                        related["id"].as_str().unwrap_or("?"),
                        related["title"].as_str().unwrap_or("?")) })
                })
                .collect();
            seen.lock().unwrap().extend(reps);
            (
                200,
                json!({ "data": { "_entities": entities } }).to_string(),
            )
        })
        .start()
        .await;
    let reply = env
        .post("{ books { id summary related { __typename ... on Node { id ... on Item { title } } } } }")
        .await;
    assert_eq!(
        reply.text,
        r#"{"data":{"books":[{"id":"b1","summary":"see d1: Untitled","related":null},{"id":"b2","summary":"see b1: Dune","related":{"__typename":"Book","id":"b1","title":"Dune"}}]}}"#
    );
    // The requiring subgraph got the draft: requirements are internal.
    let sent = representations.lock().unwrap().clone();
    assert!(
        sent.iter()
            .any(|rep| rep["related"]["id"] == "d1" && rep["related"]["title"] == "Untitled"),
        "{sent:?}"
    );
    // Asked without its type name, the draft is still null.
    let reply = env.post("{ books { related { id } } }").await;
    assert_eq!(
        reply.text,
        r#"{"data":{"books":[{"related":null},{"related":{"id":"b1"}}]}}"#
    );
}

// ---- introspection ----

#[tokio::test]
async fn introspection_is_answered_by_the_router_without_internals() {
    let env = env().start().await;
    let reply = env
        .post(
            r#"{ __schema { queryType { name } mutationType { name } types { name kind } directives { name } }
                 user: __type(name: "User") { kind fields { name type { kind name ofType { name } } } }
                 me { id } }"#,
        )
        .await;
    let json = reply.json();
    let types: Vec<&str> = json["data"]["__schema"]["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"User") && types.contains(&"__Schema") && types.contains(&"String"));
    assert!(
        types
            .iter()
            .all(|t| !t.starts_with("join__") && !t.starts_with("link__")),
        "{types:?}"
    );
    assert_eq!(
        json["data"]["__schema"]["queryType"],
        json!({"name": "Query"})
    );
    assert_eq!(
        json["data"]["__schema"]["mutationType"],
        json!({"name": "Mutation"})
    );
    let fields: Vec<&str> = json["data"]["user"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec!["id", "name", "username", "birthday", "reviews"]
    );
    assert_eq!(
        json["data"]["user"]["fields"][0]["type"],
        json!({"kind": "NON_NULL", "name": null, "ofType": {"name": "ID"}})
    );
    assert_eq!(json["data"]["me"], json!({"id": "1"}));
}

#[tokio::test]
async fn introspection_can_be_turned_off() {
    let env = env().config(|c| c.introspection = false).start().await;
    let reply = env.post("{ __schema { types { name } } }").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_codes(), vec!["INTROSPECTION_DISABLED"]);
    assert_eq!(env.post("{ __typename }").await.status, 200);
}

// ---- lifecycle ----

#[tokio::test]
async fn serve_stops_when_shutdown_completes() {
    let router = shippy_router::Router::from_supergraph_sdl(
        &fixture("bench.supergraph.graphql").replace("0.0.0.0:4200", "127.0.0.1:9"),
        shippy_router::RouterConfig::default(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(router.serve(listener, async move {
        let _ = rx.await;
    }));
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returned")
        .unwrap()
        .unwrap();
}

#[test]
fn unusable_configuration_is_a_startup_error() {
    let sdl = fixture("bench.supergraph.graphql");
    let mut config = shippy_router::RouterConfig::default();
    config.subgraphs.insert("nope".into(), Default::default());
    let err = shippy_router::Router::from_supergraph_sdl(&sdl, config)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("`nope`"), "{err}");
    let err = shippy_router::Router::from_supergraph_sdl(
        &sdl.replace("http://0.0.0.0:4200/accounts", "ftp://x"),
        shippy_router::RouterConfig::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("accounts"), "{err}");
}

/// The slow-client attack on the router: idle sockets past the connection cap are refused at
/// once, a client already connected keeps being answered in time, and once the header timeout has
/// closed the idle ones a new client gets in.
#[tokio::test]
async fn idle_connections_cannot_starve_the_router() {
    use tokio::io::AsyncReadExt;
    let env = env()
        .config(|c| {
            c.http.connections.max_connections = 16;
            c.http.connections.max_connections_per_ip = 16;
            c.http.connections.header_read_timeout = Duration::from_millis(1500);
        })
        .start()
        .await;
    let addr = env.url.trim_start_matches("http://").to_owned();
    // Connected before the flood (reqwest keeps the connection for the next request).
    assert_eq!(env.post("{ me { id } }").await.status, 200);

    let held = idle_connections(addr.parse().unwrap(), 60).await;
    assert_eq!(
        held.len(),
        15,
        "the cap of 16 holds the client and 15 idle sockets"
    );

    let started = Instant::now();
    let reply = env.post("{ me { id } }").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(started.elapsed() < Duration::from_secs(1));

    for mut stream in held {
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(
            read.is_ok(),
            "an idle connection outlived the header timeout"
        );
    }
    let fresh = reqwest::Client::new()
        .post(format!("{}/graphql", env.url))
        .header("content-type", "application/json")
        .body(json!({"query": "{ me { id } }"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);
}

#[tokio::test]
async fn one_client_address_cannot_take_every_connection() {
    let env = env()
        .config(|c| c.http.connections.max_connections_per_ip = 2)
        .start()
        .await;
    let addr: std::net::SocketAddr = env.url.trim_start_matches("http://").parse().unwrap();
    let connect_from = |ip: [u8; 4]| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((ip, 0).into()).unwrap();
        socket.connect(addr).await.unwrap()
    };
    let status_on = |mut stream: tokio::net::TcpStream| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: router\r\n\r\n")
            .await;
        let mut head = [0u8; 12];
        let status = match stream.read_exact(&mut head).await {
            Ok(_) => String::from_utf8_lossy(&head[9..12]).into_owned(),
            Err(_) => "closed".to_owned(),
        };
        (status, stream)
    };
    let (first, _a) = status_on(connect_from([127, 0, 0, 1]).await).await;
    let (second, _b) = status_on(connect_from([127, 0, 0, 1]).await).await;
    assert_eq!((first.as_str(), second.as_str()), ("200", "200"));
    let (third, _) = status_on(connect_from([127, 0, 0, 1]).await).await;
    assert_eq!(third, "503", "a third connection from the same address");
    let (other, _) = status_on(connect_from([127, 0, 0, 2]).await).await;
    assert_eq!(other, "200", "another address still gets in");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let env = env()
        .config(|c| c.http.connections.body_read_timeout = Duration::from_millis(300))
        .start()
        .await;
    let addr = env.url.trim_start_matches("http://").parse().unwrap();
    let response = stalled_body(addr, "/graphql").await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("\"REQUEST_TIMEOUT\""), "{response}");
}
