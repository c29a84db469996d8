//! Loading supergraphs, refusing unusable ones, and plans for known shapes.

use std::time::Duration;

use super::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn plan(planner: &QueryPlanner, query: &str) -> QueryPlan {
    let doc = graphql_tools::parser::parse_query::<String>(query)
        .unwrap()
        .into_static();
    let normalized = planner.normalize(&doc, None).unwrap();
    planner.plan(&normalized, Duration::from_secs(10)).unwrap()
}

#[test]
fn loads_subgraphs_in_declaration_order() {
    let planner = QueryPlanner::new(&fixture("bench.supergraph.graphql")).unwrap();
    let names: Vec<&str> = planner
        .subgraphs()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, vec!["accounts", "inventory", "products", "reviews"]);
    assert_eq!(planner.subgraphs()[0].url, "http://0.0.0.0:4200/accounts");
}

#[test]
fn api_schema_has_no_federation_internals() {
    let planner = QueryPlanner::new(&fixture("abstract-types.supergraph.graphql")).unwrap();
    let sdl = planner.api_schema().to_string();
    for internal in ["join__", "link__", "@link", "@inaccessible", "@join"] {
        assert!(!sdl.contains(internal), "API schema leaks {internal}");
    }
    assert!(sdl.contains("type Query"));
}

#[test]
fn refuses_unusable_supergraphs() {
    let err = |sdl: &str| {
        QueryPlanner::new(sdl)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(err("type Query {").contains("not valid GraphQL SDL"));
    assert!(err("type Query { a: Int }").contains("not a Federation v2 supergraph"));
    let bench = fixture("bench.supergraph.graphql");
    let old_join = bench.replace("join/v0.3", "join/v0.2");
    assert!(
        err(&old_join).contains("join v0.2 is not supported"),
        "{}",
        err(&old_join)
    );
    let auth = bench.replacen(
        "@link(url: \"https://specs.apollo.dev/join/v0.3\", for: EXECUTION)",
        "@link(url: \"https://specs.apollo.dev/join/v0.3\", for: EXECUTION) @link(url: \"https://specs.apollo.dev/policy/v0.1\", for: SECURITY)",
        1,
    );
    assert!(
        err(&auth).contains("does not implement that feature"),
        "{}",
        err(&auth)
    );
    let no_graphs = bench.replace("enum join__Graph", "enum join__Graphs");
    assert!(!err(&no_graphs).is_empty());
}

#[test]
fn accepts_join_v05_and_tag_links() {
    let sdl = fixture("bench.supergraph.graphql")
        .replace("join/v0.3", "join/v0.5")
        .replacen("@link(url: \"https://specs.apollo.dev/link/v1.0\")", "@link(url: \"https://specs.apollo.dev/link/v1.0\") @link(url: \"https://specs.apollo.dev/tag/v0.3\")", 1);
    assert!(QueryPlanner::new(&sdl).is_ok());
}

#[test]
fn bench_plan_batches_entity_fetches() {
    let planner = QueryPlanner::new(&fixture("bench.supergraph.graphql")).unwrap();
    let plan = plan(&planner, &fixture("bench.operation.graphql"));
    insta::assert_snapshot!("bench_plan", plan.text);
    let Some(PlanNode::Sequence(steps)) = &plan.root else {
        panic!("sequence expected")
    };
    assert!(matches!(&steps[0], PlanNode::Parallel(_)));
    let PlanNode::BatchFetch(last) = steps.last().unwrap() else {
        panic!("batch fetch expected")
    };
    assert_eq!(last.fetch.service, "inventory");
    assert_eq!(last.fetch.subgraph, 1);
    assert!(last.fetch.query_json.starts_with('"') && last.fetch.query_json.ends_with('"'));
    assert_eq!(last.aliases[0].paths.len(), 3);
}

#[test]
fn conditions_become_condition_nodes() {
    let planner = QueryPlanner::new(&fixture("simple-include-skip.supergraph.graphql")).unwrap();
    let plan = plan(
        &planner,
        "query($bool: Boolean!) { product { id include @include(if: $bool) } }",
    );
    insta::assert_snapshot!("include_plan", plan.text);
    let Some(PlanNode::Sequence(steps)) = &plan.root else {
        panic!("sequence expected: {}", plan.text)
    };
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, PlanNode::Condition(c) if c.variable == "bool"))
    );
}

#[test]
fn mutations_run_their_root_fields_in_sequence() {
    let planner = QueryPlanner::new(&fixture("mutations.supergraph.graphql")).unwrap();
    let plan = plan(
        &planner,
        "mutation { a: multiply(by: 2) b: delete c: add(num: 1) d: multiply(by: 3) }",
    );
    let Some(PlanNode::Sequence(steps)) = &plan.root else {
        panic!("sequence expected: {}", plan.text)
    };
    let services: Vec<&str> = steps
        .iter()
        .map(|s| match s {
            PlanNode::Fetch(f) => f.service.as_str(),
            other => panic!("fetch expected, got {other:?}"),
        })
        .collect();
    assert_eq!(services, vec!["a", "b", "c", "a"]);
    assert!(
        steps.iter().all(
            |s| matches!(s, PlanNode::Fetch(f) if f.operation_kind == OperationKind::Mutation)
        )
    );
}
