//! Arguments and variables: input objects with defaults, enums and enum lists, list input
//! coercion, variable defaults, field arguments on entity fields, and variables the router must
//! reject (missing, wrong type) before calling any subgraph.
//!
//! Data (search): i1 Anvil 40 TOOLS [heavy], i2 Brush 5 TOOLS, i3 Chisel 12 TOOLS [sharp], i4
//! Yo-yo 3 TOYS, i5 Kite 15 TOYS. `find` keeps the filter's category, price >= minPrice (default
//! 0) and all its tags, sorts by the sort keys (default [NAME]) and returns `limit` (default 2).
//! Stock (details) by warehouse: main i1 2, i2 10, i3 0, i4 7, i5 1; north i1 5, i2 0, i3 3,
//! i4 0, i5 4; `warehouse` defaults to "main".

use std::cmp::Ordering;

use serde_json::{Value, json};

use crate::harness::{Case, Subgraph};

const SEARCH: &str = r#"
type Query {
  find(filter: Filter!, sort: [SortKey!] = [NAME], limit: Int = 2): [Item!]!
  echo(values: [Int!]!): [Int!]!
}

input Filter {
  category: Category!
  minPrice: Int = 0
  tags: [String!]
}

enum Category {
  TOOLS
  TOYS
}

enum SortKey {
  NAME
  PRICE
}

type Item @key(fields: "id") {
  id: ID!
  name: String!
  price: Int!
  category: Category!
}
"#;

const DETAILS: &str = r#"
type Item @key(fields: "id") {
  id: ID!
  stock(warehouse: String = "main"): Int!
}
"#;

fn find(rows: Value, args: &Value) -> Result<Value, String> {
    let filter = &args["filter"];
    // async-graphql's dynamic schema applies argument defaults but not input field defaults.
    let min_price = filter["minPrice"].as_i64().unwrap_or(0);
    let tags: Vec<&Value> = filter["tags"]
        .as_array()
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    let sort: Vec<&str> = args["sort"]
        .as_array()
        .ok_or("sort default was not applied")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let limit = args["limit"]
        .as_u64()
        .ok_or("limit default was not applied")? as usize;
    let mut items: Vec<Value> = rows
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i["category"] == filter["category"])
        .filter(|i| i["price"].as_i64().unwrap_or(0) >= min_price)
        .filter(|i| {
            tags.iter()
                .all(|t| i["tags"].as_array().is_some_and(|have| have.contains(t)))
        })
        .collect();
    items.sort_by(|a, b| {
        sort.iter().fold(Ordering::Equal, |order, key| {
            order.then_with(|| match *key {
                "PRICE" => a["price"].as_i64().cmp(&b["price"].as_i64()),
                _ => a["name"].as_str().cmp(&b["name"].as_str()),
            })
        })
    });
    items.truncate(limit);
    Ok(json!(items))
}

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        Subgraph::new("search", SEARCH)
            .rows(
                "Item",
                json!([
                    { "id": "i1", "name": "Anvil", "price": 40, "category": "TOOLS", "tags": ["heavy"] },
                    { "id": "i2", "name": "Brush", "price": 5, "category": "TOOLS", "tags": [] },
                    { "id": "i3", "name": "Chisel", "price": 12, "category": "TOOLS", "tags": ["sharp"] },
                    { "id": "i4", "name": "Yo-yo", "price": 3, "category": "TOYS", "tags": [] },
                    { "id": "i5", "name": "Kite", "price": 15, "category": "TOYS", "tags": [] },
                ]),
            )
            .resolve("Query.find", |c| find(c.all("Item"), c.args))
            // async-graphql's dynamic schema does not coerce a single value into a list.
            .resolve("Query.echo", |c| match c.arg("values") {
                Value::Array(values) => Ok(json!(values)),
                single => Ok(json!([single])),
            }),
        Subgraph::new("details", DETAILS)
            .rows(
                "Item",
                json!([
                    { "id": "i1", "main": 2, "north": 5 },
                    { "id": "i2", "main": 10, "north": 0 },
                    { "id": "i3", "main": 0, "north": 3 },
                    { "id": "i4", "main": 7, "north": 0 },
                    { "id": "i5", "main": 1, "north": 4 },
                ]),
            )
            .resolve("Item.stock", |c| {
                // async-graphql's dynamic schema passes an absent variable as null instead of
                // leaving the argument unset, so the default is applied here; the check below
                // makes sure the router did not send the variable as an explicit null.
                let warehouse = c.arg("warehouse").as_str().unwrap_or("main");
                Ok(c.parent[warehouse].clone())
            }),
    ]
}

