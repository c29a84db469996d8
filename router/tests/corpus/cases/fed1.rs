//! Federation 1 style subgraphs (no `@link`): `extend type` with `@external` key fields, an
//! extended `Query`, `@requires` on an external field; composed together with a Federation 2
//! subgraph that references the same entity.
//!
//! Data: products p1 "Anchor" (12000 g), p2 "Buoy" (3000 g); reviews r1 "Holds well." (p1), r2
//! "Bright colour." (p2), r3 "Rusty after a month." (p1). Shipping note: "freight" from 10000 g,
//! else "parcel". Tags (Federation 2): p1 [marine, heavy], p2 [marine].

use serde_json::json;

use crate::harness::{Case, Subgraph};

const PRODUCTS: &str = r#"
type Query {
  topProducts: [Product!]!
}

type Product @key(fields: "upc") {
  upc: String!
  name: String!
  weight: Int!
}
"#;

const REVIEWS: &str = r#"
extend type Query {
  review(id: ID!): Review
}

type Review @key(fields: "id") {
  id: ID!
  body: String!
  product: Product!
}

extend type Product @key(fields: "upc") {
  upc: String! @external
  weight: Int! @external
  reviews: [Review!]!
  shippingNote: String! @requires(fields: "weight")
}
"#;

const TAGS: &str = r#"
type Product @key(fields: "upc") {
  upc: String!
  tags: [String!]!
}
"#;

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        Subgraph::fed1("products", PRODUCTS)
            .rows(
                "Product",
                json!([
                    { "upc": "p1", "name": "Anchor", "weight": 12000 },
                    { "upc": "p2", "name": "Buoy", "weight": 3000 },
                ]),
            )
            .resolve("Query.topProducts", |c| Ok(c.all("Product"))),
        Subgraph::fed1("reviews", REVIEWS)
            .rows(
                "Review",
                json!([
                    { "id": "r1", "body": "Holds well.", "product": { "upc": "p1" } },
                    { "id": "r2", "body": "Bright colour.", "product": { "upc": "p2" } },
                    { "id": "r3", "body": "Rusty after a month.", "product": { "upc": "p1" } },
                ]),
            )
            .key_only("Product")
            .resolve("Query.review", |c| Ok(c.find("Review", "id", c.arg("id"))))
            .resolve("Product.reviews", |c| {
                let upc = c.parent["upc"].clone();
                Ok(c.filter("Review", |r| r["product"]["upc"] == upc))
            })
            .resolve("Product.shippingNote", |c| {
                let weight = c.parent["weight"].as_i64().ok_or("weight was not sent")?;
                Ok(json!(if weight >= 10000 { "freight" } else { "parcel" }))
            }),
        Subgraph::new("tags", TAGS).rows(
            "Product",
            json!([
                { "upc": "p1", "tags": ["marine", "heavy"] },
                { "upc": "p2", "tags": ["marine"] },
            ]),
        ),
    ]
}

pub async fn run() {
    let mut run = Case::new("fed1", subgraphs()).start().await;

    run.check("extended_entity", "{ topProducts { name reviews { body } } }")
        .expect(
            r#"{"data": {"topProducts": [
                {"name": "Anchor", "reviews": [{"body": "Holds well."}, {"body": "Rusty after a month."}]},
                {"name": "Buoy", "reviews": [{"body": "Bright colour."}]}
            ]}}"#,
        )
        .await;

    run.check(
        "requires_on_external",
        "{ topProducts { upc shippingNote } }",
    )
    .expect(
        r#"{"data": {"topProducts": [
                {"upc": "p1", "shippingNote": "freight"},
                {"upc": "p2", "shippingNote": "parcel"}
            ]}}"#,
    )
    .await;

    run.check(
        "extended_query_root_to_base_type",
        r#"{ review(id: "r2") { body product { name shippingNote tags } } }"#,
    )
    .expect(
        r#"{"data": {"review": {"body": "Bright colour.", "product": {"name": "Buoy", "shippingNote": "parcel", "tags": ["marine"]}}}}"#,
    )
    .await;

    run.check(
        "federation_1_and_2_together",
        "{ topProducts { tags reviews { id product { name } } } }",
    )
    .expect(
        r#"{"data": {"topProducts": [
            {"tags": ["marine", "heavy"], "reviews": [{"id": "r1", "product": {"name": "Anchor"}}, {"id": "r3", "product": {"name": "Anchor"}}]},
            {"tags": ["marine"], "reviews": [{"id": "r2", "product": {"name": "Buoy"}}]}
        ]}}"#,
    )
    .await;

    run.finish();
}
