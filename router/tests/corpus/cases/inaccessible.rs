//! `@inaccessible` and introspection: operations touching inaccessible fields, root fields,
//! arguments, enum values or types are rejected before any subgraph is called; an inaccessible
//! key still joins subgraphs behind the scenes; introspection shows the API schema only (no
//! `join__`/`link__` machinery, no inaccessible elements, no `_service`/`_entities`).
//!
//! Data: users u1 Ada (MEMBER, internal id i-100, plan "pro"), u2 Alan (ADMIN, i-200, "free").
//! Billing knows users only by their inaccessible `internalId`.

use serde_json::json;

use crate::harness::{Case, Subgraph, json::Json};

const ACCOUNTS: &str = r#"
type Query {
  users: [User!]!
  usersByRole(role: Role!): [User!]!
  user(id: ID!, includeDeleted: Boolean = false @inaccessible): User
  internalUsers: [User!]! @inaccessible
}

type User @key(fields: "id") @key(fields: "internalId") {
  id: ID!
  name: String!
  role: Role!
  internalId: ID! @inaccessible
  passwordHash: String! @inaccessible
}

enum Role {
  ADMIN
  MEMBER
  SYSTEM @inaccessible
}

type AuditRecord @inaccessible {
  id: ID!
  user: User!
}
"#;

const BILLING: &str = r#"
type User @key(fields: "internalId") {
  internalId: ID! @inaccessible
  plan: String!
}
"#;

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        Subgraph::new("accounts", ACCOUNTS)
            .rows(
                "User",
                json!([
                    { "id": "u1", "name": "Ada Lovelace", "role": "MEMBER", "internalId": "i-100", "passwordHash": "x1" },
                    { "id": "u2", "name": "Alan Turing", "role": "ADMIN", "internalId": "i-200", "passwordHash": "x2" },
                ]),
            )
            .resolve("Query.users", |c| Ok(c.all("User")))
            .resolve("Query.internalUsers", |c| Ok(c.all("User")))
            .resolve("Query.user", |c| Ok(c.find("User", "id", c.arg("id"))))
            .resolve("Query.usersByRole", |c| {
                let role = c.arg("role").clone();
                Ok(c.filter("User", |u| u["role"] == role))
            }),
        Subgraph::new("billing", BILLING).rows(
            "User",
            json!([
                { "internalId": "i-100", "plan": "pro" },
                { "internalId": "i-200", "plan": "free" },
            ]),
        ),
    ]
}

const REJECTED: &str = r#"{"errors": [{"extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}"#;

/// Type names of the API schema, as composed in `inaccessible.supergraph.graphql` minus the
/// inaccessible ones and federation's own.
const API_TYPES: &[&str] = &["Query", "User", "Role", "ID", "String", "Boolean"];

/// Names that must not appear anywhere in an introspection result.
const HIDDEN: &[&str] = &[
    "internalUsers",
    "includeDeleted",
    "internalId",
    "passwordHash",
    "SYSTEM",
    "AuditRecord",
    "_service",
    "_entities",
    "_Any",
    "_Entity",
    "_Service",
];

/// Every `name` in the introspection result: none hidden, none federation machinery.
fn no_hidden_names(response: &Json) -> Result<(), String> {
    fn walk(value: &Json, found: &mut Vec<String>) {
        match value {
            Json::Object(entries) => {
                for (key, value) in entries {
                    if key == "name"
                        && let Json::String(name) = value
                    {
                        found.push(name.clone());
                    }
                    walk(value, found);
                }
            }
            Json::Array(items) => items.iter().for_each(|item| walk(item, found)),
            _ => {}
        }
    }
    let mut names = Vec::new();
    walk(response.get("data").ok_or("no data")?, &mut names);
    let leaked: Vec<&String> = names
        .iter()
        .filter(|n| {
            HIDDEN.contains(&n.as_str())
                || n.starts_with("join__")
                || n.starts_with("link__")
                || *n == "link"
                || *n == "inaccessible"
        })
        .collect();
    if !leaked.is_empty() {
        return Err(format!("introspection leaks {leaked:?}"));
    }
    for expected in API_TYPES {
        if !names.iter().any(|n| n == expected) {
            return Err(format!("introspection lacks type {expected}"));
        }
    }
    Ok(())
}

/// The standard introspection query GraphQL tools send (graphql-js `getIntrospectionQuery`).
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
"#;