const FIND_WITH_FILTER: &str =
    "query Find($f: Filter!) { find(filter: $f, limit: 5) { name price } }";

pub async fn run() {
    let mut run = Case::new("arguments", subgraphs()).start().await;

    run.check(
        "input_object_literal_with_defaults",
        "{ find(filter: {category: TOOLS}) { name } }",
    )
    .expect(r#"{"data": {"find": [{"name": "Anvil"}, {"name": "Brush"}]}}"#)
    .await;

    run.check("input_object_variable", FIND_WITH_FILTER)
        .variables(json!({ "f": { "category": "TOOLS", "minPrice": 10 } }))
        .expect(r#"{"data": {"find": [{"name": "Anvil", "price": 40}, {"name": "Chisel", "price": 12}]}}"#)
        .await;

    run.check("input_object_variable_with_list", FIND_WITH_FILTER)
        .variables(json!({ "f": { "category": "TOOLS", "tags": ["sharp"] } }))
        .expect(r#"{"data": {"find": [{"name": "Chisel", "price": 12}]}}"#)
        .await;

    run.check(
        "enum_list_variable",
        "query ($s: [SortKey!]) { find(filter: {category: TOOLS}, sort: $s, limit: 3) { name } }",
    )
    .variables(json!({ "s": ["PRICE"] }))
    .expect(r#"{"data": {"find": [{"name": "Brush"}, {"name": "Chisel"}, {"name": "Anvil"}]}}"#)
    .await;

    run.check(
        "variable_default",
        "query ($limit: Int = 1) { find(filter: {category: TOYS}, limit: $limit) { name } }",
    )
    .expect(r#"{"data": {"find": [{"name": "Kite"}]}}"#)
    .await;

    // A single value where a list is expected is coerced to a one-item list.
    run.check(
        "list_coercion",
        "query ($v: [Int!]!) { literal: echo(values: 7) variable: echo(values: $v) }",
    )
    .variables(json!({ "v": 8 }))
    .expect(r#"{"data": {"literal": [7], "variable": [8]}}"#)
    .await;

    run.check(
        "entity_field_argument_default",
        r#"{ find(filter: {category: TOOLS}) { name stock north: stock(warehouse: "north") } }"#,
    )
    .expect(
        r#"{"data": {"find": [
            {"name": "Anvil", "stock": 2, "north": 5},
            {"name": "Brush", "stock": 10, "north": 0}
        ]}}"#,
    )
    .await;

    run.check(
        "entity_field_argument_variable",
        "query ($w: String) { find(filter: {category: TOYS}) { name stock(warehouse: $w) } }",
    )
    .variables(json!({ "w": "north" }))
    .expect(r#"{"data": {"find": [{"name": "Kite", "stock": 4}, {"name": "Yo-yo", "stock": 0}]}}"#)
    .await;

    // An absent variable leaves the argument unset, so the subgraph's default applies; sending
    // it as an explicit null would not.
    run.check(
        "entity_field_argument_absent_variable",
        "query ($w: String) { find(filter: {category: TOYS}) { name stock(warehouse: $w) } }",
    )
    .expect(r#"{"data": {"find": [{"name": "Kite", "stock": 1}, {"name": "Yo-yo", "stock": 7}]}}"#)
    .requests("details", |bodies| {
        match bodies
            .iter()
            .find(|b| b.pointer("/variables/w").is_some_and(|w| w.is_null()))
        {
            Some(body) => Err(format!("the absent variable was sent as null: {body}")),
            None => Ok(()),
        }
    })
    .await;

    run.check("missing_required_variable_rejected", FIND_WITH_FILTER)
        .expect(r#"{"errors": [{}]}"#)
        .calls("search", 0)
        .await;

    run.check("invalid_enum_in_variable_rejected", FIND_WITH_FILTER)
        .variables(json!({ "f": { "category": "FOOD" } }))
        .expect(r#"{"errors": [{}]}"#)
        .calls("search", 0)
        .await;

    run.check("null_for_non_null_variable_rejected", FIND_WITH_FILTER)
        .variables(json!({ "f": null }))
        .expect(r#"{"errors": [{}]}"#)
        .calls("search", 0)
        .await;

    run.check(
        "operation_name_selects_the_operation",
        "query Toys { find(filter: {category: TOYS}) { name } } query Tools { find(filter: {category: TOOLS}, limit: 1) { name } }",
    )
    .operation_name("Tools")
    .expect(r#"{"data": {"find": [{"name": "Anvil"}]}}"#)
    .await;

    run.finish();
}
