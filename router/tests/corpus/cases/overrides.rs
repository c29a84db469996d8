//! `@override`: an entity field and a root field moved from `legacy` to `inventory`.
//!
//! The legacy subgraph still serves both with stale values (every product in stock, p1
//! featured), so a router that asked it would show them. The truth: p1 in stock, p2 not;
//! featured is p2.

use serde_json::json;

use crate::harness::{Case, Subgraph};

const LEGACY: &str = r#"
type Query {
  products: [Product!]!
  featured: Product
}

type Product @key(fields: "upc") {
  upc: String!
  name: String!
  inStock: Boolean!
}
"#;

const INVENTORY: &str = r#"
type Query {
  featured: Product @override(from: "legacy")
}

type Product @key(fields: "upc") {
  upc: String!
  inStock: Boolean! @override(from: "legacy")
  shelf: String
}
"#;

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        Subgraph::new("legacy", LEGACY)
            .rows(
                "Product",
                json!([
                    { "upc": "p1", "name": "Cargo Crate", "inStock": true },
                    { "upc": "p2", "name": "Pallet Jack", "inStock": true },
                ]),
            )
            .resolve("Query.products", |c| Ok(c.all("Product")))
            .resolve("Query.featured", |c| {
                Ok(c.find("Product", "upc", &json!("p1")))
            }),
        Subgraph::new("inventory", INVENTORY)
            .rows(
                "Product",
                json!([
                    { "upc": "p1", "inStock": true, "shelf": "A1" },
                    { "upc": "p2", "inStock": false, "shelf": null },
                ]),
            )
            .resolve("Query.featured", |c| {
                Ok(c.find("Product", "upc", &json!("p2")))
            }),
    ]
}

pub async fn run() {
    let mut run = Case::new("overrides", subgraphs()).start().await;

    run.check(
        "overridden_entity_field",
        "{ products { upc name inStock } }",
    )
    .expect(
        r#"{"data": {"products": [
                {"upc": "p1", "name": "Cargo Crate", "inStock": true},
                {"upc": "p2", "name": "Pallet Jack", "inStock": false}
            ]}}"#,
    )
    .calls("legacy", 1)
    .calls("inventory", 1)
    .await;

    run.check(
        "overridden_root_field",
        "{ featured { upc inStock shelf } }",
    )
    .expect(r#"{"data": {"featured": {"upc": "p2", "inStock": false, "shelf": null}}}"#)
    .calls("legacy", 0)
    .await;

    run.check(
        "overridden_root_then_old_owner_fields",
        "{ featured { name inStock } }",
    )
    .expect(r#"{"data": {"featured": {"name": "Pallet Jack", "inStock": false}}}"#)
    .await;

    run.finish();
}
