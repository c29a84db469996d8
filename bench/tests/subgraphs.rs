//! The benchmark subgraphs agree with the published expected response, without any router of ours:
//! the monolith answers the operation with exactly that response, and every fetch of the real query
//! plan (from the same planner our router wraps), sent to the subgraphs with inputs taken from the
//! expected response, comes back consistent with it. So a router that executes the plan correctly can
//! only produce the expected response, and a mismatch in a benchmark run is the router's fault.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use hive_router_query_planner::{
    ast::{
        normalization::normalize_operation, selection_item::SelectionItem,
        selection_set::SelectionSet,
    },
    planner::{
        Planner, QueryPlannerOptions,
        plan_nodes::{FlattenNodePathSegment, PlanNode},
    },
    utils::{
        cancellation::CancellationToken,
        parsing::{safe_parse_operation, safe_parse_schema},
    },
};
use serde_json::{Value, json};
use shippy_bench::{
    client,
    json::{Json, first_difference},
    subgraphs::{self, SubgraphOptions},
    workload,
};
use tokio::{net::TcpListener, sync::oneshot};

/// The subgraph server on a free port; dropped, it shuts down.
struct Server {
    base: String,
    _stop: oneshot::Sender<()>,
}

async fn start(options: SubgraphOptions) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(subgraphs::serve(listener, options, async {
        let _ = stopped.await;
    }));
    Server { base, _stop: stop }
}

async fn post(url: &str, body: Value) -> (u16, Bytes) {
    let (status, body) = client::post_once(url, Bytes::from(body.to_string()))
        .await
        .unwrap();
    (status.as_u16(), body)
}

