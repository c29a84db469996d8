//! Entity calls: a single key, two keys on one entity (each subgraph knows users by a different
//! one), a flat composite key, a nested composite key, `resolvable: false` references, and a
//! four-subgraph chain.
//!
//! Data: users u1 Ada, u2 Alan, u3 Grace; reviews r1 (Ada, p1), r2 (Alan, p2), r3 (Ada, p1);
//! products p1 Cargo Crate (variants s1 red, s2 blue), p2 Pallet Jack (variant s1 yellow: the
//! same sku as p1's, so only the composite key tells them apart), p3 Hand Truck (none);
//! warehouses eu/1 Rotterdam (Alan), us/1 Newark (Grace), eu/2 Hamburg (no manager); stock's
//! bins: [[p1/s1, p2/s1], [], [p1/s2]].

use serde_json::json;

use crate::harness::{Case, Subgraph};

const ACCOUNTS: &str = r#"
type Query {
  users: [User!]!
  user(id: ID!): User
}

type User @key(fields: "id") @key(fields: "email") {
  id: ID!
  email: String!
  name: String!
}
"#;

const REVIEWS: &str = r#"
type Query {
  topReviews(first: Int = 10): [Review!]!
}

type Review @key(fields: "id") {
  id: ID!
  body: String!
  author: User!
  product: Product!
}

type User @key(fields: "email") {
  email: String!
  reviews: [Review!]!
}

type Product @key(fields: "upc", resolvable: false) {
  upc: String!
}
"#;

const CATALOG: &str = r#"
type Query {
  products: [Product!]!
}

type Product @key(fields: "upc") {
  upc: String!
  title: String!
  variants: [Variant!]!
}

type Variant @key(fields: "product { upc } sku") {
  product: Product!
  sku: String!
  color: String!
}

type Warehouse @key(fields: "region code") {
  region: String!
  code: String!
  city: String!
}
"#;

const STOCK: &str = r#"
type Query {
  warehouses: [Warehouse!]!
  bins: [[Variant!]!]!
}

type Variant @key(fields: "product { upc } sku") {
  product: Product!
  sku: String!
  inStock: Int!
}

type Product @key(fields: "upc", resolvable: false) {
  upc: String!
}

type Warehouse @key(fields: "region code") {
  region: String!
  code: String!
  capacity: Int!
  manager: User
}

