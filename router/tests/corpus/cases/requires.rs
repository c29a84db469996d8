//! `@requires`: a plain required field, a required field with arguments (also selected by the
//! client with other arguments), nested object requirements, requirements through fragments on
//! an interface, a requirement on a field that is itself computed with `@requires`, and
//! requirements under a nested list path.
//!
//! Data (products): weight in grams, price in USD cents (EUR = USD * 9 / 10), dimensions in cm.
//! - p1 Cargo Crate: 9000 g, 5000 c (EUR 4500), 60x40x40, wooden box, stackable
//! - p2 Pallet Jack: 70000 g, 30000 c (EUR 27000), 150x55x120, steel box, not stackable
//! - p3 Strap Set: 800 g, 1500 c (EUR 1350), 30x20x5, nylon bag up to 5 kg
//!
//! Shipping computes from them: class LIGHT (< 1000 g), MEDIUM (< 10000 g) or HEAVY; insurance
//! = EUR price / 10; estimate = weight / 1000 + (length + width + height) / 10, halved
//! (integer division) when express. Quotes turns the class into a quote.

use serde_json::{Value, json};

use crate::harness::{Case, Subgraph};

const PRODUCTS: &str = r#"
type Query {
  products: [Product!]!
}

type Product @key(fields: "upc") {
  upc: String!
  name: String!
  weight: Int!
  price(currency: Currency!): Int!
  dimensions: Dimensions!
  packaging: Packaging!
}

enum Currency {
  USD
  EUR
}

type Dimensions @shareable {
  length: Int!
  width: Int!
  height: Int!
}

interface Packaging {
  material: String!
}

type Box implements Packaging @shareable {
  material: String!
  stackable: Boolean!
}

type Bag implements Packaging @shareable {
  material: String!
  maxLoad: Int!
}
"#;

const SHIPPING: &str = r#"
type Product @key(fields: "upc") {
  upc: String!
  weight: Int! @external
  price(currency: Currency!): Int! @external
  dimensions: Dimensions! @external
  packaging: Packaging! @external
  shippingClass: String! @requires(fields: "weight")
  insurance: Int! @requires(fields: "price(currency: EUR)")
  estimate(express: Boolean! = false): Int! @requires(fields: "weight dimensions { length width height }")
  handling: String! @requires(fields: "packaging { material ... on Box { stackable } ... on Bag { maxLoad } }")
}

type Dimensions @shareable {
  length: Int!
  width: Int!
  height: Int!
}

enum Currency {
  USD
  EUR
}

interface Packaging {
  material: String!
}

type Box implements Packaging @shareable {
  material: String!
  stackable: Boolean!
}

type Bag implements Packaging @shareable {
  material: String!
  maxLoad: Int!
}
"#;

const QUOTES: &str = r#"
type Query {
  order(id: ID!): Order
}

type Order {
  id: ID!
  items: [Product!]!
}

type Product @key(fields: "upc") {
  upc: String!
  shippingClass: String! @external
  quote: String! @requires(fields: "shippingClass")
}
"#;

fn int(value: &Value, what: &str) -> Result<i64, String> {
    value
        .as_i64()
        .ok_or_else(|| format!("{what} was not sent: {value}"))
}

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        Subgraph::new("products", PRODUCTS)
            .rows(
                "Product",
                json!([
                    { "upc": "p1", "name": "Cargo Crate", "weight": 9000, "usd": 5000,
                      "dimensions": { "length": 60, "width": 40, "height": 40 },
                      "packaging": { "__typename": "Box", "material": "wood", "stackable": true } },
                    { "upc": "p2", "name": "Pallet Jack", "weight": 70000, "usd": 30000,
                      "dimensions": { "length": 150, "width": 55, "height": 120 },
                      "packaging": { "__typename": "Box", "material": "steel", "stackable": false } },
                    { "upc": "p3", "name": "Strap Set", "weight": 800, "usd": 1500,
                      "dimensions": { "length": 30, "width": 20, "height": 5 },
                      "packaging": { "__typename": "Bag", "material": "nylon", "maxLoad": 5 } },
                ]),
            )
            .resolve("Query.products", |c| Ok(c.all("Product")))
            .resolve("Product.price", |c| {
                let usd = int(&c.parent["usd"], "usd")?;
                match c.arg("currency").as_str() {
                    Some("USD") => Ok(json!(usd)),
                    Some("EUR") => Ok(json!(usd * 9 / 10)),
                    other => Err(format!("unknown currency {other:?}")),
                }
            }),
        Subgraph::new("shipping", SHIPPING)
            .key_only("Product")
            .resolve("Product.shippingClass", |c| {
                let weight = int(&c.parent["weight"], "weight")?;
                Ok(json!(match weight {
                    w if w < 1000 => "LIGHT",
                    w if w < 10000 => "MEDIUM",
                    _ => "HEAVY",
                }))
            })
            .resolve("Product.insurance", |c| {
                // The router sends the value of `price(currency: EUR)` under `price`.
                Ok(json!(int(&c.parent["price"], "price")? / 10))
            })
            .resolve("Product.estimate", |c| {
                let weight = int(&c.parent["weight"], "weight")?;
                let d = &c.parent["dimensions"];
                let size = int(&d["length"], "length")? + int(&d["width"], "width")?
                    + int(&d["height"], "height")?;
                let days = weight / 1000 + size / 10;
                Ok(json!(if c.arg("express") == &json!(true) { days / 2 } else { days }))
            })
            .resolve("Product.handling", |c| {
                let p = &c.parent["packaging"];
                let material = p["material"].as_str().ok_or("packaging.material was not sent")?;
                if let Some(stackable) = p.get("stackable").and_then(Value::as_bool) {
                    let kind = if stackable { "stackable" } else { "single" };
                    Ok(json!(format!("{kind} {material} box")))
                } else if let Some(max) = p.get("maxLoad").and_then(Value::as_i64) {
                    Ok(json!(format!("{material} bag, {max} kg max")))
                } else {
                    Err(format!("packaging fragments were not sent: {p}"))
                }
            }),
        Subgraph::new("quotes", QUOTES)
            .root(json!({ "orders": [{ "id": "o1", "items": [{ "upc": "p3" }, { "upc": "p1" }] }] }))
            .key_only("Product")
            .resolve("Query.order", |c| {
                let id = c.arg("id").clone();
                Ok(c.parent["orders"]
                    .as_array()
                    .and_then(|orders| orders.iter().find(|o| o["id"] == id))
                    .cloned()
                    .unwrap_or(Value::Null))
            })
            .resolve("Product.quote", |c| {
                Ok(json!(match c.parent["shippingClass"].as_str() {
                    Some("LIGHT") => "flat 5",
                    Some("MEDIUM") => "flat 20",
                    Some("HEAVY") => "freight",
                    _ => return Err(format!("shippingClass was not sent: {}", c.parent)),
                }))
            }),
    ]
}

