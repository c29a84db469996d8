//! The varied workload's sources of truth: its committed supergraph is composed from the subgraphs'
//! current SDL, and the monolith (where every request's expected response comes from) gives the
//! published response for the benchmark operation and hand-checked answers for the other shapes.

use sha2::{Digest, Sha256};
use shippy_bench::{
    json::{Json, first_difference},
    varied::{self, Step},
    workload,
};

/// Prefix of the composed supergraph's first line; the inputs' digest follows it.
const DIGEST_PREFIX: &str = "# bench-inputs-sha256: ";

/// SHA-256 over `name\nsdl\n` of each subgraph, by name. Keep in step with `inputsDigest` in
/// `bench/workload/varied/compose.mjs`.
fn inputs_digest(subgraphs: &mut [(&str, String)]) -> String {
    subgraphs.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = Sha256::new();
    for (name, sdl) in subgraphs.iter() {
        hasher.update(name.as_bytes());
        hasher.update(b"\n");
        hasher.update(sdl.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn varied_supergraph_is_fresh() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workload/varied");
    let update = std::env::var_os("BENCH_UPDATE").is_some();
    let mut exported = varied::subgraph_sdls();
    let mut problems = Vec::new();
    for (name, sdl) in &exported {
        let path = dir.join("subgraphs").join(format!("{name}.graphql"));
        if std::fs::read_to_string(&path).ok().as_deref() == Some(sdl.as_str()) {
            continue;
        }
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, sdl).unwrap();
        } else {
            problems.push(format!("{} differs from the exported SDL", path.display()));
        }
    }
    let digest = inputs_digest(&mut exported);
    let recorded = varied::SUPERGRAPH
        .lines()
        .next()
        .and_then(|line| line.strip_prefix(DIGEST_PREFIX));
    if recorded != Some(digest.as_str()) {
        problems.push("bench/workload/varied/supergraph.graphql is stale".into());
    }
    assert!(
        problems.is_empty(),
        "{}\n\nRegenerate: BENCH_UPDATE=1 cargo test -p shippy-bench --test varied varied_supergraph_is_fresh; \
         npm --prefix router/tests/corpus ci; node bench/workload/varied/compose.mjs",
        problems.join("\n")
    );
}

fn step(name: &str, first: i32) -> Step {
    let operation = *varied::OPERATIONS
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no operation {name}"));
    Step { operation, first }
}

async fn expected(name: &str, first: i32) -> String {
    step(name, first).expected().await.unwrap().to_compact()
}

#[tokio::test]
async fn the_benchmark_operation_with_five_top_products_is_the_published_response() {
    let published = Json::parse(workload::EXPECTED_RESPONSE).unwrap();
    let from_monolith = step("benchmark", 5).expected().await.unwrap();
    assert_eq!(first_difference(&published, &from_monolith), None);
    let fewer = step("benchmark", 2).expected().await.unwrap().to_compact();
    assert!(fewer.len() < workload::EXPECTED_RESPONSE.len());
}

#[tokio::test]
async fn the_other_shapes_answer_what_the_data_says() {
    assert_eq!(
        expected("shallow", 2).await,
        r#"{"data":{"topProducts":[{"upc":"1","name":"Table"},{"upc":"2","name":"Couch"}]}}"#
    );
    // Free shipping above a price of 1000, else half the weight: Table 899/100, Couch 1299/1000,
    // Glass 15/20. Price and weight, fetched only for the rule, are not in the response.
    assert_eq!(
        expected("requires", 3).await,
        r#"{"data":{"topProducts":[{"upc":"1","inStock":true,"shippingEstimate":50},{"upc":"2","inStock":false,"shippingEstimate":0},{"upc":"3","inStock":false,"shippingEstimate":10}]}}"#
    );
    // Review 3 is about the table; product 2 is the couch; user 2 is Dotan.
    let feed = expected("abstract", 3).await;
    let body_3 = shippy_bench::subgraphs::data::review_by_id("3")
        .unwrap()
        .body;
    assert_eq!(
        feed,
        format!(
            r#"{{"data":{{"feed":[{{"__typename":"Review","id":"3","body":{},"product":{{"upc":"1","name":"Table"}}}},{{"__typename":"Product","upc":"2","name":"Couch","shippingEstimate":0}},{{"__typename":"User","id":"2","name":"Dotan Simha","username":"dotansimha"}}]}}}}"#,
            serde_json::Value::from(body_3)
        )
    );
    let wide = Json::parse(expected("wide", 1).await).unwrap();
    let table = wide.to_compact();
    assert!(
        table.starts_with(r#"{"data":{"topProducts":[{"upc":"1","name":"Table","price":899,"weight":100,"notes":"Notes for table","internal":"Internal for table","inStock":true,"reviews":[{"id":"1","#),
        "{table}"
    );
    assert!(table.contains(
        r#""users":[{"id":"1","name":"Uri Goldshtein","username":"urigo","birthday":1234567890},"#
    ));
}

#[tokio::test]
async fn every_request_of_the_rotation_has_an_error_free_expected_response() {
    let requests = varied::requests().await.unwrap();
    assert_eq!(requests.len(), varied::rotation().len());
    for request in &requests {
        let data = request.expected.get("data").expect("data");
        assert!(
            !matches!(data, Json::Null),
            "{}: {}",
            request.name,
            request.expected
        );
        assert!(request.expected.get("errors").is_none(), "{}", request.name);
    }
    // The abstract-type answers mix all three members.
    let feed = requests
        .iter()
        .find(|r| r.name.starts_with("abstract"))
        .unwrap()
        .expected
        .to_compact();
    for member in ["Review", "Product", "User"] {
        assert!(
            feed.contains(&format!(r#""__typename":"{member}""#)),
            "{member}"
        );
    }
}
