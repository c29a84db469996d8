//! Mutations: root fields run one after the other in selection order, across subgraphs, each
//! with its whole selection (entity fetches included) finished before the next starts.
//!
//! Both subgraphs append to the case journal when they act, which records the order across
//! them; `addEntry` is slowed down so a router that ran root fields concurrently would let the
//! later ones overtake it. Entries get ids e1, e2, ... in creation order; `seq` is the journal
//! position of the side effect (so 1, 2, 3... over the whole case).

use serde_json::json;

use crate::harness::{Case, Subgraph, subgraph::SLOW};

const LEDGER: &str = r#"
type Query {
  entries: [Entry!]!
}

type Mutation {
  addEntry(text: String!): Entry!
}

type Entry @key(fields: "id") {
  id: ID!
  text: String!
  seq: Int!
}
"#;

const AUDIT: &str = r#"
type Mutation {
  stamp(note: String!): Stamp!
}

type Stamp {
  note: String!
  seq: Int!
}

type Entry @key(fields: "id") {
  id: ID!
  checked: String!
}
"#;

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        Subgraph::new("ledger", LEDGER)
            .rows("Entry", json!([]))
            .delay("Mutation.addEntry", SLOW)
            .resolve("Query.entries", |c| Ok(c.all("Entry")))
            .resolve("Mutation.addEntry", |c| {
                let text = c.arg("text").as_str().ok_or("text is required")?.to_owned();
                let seq = c.journal(&format!("add {text}"));
                let entries = c.rows.entry("Entry".to_owned()).or_default();
                let entry =
                    json!({ "id": format!("e{}", entries.len() + 1), "text": text, "seq": seq });
                entries.push(entry.clone());
                Ok(entry)
            }),
        Subgraph::new("audit", AUDIT)
            .key_only("Entry")
            .resolve("Mutation.stamp", |c| {
                let note = c.arg("note").as_str().ok_or("note is required")?.to_owned();
                let seq = c.journal(&format!("stamp {note}"));
                Ok(json!({ "note": note, "seq": seq }))
            })
            .resolve("Entry.checked", |c| {
                let id = c.parent["id"].as_str().ok_or("id was not sent")?.to_owned();
                c.journal(&format!("check {id}"));
                Ok(json!(format!("checked {id}")))
            }),
    ]
}

pub async fn run() {
    let mut run = Case::new("mutations", subgraphs()).start().await;

    run.check(
        "root_fields_in_order_across_subgraphs",
        r#"mutation {
             a: addEntry(text: "one") { id seq checked }
             b: stamp(note: "two") { note seq }
             c: addEntry(text: "three") { id text seq }
           }"#,
    )
    .expect(
        r#"{"data": {
            "a": {"id": "e1", "seq": 1, "checked": "checked e1"},
            "b": {"note": "two", "seq": 3},
            "c": {"id": "e2", "text": "three", "seq": 4}
        }}"#,
    )
    .journal(&[
        "ledger:add one",
        "audit:check e1",
        "audit:stamp two",
        "ledger:add three",
    ])
    .await;

    // Each mutation ran exactly once: no retry, no deduplication of the two identical fields.
    run.check("state_after_mutations", "{ entries { id text } }")
        .expect(r#"{"data": {"entries": [{"id": "e1", "text": "one"}, {"id": "e2", "text": "three"}]}}"#)
        .journal(&[])
        .await;

    run.check(
        "identical_mutations_both_run",
        r#"mutation Twice($t: String!) { x: addEntry(text: $t) { id } y: addEntry(text: $t) { id } }"#,
    )
    .variables(json!({ "t": "again" }))
    .expect(r#"{"data": {"x": {"id": "e3"}, "y": {"id": "e4"}}}"#)
    .journal(&["ledger:add again", "ledger:add again"])
    .await;

    run.check("mutation_typename", "mutation { __typename }")
        .expect(r#"{"data": {"__typename": "Mutation"}}"#)
        .journal(&[])
        .await;

    run.finish();
}