async fn post_json(url: &str, body: Value) -> Value {
    let (status, body) = post(url, body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn monolith_answers_exactly_the_expected_response() {
    for memoize in [false, true] {
        let server = start(SubgraphOptions {
            memoize,
            ..SubgraphOptions::default()
        })
        .await;
        let url = format!("{}/monolith", server.base);
        let body =
            json!({ "query": workload::OPERATION, "operationName": workload::OPERATION_NAME });
        let expected = Json::parse(workload::EXPECTED_RESPONSE.as_bytes()).unwrap();
        // Twice: the second answer is the memoized one when memoizing.
        for _ in 0..2 {
            let (status, bytes) = post(&url, body.clone()).await;
            assert_eq!(status, 200);
            let actual = Json::parse(&bytes).unwrap();
            assert_eq!(
                first_difference(&expected, &actual),
                None,
                "memoize: {memoize}"
            );
        }
    }
}

#[tokio::test]
async fn every_fetch_of_the_plan_agrees_with_the_expected_response() {
    let server = start(SubgraphOptions {
        memoize: false,
        ..SubgraphOptions::default()
    })
    .await;
    let supergraph = safe_parse_schema(&workload::supergraph_for(&server.base)).unwrap();
    let planner =
        Planner::new_from_supergraph(&supergraph, QueryPlannerOptions::default()).unwrap();
    let operation = safe_parse_operation(workload::OPERATION).unwrap();
    let normalized = normalize_operation(
        &planner.supergraph,
        &operation,
        Some(workload::OPERATION_NAME),
    )
    .unwrap();
    let plan = planner
        .plan_from_normalized_operation(
            &normalized.operation,
            Default::default(),
            &CancellationToken::with_timeout(std::time::Duration::from_secs(10)),
        )
        .unwrap();

    let mut calls = Vec::new();
    collect_calls(plan.node.as_ref().expect("a plan"), None, &mut calls);
    let expected: Value = serde_json::from_str(workload::EXPECTED_RESPONSE).unwrap();
    let data = &expected["data"];

    let mut services = BTreeSet::new();
    for call in &calls {
        services.insert(call.service);
        let url = format!("{}/{}", server.base, call.service);
        let context = format!("{} fetch {}", call.service, call.query);
        if call.entities.is_empty() {
            let response = post_json(&url, json!({ "query": call.query })).await;
            assert_no_errors(&response, &context);
            assert_within(&response["data"], data, &context);
            continue;
        }
        // Per entity list: deduplicated representations, and which one each object became.
        let mut variables = serde_json::Map::new();
        let mut expectations = Vec::new();
        for entities in &call.entities {
            let mut objects = Vec::new();
            for path in &entities.paths {
                objects_at(data, path, &mut objects);
            }
            assert!(
                !objects.is_empty(),
                "{context}: nothing at {:?}",
                entities.paths
            );
            let mut representations: Vec<Value> = Vec::new();
            let mut index_of: HashMap<String, usize> = HashMap::new();
            let mut pairs = Vec::new();
            for object in objects {
                let rep = project(object, entities.requires, None);
                let index = *index_of.entry(rep.to_string()).or_insert_with(|| {
                    representations.push(rep.clone());
                    representations.len() - 1
                });
                pairs.push((object, index));
            }
            expectations.push((entities.response_key, representations.len(), pairs));
            variables.insert(entities.variable.to_owned(), Value::Array(representations));
        }
        let response =
            post_json(&url, json!({ "query": call.query, "variables": variables })).await;
        assert_no_errors(&response, &context);
        for (key, count, pairs) in expectations {
            let entities = response["data"][key]
                .as_array()
                .unwrap_or_else(|| panic!("{context}: no {key} list"));
            assert_eq!(entities.len(), count, "{context}");
            for (object, index) in pairs {
                assert_within(&entities[index], object, &context);
            }
        }
    }
    assert_eq!(
        services,
        BTreeSet::from(workload::SUBGRAPH_NAMES),
        "the plan uses all four subgraphs"
    );
    assert!(
        calls.iter().any(|c| c.query.contains("shippingEstimate")),
        "@requires is exercised"
    );
    assert!(
        calls.iter().any(|c| c.entities.len() > 1),
        "a batched entity fetch is exercised"
    );
}

#[tokio::test]
async fn sdls_carry_the_federation_directives_the_supergraph_relies_on() {
    let server = start(SubgraphOptions::default()).await;
    let expectations: [(&str, &[&str]); 4] = [
        (
            "accounts",
            &["type User @key(fields: \"id\")", "users: [User]"],
        ),
        (
            "products",
            &[
                "type Product @key(fields: \"upc\")",
                "topProducts(first: Int = 5): [Product]",
            ],
        ),
        (
            "inventory",
            &[
                "type Product @key(fields: \"upc\")",
                "price: Int @external",
                "shippingEstimate: Int @requires(fields: \"price weight\")",
            ],
        ),
        (
            "reviews",
            &[
                "author: User @provides(fields: \"username\")",
                "username: String @external",
                "reviewAdded(step: Int = 1, intervalInMs: Int = 1000): Review",
            ],
        ),
    ];
    for (name, needles) in expectations {
        let response = post_json(
            &format!("{}/{name}", server.base),
            json!({ "query": "{ _service { sdl } }" }),
        )
        .await;
        let sdl = response["data"]["_service"]["sdl"]
            .as_str()
            .expect("an SDL");
        assert!(sdl.contains("federation/v2"), "{name} speaks Federation v2");
        for needle in needles {
            assert!(sdl.contains(needle), "{name} SDL lacks `{needle}`:\n{sdl}");
        }
    }
}

#[tokio::test]
async fn bad_requests_get_a_400_with_a_code() {
    let server = start(SubgraphOptions::default()).await;
    let url = format!("{}/accounts", server.base);
    let (status, body) = client::post_once(&url, Bytes::from_static(b"{not json"))
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");

    // A GraphQL error is an answer (200 with `errors`), and is not memoized.
    for _ in 0..2 {
        let response = post_json(&url, json!({ "query": "{ nope }" })).await;
        assert!(
            response["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("nope"),
            "{response}"
        );
    }
}

#[tokio::test]
async fn health_answers_ok() {
    let server = start(SubgraphOptions::default()).await;
    let ready = client::wait_ready(
        &format!("{}/health", server.base),
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(ready.unwrap());
}

/// One request of the plan to one subgraph.
struct Call<'a> {
    service: &'a str,
    query: &'a str,
    /// The entity lists it resolves; none for a root fetch.
    entities: Vec<EntityList<'a>>,
}

/// One `_entities` selection of a call: where its objects are and what their representations hold.
struct EntityList<'a> {
    /// The variable holding the representations.
    variable: &'a str,
    /// The key of the answer in the response's `data`.
    response_key: &'a str,
    paths: Vec<&'a [FlattenNodePathSegment]>,
    requires: &'a SelectionSet,
}

/// The plan's subgraph requests in plan order; `path` is the enclosing flatten path, if any.
fn collect_calls<'a>(
    node: &'a PlanNode,
    path: Option<&'a [FlattenNodePathSegment]>,
    out: &mut Vec<Call<'a>>,
) {
    match node {
        PlanNode::Fetch(fetch) => {
            let no_rewrites = |r: &Option<Vec<_>>| r.as_ref().is_none_or(Vec::is_empty);
            assert!(
                no_rewrites(&fetch.input_rewrites) && no_rewrites(&fetch.output_rewrites),
                "rewrites are not expected here"
            );
            let entities = path.map(|path| EntityList {
                variable: "representations",
                response_key: "_entities",
                paths: vec![path],
                requires: fetch
                    .requires
                    .as_ref()
                    .expect("entity fetches say what they require"),
            });
            out.push(Call {
                service: &fetch.service_name,
                query: &fetch.operation.document_str,
                entities: entities.into_iter().collect(),
            });
        }
        PlanNode::BatchFetch(batch) => {
            let entities = batch
                .entity_batch
                .aliases
                .iter()
                .map(|alias| {
                    let no_rewrites = |r: &Option<Vec<_>>| r.as_ref().is_none_or(Vec::is_empty);
                    assert!(
                        no_rewrites(&alias.input_rewrites) && no_rewrites(&alias.output_rewrites),
                        "rewrites are not expected here"
                    );
                    EntityList {
                        variable: &alias.representations_variable_name,
                        response_key: &alias.alias,
                        paths: alias.merge_paths.iter().map(|p| p.as_slice()).collect(),
                        requires: &alias.requires,
                    }
                })
                .collect();
            out.push(Call {
                service: &batch.service_name,
                query: &batch.operation.document_str,
                entities,
            });
        }
        PlanNode::Sequence(s) => s.nodes.iter().for_each(|n| collect_calls(n, path, out)),
        PlanNode::Parallel(p) => p.nodes.iter().for_each(|n| collect_calls(n, path, out)),
        PlanNode::Flatten(f) => collect_calls(&f.node, Some(f.path.as_slice()), out),
        other => panic!("the benchmark plan is not expected to contain {other:?}"),
    }
}

/// The non-null objects of the expected response at a flatten path.
fn objects_at<'a>(value: &'a Value, path: &[FlattenNodePathSegment], out: &mut Vec<&'a Value>) {
    match path.split_first() {
        None => {
            if value.is_object() {
                out.push(value);
            }
        }
        Some((FlattenNodePathSegment::Field(name), rest)) => {
            if let Some(inner) = value.get(name) {
                objects_at(inner, rest, out);
            }
        }
        Some((FlattenNodePathSegment::List, rest)) => {
            for item in value.as_array().into_iter().flatten() {
                objects_at(item, rest, out);
            }
        }
        Some((FlattenNodePathSegment::TypeCondition(types), _)) => {
            panic!("type conditions {types:?} need __typename, which the expected response lacks")
        }
    }
}