pub async fn run() {
    let mut run = Case::new("inaccessible", subgraphs()).start().await;

    run.check(
        "inaccessible_field_rejected",
        "{ users { name passwordHash } }",
    )
    .expect(REJECTED)
    .calls("accounts", 0)
    .await;

    run.check(
        "inaccessible_root_field_rejected",
        "{ internalUsers { name } }",
    )
    .expect(REJECTED)
    .calls("accounts", 0)
    .await;

    run.check(
        "inaccessible_argument_rejected",
        r#"{ user(id: "u1", includeDeleted: true) { name } }"#,
    )
    .expect(REJECTED)
    .calls("accounts", 0)
    .await;

    run.check(
        "inaccessible_enum_value_rejected",
        "{ usersByRole(role: SYSTEM) { name } }",
    )
    .expect(REJECTED)
    .await;

    run.check(
        "inaccessible_enum_value_in_variable_rejected",
        "query ($role: Role!) { usersByRole(role: $role) { name } }",
    )
    .variables(json!({ "role": "SYSTEM" }))
    .expect(r#"{"errors": [{}]}"#)
    .calls("accounts", 0)
    .await;

    run.check(
        "inaccessible_type_rejected",
        "{ users { ... on AuditRecord { id } } }",
    )
    .expect(REJECTED)
    .await;

    run.check("federation_fields_rejected", "{ _service { sdl } }")
        .expect(REJECTED)
        .calls("accounts", 0)
        .calls("billing", 0)
        .await;

    run.check(
        "entities_field_rejected",
        r#"{ _entities(representations: [{__typename: "User", id: "u1"}]) { ... on User { name } } }"#,
    )
    .expect(REJECTED)
    .await;

    // Accessible parts work, and the inaccessible key joins billing without being shown.
    run.check(
        "inaccessible_key_joins_subgraphs",
        "{ users { name role plan } }",
    )
    .expect(
        r#"{"data": {"users": [
                {"name": "Ada Lovelace", "role": "MEMBER", "plan": "pro"},
                {"name": "Alan Turing", "role": "ADMIN", "plan": "free"}
            ]}}"#,
    )
    .await;

    run.check(
        "accessible_enum_argument",
        "{ usersByRole(role: ADMIN) { name } }",
    )
    .expect(r#"{"data": {"usersByRole": [{"name": "Alan Turing"}]}}"#)
    .await;

    run.check("root_typename", "{ __typename a: __typename }")
        .expect(r#"{"data": {"__typename": "Query", "a": "Query"}}"#)
        .calls("accounts", 0)
        .calls("billing", 0)
        .await;

    run.check(
        "introspection_of_types",
        r#"{ user: __type(name: "User") { kind fields { name } }
             role: __type(name: "Role") { enumValues { name } }
             query: __type(name: "Query") { fields { name args { name } } }
             graph: __type(name: "join__Graph") { name }
             purpose: __type(name: "link__Purpose") { name }
             audit: __type(name: "AuditRecord") { name } }"#,
    )
    .expect(
        r#"{"data": {
            "user": {"kind": "OBJECT", "fields": [{"name": "id"}, {"name": "name"}, {"name": "role"}, {"name": "plan"}]},
            "role": {"enumValues": [{"name": "ADMIN"}, {"name": "MEMBER"}]},
            "query": {"fields": [
                {"name": "users", "args": []},
                {"name": "usersByRole", "args": [{"name": "role"}]},
                {"name": "user", "args": [{"name": "id"}]}
            ]},
            "graph": null,
            "purpose": null,
            "audit": null
        }}"#,
    )
    .calls("accounts", 0)
    .await;

    // Fields the router answers itself and fields from subgraphs keep the client's order.
    run.check(
        "introspection_mixed_with_data",
        r#"{ __typename usersByRole(role: MEMBER) { __typename name } role: __type(name: "Role") { name } kind: __typename }"#,
    )
    .expect(
        r#"{"data": {
            "__typename": "Query",
            "usersByRole": [{"__typename": "User", "name": "Ada Lovelace"}],
            "role": {"name": "Role"},
            "kind": "Query"
        }}"#,
    )
    .await;

    run.check(
        "introspection_roots",
        "{ __schema { queryType { name } mutationType { name } subscriptionType { name } } }",
    )
    .expect(
        r#"{"data": {"__schema": {"queryType": {"name": "Query"}, "mutationType": null, "subscriptionType": null}}}"#,
    )
    .await;

    run.check("full_introspection_hides_internals", INTROSPECTION)
        .satisfies(no_hidden_names)
        .satisfies(|response| match response.get("errors") {
            None => Ok(()),
            Some(errors) => Err(format!("introspection failed: {errors}")),
        })
        .calls("accounts", 0)
        .calls("billing", 0)
        .await;

    run.finish();
}