type User @key(fields: "id", resolvable: false) {
  id: ID!
}
"#;

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        Subgraph::new("accounts", ACCOUNTS)
            .rows(
                "User",
                json!([
                    { "id": "u1", "email": "ada@example.com", "name": "Ada Lovelace" },
                    { "id": "u2", "email": "alan@example.com", "name": "Alan Turing" },
                    { "id": "u3", "email": "grace@example.com", "name": "Grace Hopper" },
                ]),
            )
            .resolve("Query.users", |c| Ok(c.all("User")))
            .resolve("Query.user", |c| Ok(c.find("User", "id", c.arg("id")))),
        Subgraph::new("reviews", REVIEWS)
            .rows(
                "Review",
                json!([
                    { "id": "r1", "body": "Sturdy and light.", "author": { "email": "ada@example.com" }, "product": { "upc": "p1" } },
                    { "id": "r2", "body": "Arrived late.", "author": { "email": "alan@example.com" }, "product": { "upc": "p2" } },
                    { "id": "r3", "body": "Still works after a year.", "author": { "email": "ada@example.com" }, "product": { "upc": "p1" } },
                ]),
            )
            .key_only("User")
            .resolve("Query.topReviews", |c| {
                let first = c.arg("first").as_u64().unwrap_or(10) as usize;
                Ok(json!(c.all("Review").as_array().unwrap().iter().take(first).collect::<Vec<_>>()))
            })
            .resolve("User.reviews", |c| {
                let email = c.parent["email"].clone();
                Ok(c.filter("Review", |r| r["author"]["email"] == email))
            }),
        Subgraph::new("catalog", CATALOG)
            .rows(
                "Product",
                json!([
                    { "upc": "p1", "title": "Cargo Crate" },
                    { "upc": "p2", "title": "Pallet Jack" },
                    { "upc": "p3", "title": "Hand Truck" },
                ]),
            )
            .rows(
                "Variant",
                json!([
                    { "product": { "upc": "p1" }, "sku": "s1", "color": "red" },
                    { "product": { "upc": "p1" }, "sku": "s2", "color": "blue" },
                    { "product": { "upc": "p2" }, "sku": "s1", "color": "yellow" },
                ]),
            )
            .rows(
                "Warehouse",
                json!([
                    { "region": "eu", "code": "1", "city": "Rotterdam" },
                    { "region": "us", "code": "1", "city": "Newark" },
                    { "region": "eu", "code": "2", "city": "Hamburg" },
                ]),
            )
            .resolve("Query.products", |c| Ok(c.all("Product")))
            .resolve("Product.variants", |c| {
                let upc = c.parent["upc"].clone();
                Ok(c.filter("Variant", |v| v["product"]["upc"] == upc))
            })
            .resolve("Variant.product", |c| Ok(c.find("Product", "upc", &c.parent["product"]["upc"]))),
        Subgraph::new("stock", STOCK)
            .rows(
                "Variant",
                json!([
                    { "product": { "upc": "p1" }, "sku": "s1", "inStock": 12 },
                    { "product": { "upc": "p1" }, "sku": "s2", "inStock": 0 },
                    { "product": { "upc": "p2" }, "sku": "s1", "inStock": 3 },
                ]),
            )
            .rows(
                "Warehouse",
                json!([
                    { "region": "eu", "code": "1", "capacity": 500, "manager": { "id": "u2" } },
                    { "region": "us", "code": "1", "capacity": 800, "manager": { "id": "u3" } },
                    { "region": "eu", "code": "2", "capacity": 300, "manager": null },
                ]),
            )
            .resolve("Query.warehouses", |c| Ok(c.all("Warehouse")))
            .root(json!({ "bins": [
                [{ "product": { "upc": "p1" }, "sku": "s1", "inStock": 12 }, { "product": { "upc": "p2" }, "sku": "s1", "inStock": 3 }],
                [],
                [{ "product": { "upc": "p1" }, "sku": "s2", "inStock": 0 }],
            ]})),
    ]
}

