//! Null propagation and partial data: subgraph errors re-pathed to the client's paths, a null
//! where the schema promises a value (propagated to the nearest nullable parent: a list item, a
//! root field, the whole data), an entity call failing for one item, a subgraph that is down
//! and one that answers HTTP 500.
//!
//! Data: catalog products p1 Anchor, p2 Buoy, p3 Rope (`products` has nullable items). Pricing:
//! price p1 100, p2 fails ("no price for p2"), p3 300; rating p1 5, p2 null (the subgraph breaks
//! its schema), p3 3; score p1 10, p2 20, p3 fails the way graphql-js subgraphs do (the entity
//! item is null, with "score unavailable for p3" at `_entities.2.score`). Warehouse is down;
//! legacy answers 500.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Case, Subgraph, json::Json};

const CATALOG: &str = r#"
type Query {
  products: [Product]!
  product(upc: String!): Product
  requiredProduct(upc: String!): Product!
}

type Product @key(fields: "upc") {
  upc: String!
  name: String!
}
"#;

const PRICING: &str = r#"
type Product @key(fields: "upc") {
  upc: String!
  price: Int
  rating: Int!
  score: Int!
}
"#;

const WAREHOUSE: &str = r#"
type Query {
  warehouseStatus: String
}

type Product @key(fields: "upc") {
  upc: String!
  stock: Int
}
"#;

const LEGACY: &str = r#"
type Query {
  legacyNote: String
}
"#;

/// Index of the representation of product `upc` in an `_entities` request.
fn representation_index(request: &Value, upc: &str) -> Option<usize> {
    request
        .pointer("/variables/representations")?
        .as_array()?
        .iter()
        .position(|r| r["upc"] == upc)
}

/// Breaks pricing's answers the way the case describes (see the module docs).
fn break_pricing(request: &Value, response: &mut Json) {
    let query = request["query"].as_str().unwrap_or_default();
    if query.contains("rating")
        && let Some(i) = representation_index(request, "p2")
        && let Some(rating) = response.pointer_mut(&["data", "_entities", &i.to_string(), "rating"])
    {
        *rating = Json::Null;
    }
    if query.contains("score")
        && let Some(i) = representation_index(request, "p3")
        && let Some(item) = response.pointer_mut(&["data", "_entities", &i.to_string()])
    {
        *item = Json::Null;
        let error = Json::parse(format!(
            r#"{{"message": "score unavailable for p3", "path": ["_entities", {i}, "score"]}}"#
        ))
        .expect("error JSON");
        match response.get_mut("errors") {
            Some(Json::Array(errors)) => errors.push(error),
            _ => {
                if let Json::Object(entries) = response {
                    entries.push(("errors".to_owned(), Json::Array(vec![error])));
                }
            }
        }
    }
}

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        Subgraph::new("catalog", CATALOG)
            .rows(
                "Product",
                json!([
                    { "upc": "p1", "name": "Anchor" },
                    { "upc": "p2", "name": "Buoy" },
                    { "upc": "p3", "name": "Rope" },
                ]),
            )
            .resolve("Query.products", |c| Ok(c.all("Product")))
            .resolve("Query.product", |c| {
                Ok(c.find("Product", "upc", c.arg("upc")))
            })
            .resolve("Query.requiredProduct", |c| {
                Ok(c.find("Product", "upc", c.arg("upc")))
            }),
        Subgraph::new("pricing", PRICING)
            .rows(
                "Product",
                json!([
                    { "upc": "p1", "price": 100, "rating": 5, "score": 10 },
                    { "upc": "p2", "rating": 4, "score": 20 },
                    { "upc": "p3", "price": 300, "rating": 3, "score": 30 },
                ]),
            )
            .resolve("Product.price", |c| match c.parent.get("price") {
                Some(price) => Ok(price.clone()),
                None => Err(format!(
                    "no price for {}",
                    c.parent["upc"].as_str().unwrap_or("?")
                )),
            })
            .tamper(break_pricing),
        Subgraph::new("warehouse", WAREHOUSE).down(),
        Subgraph::new("legacy", LEGACY).raw(StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded"),
    ]
}

pub async fn run() {
    let mut run = Case::new("nulls", subgraphs()).start().await;

    run.check(
        "nullable_field_error_repathed",
        "{ products { upc price } }",
    )
    .expect(
        r#"{"data": {"products": [
                {"upc": "p1", "price": 100},
                {"upc": "p2", "price": null},
                {"upc": "p3", "price": 300}
            ]}, "errors": [{"message": "no price for p2", "path": ["products", 1, "price"]}]}"#,
    )
    .await;

    run.check(
        "null_for_non_null_nulls_the_list_item",
        "{ products { upc rating } }",
    )
    .expect(
        r#"{"data": {"products": [{"upc": "p1", "rating": 5}, null, {"upc": "p3", "rating": 3}]},
                "errors": [{"path": ["products", 1, "rating"]}]}"#,
    )
    .await;

    run.check(
        "null_for_non_null_nulls_the_root_field",
        r#"{ product(upc: "p2") { name rating } }"#,
    )
    .expect(r#"{"data": {"product": null}, "errors": [{"path": ["product", "rating"]}]}"#)
    .await;

    run.check(
        "null_for_non_null_nulls_data",
        r#"{ requiredProduct(upc: "p2") { rating } }"#,
    )
    .expect(r#"{"data": null, "errors": [{"path": ["requiredProduct", "rating"]}]}"#)
    .await;

    run.check("entity_item_error_repathed", "{ products { upc score } }")
        .expect(
            r#"{"data": {"products": [{"upc": "p1", "score": 10}, {"upc": "p2", "score": 20}, null]},
                "errors": [{"message": "score unavailable for p3", "path": ["products", 2, "score"]}]}"#,
        )
        .await;

    run.check(
        "subgraph_down_nullable_entity_field",
        "{ products { upc stock } }",
    )
    .expect(
        r#"{"data": {"products": [
                {"upc": "p1", "stock": null},
                {"upc": "p2", "stock": null},
                {"upc": "p3", "stock": null}
            ]}, "errors": [{"extensions": {"code": "<any>", "service": "warehouse"}}]}"#,
    )
    .await;

    run.check("subgraph_down_root_field", "{ products { name } warehouseStatus }")
        .expect(
            r#"{"data": {"products": [{"name": "Anchor"}, {"name": "Buoy"}, {"name": "Rope"}], "warehouseStatus": null},
                "errors": [{"extensions": {"code": "<any>", "service": "warehouse"}}]}"#,
        )
        .await;

    run.check("subgraph_http_500", "{ legacyNote }")
        .expect(
            r#"{"data": {"legacyNote": null},
                "errors": [{"extensions": {"code": "<any>", "service": "legacy"}}]}"#,
        )
        .await;

    run.check(
        "errors_from_two_subgraphs",
        "{ products { upc price stock } }",
    )
    .expect(
        r#"{"data": {"products": [
                {"upc": "p1", "price": 100, "stock": null},
                {"upc": "p2", "price": null, "stock": null},
                {"upc": "p3", "price": 300, "stock": null}
            ]}, "errors": [
                {"message": "no price for p2", "path": ["products", 1, "price"]},
                {"extensions": {"code": "<any>", "service": "warehouse"}}
            ]}"#,
    )
    .await;

    run.finish();
}
