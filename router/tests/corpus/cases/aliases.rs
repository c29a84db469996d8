//! Aliases, including ones that would collide in a subgraph query: client aliases named like the
//! key fields the router needs for entity calls, swapped field names, the same field with
//! different arguments, an aliased entity reference next to the unaliased one, and aliased
//! `__typename`. Responses keep the client's names and order.
//!
//! Data: users u1 Ada (ada@example.com), u2 Alan (alan@example.com); reviews r1 "Great." by
//! u1, r2 "Meh." by u2, r3 "Fine." by u1. `User.reviews(first:)` lists a user's reviews.
//!
//! Both subgraphs answer with every object's keys reversed and an extra `leak` key the router
//! never asked for: responses must still come in the client's order, without it.

use serde_json::json;

use crate::harness::{Case, Subgraph, json::Json};

const ACCOUNTS: &str = r#"
type Query {
  user(id: ID!): User
}

type User @key(fields: "id") {
  id: ID!
  name: String!
  email: String!
}
"#;

const REVIEWS: &str = r#"
type Query {
  topReviews: [Review!]!
}

type Review @key(fields: "id") {
  id: ID!
  body: String!
  author: User!
}

type User @key(fields: "id") {
  id: ID!
  reviews(first: Int!): [Review!]!
}
"#;

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        Subgraph::new("accounts", ACCOUNTS)
            .rows(
                "User",
                json!([
                    { "id": "u1", "name": "Ada Lovelace", "email": "ada@example.com" },
                    { "id": "u2", "name": "Alan Turing", "email": "alan@example.com" },
                ]),
            )
            .resolve("Query.user", |c| Ok(c.find("User", "id", c.arg("id"))))
            .tamper(scramble),
        Subgraph::new("reviews", REVIEWS)
            .rows(
                "Review",
                json!([
                    { "id": "r1", "body": "Great.", "author": { "id": "u1" } },
                    { "id": "r2", "body": "Meh.", "author": { "id": "u2" } },
                    { "id": "r3", "body": "Fine.", "author": { "id": "u1" } },
                ]),
            )
            .key_only("User")
            .resolve("Query.topReviews", |c| Ok(c.all("Review")))
            .resolve("User.reviews", |c| {
                let (id, first) = (
                    c.parent["id"].clone(),
                    c.arg("first").as_u64().unwrap_or(0) as usize,
                );
                let mine = c.filter("Review", |r| r["author"]["id"] == id);
                Ok(json!(
                    mine.as_array()
                        .unwrap()
                        .iter()
                        .take(first)
                        .collect::<Vec<_>>()
                ))
            })
            .tamper(scramble),
    ]
}

fn scramble(_request: &serde_json::Value, response: &mut Json) {
    if let Some(data) = response.get_mut("data") {
        data.scramble("leak", &Json::String("not selected".to_owned()));
    }
}

pub async fn run() {
    let mut run = Case::new("aliases", subgraphs()).start().await;

    // `id` is the key the router needs for the author; the client uses it for something else.
    run.check(
        "alias_named_like_the_key",
        "{ topReviews { id: body author { id: name } } }",
    )
    .expect(
        r#"{"data": {"topReviews": [
                {"id": "Great.", "author": {"id": "Ada Lovelace"}},
                {"id": "Meh.", "author": {"id": "Alan Turing"}},
                {"id": "Fine.", "author": {"id": "Ada Lovelace"}}
            ]}}"#,
    )
    .await;

    run.check(
        "swapped_names_in_entity_call",
        "{ topReviews { author { email: name name: email } } }",
    )
    .expect(
        r#"{"data": {"topReviews": [
                {"author": {"email": "Ada Lovelace", "name": "ada@example.com"}},
                {"author": {"email": "Alan Turing", "name": "alan@example.com"}},
                {"author": {"email": "Ada Lovelace", "name": "ada@example.com"}}
            ]}}"#,
    )
    .await;

    run.check(
        "same_root_field_different_arguments",
        r#"{ b: user(id: "u2") { name } a: user(id: "u1") { name } }"#,
    )
    .expect(r#"{"data": {"b": {"name": "Alan Turing"}, "a": {"name": "Ada Lovelace"}}}"#)
    .await;

    run.check(
        "same_entity_field_different_arguments",
        r#"{ user(id: "u1") { one: reviews(first: 1) { body } two: reviews(first: 2) { id } } }"#,
    )
    .expect(
        r#"{"data": {"user": {"one": [{"body": "Great."}], "two": [{"id": "r1"}, {"id": "r3"}]}}}"#,
    )
    .calls("reviews", 1)
    .await;

    run.check(
        "aliased_entity_reference_beside_unaliased",
        r#"{ topReviews { author { name } writer: author { email } } }"#,
    )
    .expect(
        r#"{"data": {"topReviews": [
            {"author": {"name": "Ada Lovelace"}, "writer": {"email": "ada@example.com"}},
            {"author": {"name": "Alan Turing"}, "writer": {"email": "alan@example.com"}},
            {"author": {"name": "Ada Lovelace"}, "writer": {"email": "ada@example.com"}}
        ]}}"#,
    )
    .await;

    run.check(
        "aliased_typename",
        r#"{ topReviews { kind: __typename author { kind: __typename id } } }"#,
    )
    .expect(
        r#"{"data": {"topReviews": [
            {"kind": "Review", "author": {"kind": "User", "id": "u1"}},
            {"kind": "Review", "author": {"kind": "User", "id": "u2"}},
            {"kind": "Review", "author": {"kind": "User", "id": "u1"}}
        ]}}"#,
    )
    .calls("accounts", 0)
    .await;

    // One response key selected twice: the sub-selections merge, in first-seen order.
    run.check(
        "selections_of_one_field_merge",
        "{ topReviews { author { name } id author { email name } } }",
    )
    .expect(
        r#"{"data": {"topReviews": [
            {"author": {"name": "Ada Lovelace", "email": "ada@example.com"}, "id": "r1"},
            {"author": {"name": "Alan Turing", "email": "alan@example.com"}, "id": "r2"},
            {"author": {"name": "Ada Lovelace", "email": "ada@example.com"}, "id": "r3"}
        ]}}"#,
    )
    .await;

    run.check(
        "fragments_merge_into_one_entity",
        r#"query { user(id: "u1") { ...Posts name ...Contact } }
           fragment Posts on User { reviews(first: 1) { id } }
           fragment Contact on User { email reviews(first: 1) { body } }"#,
    )
    .expect(
        r#"{"data": {"user": {"reviews": [{"id": "r1", "body": "Great."}], "name": "Ada Lovelace", "email": "ada@example.com"}}}"#,
    )
    .await;

    // The client's variable has the name routers give the representations of entity calls.
    run.check(
        "client_variable_named_representations",
        r#"query ($representations: Int!) { user(id: "u1") { name reviews(first: $representations) { body } } }"#,
    )
    .variables(json!({ "representations": 1 }))
    .expect(r#"{"data": {"user": {"name": "Ada Lovelace", "reviews": [{"body": "Great."}]}}}"#)
    .await;

    // An alias of a field that only another subgraph resolves, at two depths.
    run.check(
        "aliases_across_a_round_trip",
        r#"{ user(id: "u2") { handle: name posts: reviews(first: 5) { text: body by: author { handle: name } } } }"#,
    )
    .expect(
        r#"{"data": {"user": {"handle": "Alan Turing", "posts": [{"text": "Meh.", "by": {"handle": "Alan Turing"}}]}}}"#,
    )
    .await;

    run.finish();
}
