//! Shared root fields: `Query.product` and `Query.products` are `@shareable` in three subgraphs
//! and `Product` is a value type (no key), each subgraph resolving different fields of it. The
//! only way to a field is the root field of the subgraph that has it.
//!
//! Data: product p1 "Anchor", price 120, category "marine"; products: p1 and p2 "Buoy" (price
//! 15, category "marine").

use serde_json::json;

use crate::harness::{Case, Subgraph};

const NAMES: &str = r#"
type Query {
  product(id: ID!): Product @shareable
  products: [Product!]! @shareable
}

type Product @shareable {
  id: ID!
  name: String!
}
"#;

const PRICES: &str = r#"
type Query {
  product(id: ID!): Product @shareable
  products: [Product!]! @shareable
}

type Product @shareable {
  id: ID!
  price: Int!
}
"#;

const CATEGORIES: &str = r#"
type Query {
  product(id: ID!): Product @shareable
  products: [Product!]! @shareable
}

type Product @shareable {
  id: ID!
  category: String!
}
"#;

fn shared(name: &'static str, sdl: &'static str, rows: serde_json::Value) -> Subgraph {
    Subgraph::new(name, sdl)
        .rows("Product", rows)
        .resolve("Query.product", |c| {
            Ok(c.find("Product", "id", c.arg("id")))
        })
        .resolve("Query.products", |c| Ok(c.all("Product")))
}

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        shared(
            "names",
            NAMES,
            json!([{ "id": "p1", "name": "Anchor" }, { "id": "p2", "name": "Buoy" }]),
        ),
        shared(
            "prices",
            PRICES,
            json!([{ "id": "p1", "price": 120 }, { "id": "p2", "price": 15 }]),
        ),
        shared(
            "categories",
            CATEGORIES,
            json!([{ "id": "p1", "category": "marine" }, { "id": "p2", "category": "marine" }]),
        ),
    ]
}

pub async fn run() {
    let mut run = Case::new("shared_root", subgraphs()).start().await;

    run.check(
        "one_subgraph_suffices",
        r#"{ product(id: "p1") { id name } }"#,
    )
    .expect(r#"{"data": {"product": {"id": "p1", "name": "Anchor"}}}"#)
    .calls("prices", 0)
    .calls("categories", 0)
    .await;

    run.check(
        "fields_from_three_subgraphs",
        r#"{ product(id: "p1") { category id price name } }"#,
    )
    .expect(r#"{"data": {"product": {"category": "marine", "id": "p1", "price": 120, "name": "Anchor"}}}"#)
    .calls("names", 1)
    .calls("prices", 1)
    .calls("categories", 1)
    .await;

    run.check("shared_list_root", "{ products { name price } }")
        .expect(
            r#"{"data": {"products": [{"name": "Anchor", "price": 120}, {"name": "Buoy", "price": 15}]}}"#,
        )
        .await;

    run.check(
        "shared_root_with_aliases_and_variables",
        r#"query ($id: ID!) { first: product(id: $id) { price } second: product(id: "p2") { name price } }"#,
    )
    .variables(json!({ "id": "p1" }))
    .expect(r#"{"data": {"first": {"price": 120}, "second": {"name": "Buoy", "price": 15}}}"#)
    .await;

    run.finish();
}