/// `object` reduced to what `selections` asks for: a representation. The expected response has no
/// `__typename`, so it comes from the enclosing fragment's type condition.
fn project(object: &Value, selections: &SelectionSet, typename: Option<&str>) -> Value {
    let mut out = serde_json::Map::new();
    for item in &selections.items {
        match item {
            SelectionItem::InlineFragment(fragment) => {
                if let Value::Object(fields) =
                    project(object, &fragment.selections, Some(&fragment.type_condition))
                {
                    out.extend(fields);
                }
            }
            SelectionItem::Field(field) if field.name == "__typename" => {
                out.insert(
                    "__typename".into(),
                    typename.expect("a type condition").into(),
                );
            }
            SelectionItem::Field(field) => {
                let value = &object[field.name.as_str()];
                let value = if field.selections.is_empty() {
                    value.clone()
                } else {
                    project(value, &field.selections, None)
                };
                out.insert(field.name.clone(), value);
            }
            SelectionItem::FragmentSpread(name) => {
                panic!("unexpected fragment spread {name} in requires")
            }
        }
    }
    Value::Object(out)
}

fn assert_no_errors(response: &Value, context: &str) {
    assert!(response.get("errors").is_none(), "{context}: {response}");
}

/// Every field a subgraph returned is in the expected response with the same value (`__typename`
/// aside, which the client did not ask for); lists have the same length.
fn assert_within(actual: &Value, expected: &Value, context: &str) {
    match (actual, expected) {
        (Value::Object(fields), Value::Object(expected_fields)) => {
            for (key, value) in fields {
                if key == "__typename" {
                    assert!(value.is_string(), "{context}: __typename {value}");
                    continue;
                }
                let expected_value = expected_fields
                    .get(key)
                    .unwrap_or_else(|| panic!("{context}: unexpected field {key}"));
                assert_within(value, expected_value, context);
            }
        }
        (Value::Array(items), Value::Array(expected_items)) => {
            assert_eq!(items.len(), expected_items.len(), "{context}");
            for (item, expected_item) in items.iter().zip(expected_items) {
                assert_within(item, expected_item, context);
            }
        }
        _ => assert_eq!(actual, expected, "{context}"),
    }
}
