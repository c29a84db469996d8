//! `@skip` and `@include`: literals, variables, variable defaults, on fields, inline fragments
//! and fragment spreads, both on one field, on root fields, and on fields that need another
//! subgraph (where a skipped field must not cause a fetch).
//!
//! Data: u1 Ada Lovelace, bio "Analyst", avatar "ada.png"; u2 Alan Turing, bio "Codebreaker",
//! avatar "alan.png". Users come from `users`, bio and avatar from `profiles`.

use serde_json::json;

use crate::harness::{Case, Subgraph};

const USERS: &str = r#"
type Query {
  user(id: ID!): User
  users: [User!]!
}

type User @key(fields: "id") {
  id: ID!
  name: String!
}
"#;

const PROFILES: &str = r#"
type User @key(fields: "id") {
  id: ID!
  bio: String!
  avatar: String!
}
"#;

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        Subgraph::new("users", USERS)
            .rows("User", json!([{ "id": "u1", "name": "Ada Lovelace" }, { "id": "u2", "name": "Alan Turing" }]))
            .resolve("Query.user", |c| Ok(c.find("User", "id", c.arg("id"))))
            .resolve("Query.users", |c| Ok(c.all("User"))),
        Subgraph::new("profiles", PROFILES).rows(
            "User",
            json!([
                { "id": "u1", "bio": "Analyst", "avatar": "ada.png" },
                { "id": "u2", "bio": "Codebreaker", "avatar": "alan.png" },
            ]),
        ),
    ]
}

const WITH_BIO: &str =
    r#"query ($withBio: Boolean!) { user(id: "u1") { name bio @include(if: $withBio) } }"#;
const SKIP_BIO_DEFAULT: &str =
    r#"query ($skipBio: Boolean = true) { user(id: "u1") { name bio @skip(if: $skipBio) } }"#;

pub async fn run() {
    let mut run = Case::new("skip_include", subgraphs()).start().await;

    run.check(
        "skip_literal_true",
        r#"{ user(id: "u1") { name bio @skip(if: true) } }"#,
    )
    .expect(r#"{"data": {"user": {"name": "Ada Lovelace"}}}"#)
    .calls("profiles", 0)
    .await;

    run.check(
        "include_literal_true",
        r#"{ user(id: "u1") { name bio @include(if: true) } }"#,
    )
    .expect(r#"{"data": {"user": {"name": "Ada Lovelace", "bio": "Analyst"}}}"#)
    .await;

    run.check("include_variable_false", WITH_BIO)
        .variables(json!({ "withBio": false }))
        .expect(r#"{"data": {"user": {"name": "Ada Lovelace"}}}"#)
        .calls("profiles", 0)
        .await;

    run.check("include_variable_true", WITH_BIO)
        .variables(json!({ "withBio": true }))
        .expect(r#"{"data": {"user": {"name": "Ada Lovelace", "bio": "Analyst"}}}"#)
        .calls("profiles", 1)
        .await;

    run.check("skip_variable_default_applies", SKIP_BIO_DEFAULT)
        .expect(r#"{"data": {"user": {"name": "Ada Lovelace"}}}"#)
        .calls("profiles", 0)
        .await;

    run.check("skip_variable_default_overridden", SKIP_BIO_DEFAULT)
        .variables(json!({ "skipBio": false }))
        .expect(r#"{"data": {"user": {"name": "Ada Lovelace", "bio": "Analyst"}}}"#)
        .await;

    run.check(
        "include_on_inline_fragment",
        r#"query ($full: Boolean!) { users { name ... on User @include(if: $full) { bio avatar } } }"#,
    )
    .variables(json!({ "full": true }))
    .expect(
        r#"{"data": {"users": [
            {"name": "Ada Lovelace", "bio": "Analyst", "avatar": "ada.png"},
            {"name": "Alan Turing", "bio": "Codebreaker", "avatar": "alan.png"}
        ]}}"#,
    )
    .await;

    run.check(
        "skip_on_fragment_spread",
        r#"query ($brief: Boolean!) { users { ...Profile @skip(if: $brief) name } }
           fragment Profile on User { avatar }"#,
    )
    .variables(json!({ "brief": true }))
    .expect(r#"{"data": {"users": [{"name": "Ada Lovelace"}, {"name": "Alan Turing"}]}}"#)
    .calls("profiles", 0)
    .await;

    // Included only when not skipped and included.
    run.check(
        "skip_and_include_on_one_field",
        r#"query ($s: Boolean!, $i: Boolean!) { user(id: "u2") { a: bio @skip(if: $s) @include(if: $i) b: bio @skip(if: $s) @include(if: true) name } }"#,
    )
    .variables(json!({ "s": false, "i": false }))
    .expect(r#"{"data": {"user": {"b": "Codebreaker", "name": "Alan Turing"}}}"#)
    .await;

    // The same field twice under different conditions: present when either holds, at the
    // position of its first *included* occurrence (a skipped field creates no response key).
    run.check(
        "same_field_under_two_conditions",
        r#"query ($a: Boolean!, $b: Boolean!) { user(id: "u2") { bio @include(if: $a) name bio @include(if: $b) } }"#,
    )
    .variables(json!({ "a": false, "b": true }))
    .expect(r#"{"data": {"user": {"name": "Alan Turing", "bio": "Codebreaker"}}}"#)
    .await;

    run.check(
        "skipped_root_field",
        r#"query ($s: Boolean!) { user(id: "u1") @skip(if: $s) { name } users { id } }"#,
    )
    .variables(json!({ "s": true }))
    .expect(r#"{"data": {"users": [{"id": "u1"}, {"id": "u2"}]}}"#)
    .await;

    run.check(
        "everything_skipped",
        r#"query ($s: Boolean!) { user(id: "u1") @skip(if: $s) { name } }"#,
    )
    .variables(json!({ "s": true }))
    .expect(r#"{"data": {}}"#)
    .await;

    run.finish();
}