pub async fn run() {
    let mut run = Case::new("requires", subgraphs()).start().await;

    run.check("simple", "{ products { upc shippingClass } }")
        .expect(
            r#"{"data": {"products": [
                {"upc": "p1", "shippingClass": "MEDIUM"},
                {"upc": "p2", "shippingClass": "HEAVY"},
                {"upc": "p3", "shippingClass": "LIGHT"}
            ]}}"#,
        )
        .await;

    run.check(
        "required_field_with_argument",
        "{ products { upc insurance } }",
    )
    .expect(
        r#"{"data": {"products": [
                {"upc": "p1", "insurance": 450},
                {"upc": "p2", "insurance": 2700},
                {"upc": "p3", "insurance": 135}
            ]}}"#,
    )
    .await;

    // The client asks price in USD while insurance needs it in EUR: both must be fetched
    // (under different aliases) and only the USD one shown.
    run.check(
        "required_field_with_other_client_argument",
        "{ products { price(currency: USD) insurance } }",
    )
    .expect(
        r#"{"data": {"products": [
            {"price": 5000, "insurance": 450},
            {"price": 30000, "insurance": 2700},
            {"price": 1500, "insurance": 135}
        ]}}"#,
    )
    .await;

    // The client's alias `weight` names another field; the requirement needs the real weight.
    run.check(
        "client_alias_named_like_a_required_field",
        "{ products { weight: name shippingClass } }",
    )
    .expect(
        r#"{"data": {"products": [
                {"weight": "Cargo Crate", "shippingClass": "MEDIUM"},
                {"weight": "Pallet Jack", "shippingClass": "HEAVY"},
                {"weight": "Strap Set", "shippingClass": "LIGHT"}
            ]}}"#,
    )
    .await;

    run.check(
        "required_field_also_selected_by_client",
        "{ products { eur: price(currency: EUR) insurance } }",
    )
    .expect(
        r#"{"data": {"products": [
            {"eur": 4500, "insurance": 450},
            {"eur": 27000, "insurance": 2700},
            {"eur": 1350, "insurance": 135}
        ]}}"#,
    )
    .await;

    run.check(
        "nested_requirement_and_field_arguments",
        "{ products { upc estimate fast: estimate(express: true) } }",
    )
    .expect(
        r#"{"data": {"products": [
            {"upc": "p1", "estimate": 23, "fast": 11},
            {"upc": "p2", "estimate": 102, "fast": 51},
            {"upc": "p3", "estimate": 5, "fast": 2}
        ]}}"#,
    )
    .await;

    run.check(
        "field_arguments_from_variables",
        "query Estimate($express: Boolean!) { products { estimate(express: $express) } }",
    )
    .variables(json!({ "express": true }))
    .expect(r#"{"data": {"products": [{"estimate": 11}, {"estimate": 51}, {"estimate": 2}]}}"#)
    .await;

    run.check("requirement_with_fragments", "{ products { handling } }")
        .expect(
            r#"{"data": {"products": [
                {"handling": "stackable wood box"},
                {"handling": "single steel box"},
                {"handling": "nylon bag, 5 kg max"}
            ]}}"#,
        )
        .await;

    // quote needs shippingClass, which shipping computes from products' weight.
    run.check("requires_on_requires", "{ products { name quote } }")
        .expect(
            r#"{"data": {"products": [
                {"name": "Cargo Crate", "quote": "flat 20"},
                {"name": "Pallet Jack", "quote": "freight"},
                {"name": "Strap Set", "quote": "flat 5"}
            ]}}"#,
        )
        .await;

    // Entities under a list inside a root field of a third subgraph.
    run.check(
        "requirements_under_nested_list",
        r#"{ order(id: "o1") { id items { upc name insurance quote handling } } }"#,
    )
    .expect(
        r#"{"data": {"order": {"id": "o1", "items": [
            {"upc": "p3", "name": "Strap Set", "insurance": 135, "quote": "flat 5", "handling": "nylon bag, 5 kg max"},
            {"upc": "p1", "name": "Cargo Crate", "insurance": 450, "quote": "flat 20", "handling": "stackable wood box"}
        ]}}}"#,
    )
    .await;

    // Required fields are fetched for the subgraph, never shown to the client.
    run.check("requirements_not_in_response", "{ products { quote } }")
        .expect(
            r#"{"data": {"products": [{"quote": "flat 20"}, {"quote": "freight"}, {"quote": "flat 5"}]}}"#,
        )
        .calls("products", 1)
        .calls("shipping", 1)
        .calls("quotes", 1)
        .await;

    run.finish();
}