pub async fn run() {
    let mut run = Case::new("entities", subgraphs()).start().await;

    // Reviews know authors by email only; the two reviews by Ada need one representation.
    run.check("single_key", "{ topReviews { body author { name } } }")
        .expect(
            r#"{"data": {"topReviews": [
                {"body": "Sturdy and light.", "author": {"name": "Ada Lovelace"}},
                {"body": "Arrived late.", "author": {"name": "Alan Turing"}},
                {"body": "Still works after a year.", "author": {"name": "Ada Lovelace"}}
            ]}}"#,
        )
        .calls("accounts", 1)
        .representations("accounts", 2)
        .await;

    // accounts resolves users by id and gives their email, the key reviews knows them by.
    run.check(
        "second_key_id_to_email",
        r#"{ user(id: "u1") { name reviews { body } } }"#,
    )
    .expect(
        r#"{"data": {"user": {"name": "Ada Lovelace", "reviews": [
                {"body": "Sturdy and light."}, {"body": "Still works after a year."}
            ]}}}"#,
    )
    .await;

    // The other way round: from an email-only reference to the id, through the email key.
    run.check(
        "second_key_email_to_id",
        "{ topReviews(first: 2) { author { id email } } }",
    )
    .expect(
        r#"{"data": {"topReviews": [
                {"author": {"id": "u1", "email": "ada@example.com"}},
                {"author": {"id": "u2", "email": "alan@example.com"}}
            ]}}"#,
    )
    .await;

    // reviews only references products (resolvable: false); catalog resolves them.
    run.check(
        "resolvable_false_reference",
        "{ topReviews { product { upc title } } }",
    )
    .expect(
        r#"{"data": {"topReviews": [
                {"product": {"upc": "p1", "title": "Cargo Crate"}},
                {"product": {"upc": "p2", "title": "Pallet Jack"}},
                {"product": {"upc": "p1", "title": "Cargo Crate"}}
            ]}}"#,
    )
    .representations("catalog", 2)
    .await;

    // Only the key is selected: no other subgraph has anything to add.
    run.check(
        "key_only_needs_no_entity_call",
        "{ topReviews { id product { upc } } }",
    )
    .expect(
        r#"{"data": {"topReviews": [
                {"id": "r1", "product": {"upc": "p1"}},
                {"id": "r2", "product": {"upc": "p2"}},
                {"id": "r3", "product": {"upc": "p1"}}
            ]}}"#,
    )
    .calls("catalog", 0)
    .calls("accounts", 0)
    .await;

    // Variants are keyed by `product { upc } sku`; sku s1 exists under p1 and p2.
    run.check(
        "nested_composite_key",
        "{ products { upc variants { sku color inStock } } }",
    )
    .expect(
        r#"{"data": {"products": [
                {"upc": "p1", "variants": [
                    {"sku": "s1", "color": "red", "inStock": 12},
                    {"sku": "s2", "color": "blue", "inStock": 0}
                ]},
                {"upc": "p2", "variants": [{"sku": "s1", "color": "yellow", "inStock": 3}]},
                {"upc": "p3", "variants": []}
            ]}}"#,
    )
    .representations("stock", 3)
    .await;

    // Warehouses are keyed by `region code`; code 1 exists in two regions.
    run.check(
        "flat_composite_key",
        "{ warehouses { region code city capacity } }",
    )
    .expect(
        r#"{"data": {"warehouses": [
                {"region": "eu", "code": "1", "city": "Rotterdam", "capacity": 500},
                {"region": "us", "code": "1", "city": "Newark", "capacity": 800},
                {"region": "eu", "code": "2", "city": "Hamburg", "capacity": 300}
            ]}}"#,
    )
    .await;

    // stock -> accounts (by id) -> reviews (by email) -> catalog (by upc); a null manager
    // stays null and is not sent anywhere.
    run.check(
        "four_subgraph_chain",
        "{ warehouses { code manager { name reviews { product { title } } } } }",
    )
    .expect(
        r#"{"data": {"warehouses": [
            {"code": "1", "manager": {"name": "Alan Turing", "reviews": [{"product": {"title": "Pallet Jack"}}]}},
            {"code": "1", "manager": {"name": "Grace Hopper", "reviews": []}},
            {"code": "2", "manager": null}
        ]}}"#,
    )
    .representations("accounts", 2)
    .await;

    // Entities inside a list of lists: the fetch path goes through two list levels.
    run.check("entities_in_nested_lists", "{ bins { sku color inStock } }")
        .expect(
            r#"{"data": {"bins": [
                [{"sku": "s1", "color": "red", "inStock": 12}, {"sku": "s1", "color": "yellow", "inStock": 3}],
                [],
                [{"sku": "s2", "color": "blue", "inStock": 0}]
            ]}}"#,
        )
        .representations("catalog", 3)
        .await;

    run.check(
        "keys_from_variables",
        "query Reviews($id: ID!, $first: Int) { user(id: $id) { email reviews { id } } topReviews(first: $first) { id } }",
    )
    .variables(json!({ "id": "u2", "first": 1 }))
    .expect(
        r#"{"data": {
            "user": {"email": "alan@example.com", "reviews": [{"id": "r2"}]},
            "topReviews": [{"id": "r1"}]
        }}"#,
    )
    .await;

    run.finish();
}
