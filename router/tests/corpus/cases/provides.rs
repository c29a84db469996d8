//! `@provides`: on an object field, on an interface-typed field and on a union-typed field (the
//! last two through type conditions: composition refuses to provide an interface field itself).
//! Provided fields are read from the providing subgraph without calling the owner; the same
//! fields on a path without `@provides` (where the subgraph does not have them) must come from
//! the owner, and fields that are not provided still do.
//!
//! Data: users u1 Ada (ada), u2 Alan (alan); reviews r1 "Great." by u1, r2 "Meh." by u2; the
//! top author is u2, whom the reviews subgraph knows by id only. Media: article a1 "Knots for
//! Sailors" (1200 words), video v1 "Loading a Pallet" (95 s).

use serde_json::json;

use crate::harness::{Case, Subgraph};

const ACCOUNTS: &str = r#"
type Query {
  me: User
}

type User @key(fields: "id") {
  id: ID!
  name: String!
  username: String!
}
"#;

const MEDIA: &str = r#"
interface Media {
  id: ID!
  title: String!
}

type Article implements Media @key(fields: "id") {
  id: ID!
  title: String!
  words: Int!
}

type Video implements Media @key(fields: "id") {
  id: ID!
  title: String!
  seconds: Int!
}
"#;

const REVIEWS: &str = r#"
type Query {
  reviews: [Review!]!
  topAuthor: User
  spotlight: Media! @provides(fields: "... on Article { title } ... on Video { title }")
  featured: [Featured!]! @provides(fields: "... on Article { title } ... on Video { title }")
}

type Review {
  id: ID!
  body: String!
  author: User! @provides(fields: "username")
}

type User @key(fields: "id") {
  id: ID!
  username: String! @external
}

interface Media {
  id: ID!
  title: String!
}

union Featured = Article | Video

type Article implements Media @key(fields: "id") {
  id: ID!
  title: String! @external
}

type Video implements Media @key(fields: "id") {
  id: ID!
  title: String! @external
}
"#;

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        Subgraph::new("accounts", ACCOUNTS)
            .rows(
                "User",
                json!([
                    { "id": "u1", "name": "Ada Lovelace", "username": "ada" },
                    { "id": "u2", "name": "Alan Turing", "username": "alan" },
                ]),
            )
            .resolve("Query.me", |c| Ok(c.find("User", "id", &json!("u1")))),
        Subgraph::new("media", MEDIA)
            .rows(
                "Article",
                json!([{ "id": "a1", "title": "Knots for Sailors", "words": 1200 }]),
            )
            .rows(
                "Video",
                json!([{ "id": "v1", "title": "Loading a Pallet", "seconds": 95 }]),
            ),
        // Where it provides, the reviews subgraph has the external values; elsewhere it has
        // only keys, so a router that asked it for them would get errors, not data.
        Subgraph::new("reviews", REVIEWS).root(json!({
            "reviews": [
                { "id": "r1", "body": "Great.", "author": { "id": "u1", "username": "ada" } },
                { "id": "r2", "body": "Meh.", "author": { "id": "u2", "username": "alan" } },
            ],
            "topAuthor": { "id": "u2" },
            "spotlight": { "__typename": "Article", "id": "a1", "title": "Knots for Sailors" },
            "featured": [
                { "__typename": "Video", "id": "v1", "title": "Loading a Pallet" },
                { "__typename": "Article", "id": "a1", "title": "Knots for Sailors" },
            ],
        })),
    ]
}

pub async fn run() {
    let mut run = Case::new("provides", subgraphs()).start().await;

    run.check(
        "provided_field_skips_owner",
        "{ reviews { body author { username } } }",
    )
    .expect(
        r#"{"data": {"reviews": [
                {"body": "Great.", "author": {"username": "ada"}},
                {"body": "Meh.", "author": {"username": "alan"}}
            ]}}"#,
    )
    .calls("accounts", 0)
    .await;

    run.check(
        "unprovided_field_from_owner",
        "{ reviews { author { username name } } }",
    )
    .expect(
        r#"{"data": {"reviews": [
                {"author": {"username": "ada", "name": "Ada Lovelace"}},
                {"author": {"username": "alan", "name": "Alan Turing"}}
            ]}}"#,
    )
    .calls("accounts", 1)
    .await;

    // topAuthor has no @provides: username must come from accounts.
    run.check("not_provided_on_other_paths", "{ topAuthor { username } }")
        .expect(r#"{"data": {"topAuthor": {"username": "alan"}}}"#)
        .calls("accounts", 1)
        .await;

    run.check("provides_on_interface", "{ spotlight { id title } }")
        .expect(r#"{"data": {"spotlight": {"id": "a1", "title": "Knots for Sailors"}}}"#)
        .calls("media", 0)
        .await;

    run.check(
        "provides_on_interface_plus_owner_fields",
        "{ spotlight { __typename title ... on Article { words } } }",
    )
    .expect(
        r#"{"data": {"spotlight": {"__typename": "Article", "title": "Knots for Sailors", "words": 1200}}}"#,
    )
    .calls("media", 1)
    .await;

    run.check(
        "provides_on_union",
        "{ featured { ... on Article { title } ... on Video { title } } }",
    )
    .expect(
        r#"{"data": {"featured": [{"title": "Loading a Pallet"}, {"title": "Knots for Sailors"}]}}"#,
    )
    .calls("media", 0)
    .await;

    run.check(
        "provides_on_union_plus_owner_fields",
        "{ featured { __typename ... on Video { title seconds } ... on Article { id words } } }",
    )
    .expect(
        r#"{"data": {"featured": [
            {"__typename": "Video", "title": "Loading a Pallet", "seconds": 95},
            {"__typename": "Article", "id": "a1", "words": 1200}
        ]}}"#,
    )
    .calls("media", 1)
    .await;

    run.finish();
}
