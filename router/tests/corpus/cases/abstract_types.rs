//! Interfaces and unions whose members differ across subgraphs, and fragments on them.
//!
//! The catalog knows `SearchResult = Book | Author` and `Node` on Book and Author; the newsstand
//! knows `SearchResult = Book | Magazine` and `Node` on Book and Magazine. The supergraph has all
//! three members. A subgraph must never be asked about a member it does not know, and fragments
//! on types a result is not must select nothing.
//!
//! Data: catalog books b1 "Moby-Dick", b2 "The Old Man and the Sea", author a1 "Herman Melville";
//! search("sea") = [b1, a1, b2], any other term = []. Newsstand: pages b1 635, b2 127; magazine
//! m1 "Sea Kayaker" issue 42; newsstand() = [m1, b2].

use serde_json::json;

use crate::harness::{Case, Subgraph};

const CATALOG: &str = r#"
type Query {
  search(term: String!): [SearchResult!]!
  node(id: ID!): Node
}

union SearchResult = Book | Author

interface Node {
  id: ID!
}

type Book implements Node @key(fields: "id") {
  id: ID!
  title: String!
}

type Author implements Node @key(fields: "id") {
  id: ID!
  name: String!
}
"#;

const NEWSSTAND: &str = r#"
type Query {
  newsstand: [SearchResult!]!
}

union SearchResult = Book | Magazine

interface Node {
  id: ID!
}

type Book implements Node @key(fields: "id") {
  id: ID!
  pages: Int!
}

type Magazine implements Node @key(fields: "id") {
  id: ID!
  title: String!
  issue: Int!
}
"#;

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        Subgraph::new("catalog", CATALOG)
            .rows(
                "Book",
                json!([
                    { "__typename": "Book", "id": "b1", "title": "Moby-Dick" },
                    { "__typename": "Book", "id": "b2", "title": "The Old Man and the Sea" },
                ]),
            )
            .rows("Author", json!([{ "__typename": "Author", "id": "a1", "name": "Herman Melville" }]))
            .resolve("Query.search", |c| {
                if c.arg("term") != &json!("sea") {
                    return Ok(json!([]));
                }
                let id = |t: &str, i: &str| c.find(t, "id", &json!(i));
                Ok(json!([id("Book", "b1"), id("Author", "a1"), id("Book", "b2")]))
            })
            .resolve("Query.node", |c| {
                let id = c.arg("id").clone();
                let found = [c.find("Book", "id", &id), c.find("Author", "id", &id)];
                Ok(found.into_iter().find(|v| !v.is_null()).unwrap_or_default())
            }),
        Subgraph::new("newsstand", NEWSSTAND)
            .rows(
                "Book",
                json!([
                    { "__typename": "Book", "id": "b1", "pages": 635 },
                    { "__typename": "Book", "id": "b2", "pages": 127 },
                ]),
            )
            .rows("Magazine", json!([{ "__typename": "Magazine", "id": "m1", "title": "Sea Kayaker", "issue": 42 }]))
            .resolve("Query.newsstand", |c| {
                Ok(json!([c.find("Magazine", "id", &json!("m1")), c.find("Book", "id", &json!("b2"))]))
            }),
    ]
}

pub async fn run() {
    let mut run = Case::new("abstract_types", subgraphs()).start().await;

    // The Magazine fragment cannot apply to catalog results; pages come from the newsstand.
    run.check(
        "union_with_member_unknown_to_the_subgraph",
        r#"{ search(term: "sea") { __typename ... on Book { title pages } ... on Author { name } ... on Magazine { issue } } }"#,
    )
    .expect(
        r#"{"data": {"search": [
            {"__typename": "Book", "title": "Moby-Dick", "pages": 635},
            {"__typename": "Author", "name": "Herman Melville"},
            {"__typename": "Book", "title": "The Old Man and the Sea", "pages": 127}
        ]}}"#,
    )
    .representations("newsstand", 2)
    .await;

    run.check(
        "union_from_the_other_subgraph",
        "{ newsstand { __typename ... on Book { title } ... on Magazine { title issue } ... on Author { name } } }",
    )
    .expect(
        r#"{"data": {"newsstand": [
            {"__typename": "Magazine", "title": "Sea Kayaker", "issue": 42},
            {"__typename": "Book", "title": "The Old Man and the Sea"}
        ]}}"#,
    )
    .await;

    run.check(
        "empty_abstract_list",
        r#"{ search(term: "desert") { __typename } }"#,
    )
    .expect(r#"{"data": {"search": []}}"#)
    .await;

    run.check(
        "interface_inside_union",
        r#"{ search(term: "sea") { ... on Node { id } ... on Author { name } } }"#,
    )
    .expect(
        r#"{"data": {"search": [
            {"id": "b1"},
            {"id": "a1", "name": "Herman Melville"},
            {"id": "b2"}
        ]}}"#,
    )
    .await;

    run.check(
        "interface_field_with_type_conditions",
        r#"{ a: node(id: "a1") { __typename id ... on Book { pages } ... on Author { name } } b: node(id: "b1") { __typename id ... on Book { title pages } } c: node(id: "zz") { id } }"#,
    )
    .expect(
        r#"{"data": {
            "a": {"__typename": "Author", "id": "a1", "name": "Herman Melville"},
            "b": {"__typename": "Book", "id": "b1", "title": "Moby-Dick", "pages": 635},
            "c": null
        }}"#,
    )
    .await;

    // Named fragments nested in each other, spread on a union, an interface and an object; the
    // same field reached through two fragments appears once, where it was first selected.
    run.check(
        "nested_named_fragments",
        r#"query Search { search(term: "sea") { ...Result } }
           fragment Result on SearchResult { __typename ...Identified ...BookInfo }
           fragment Identified on Node { id }
           fragment BookInfo on Book { title ...Identified pages }"#,
    )
    .expect(
        r#"{"data": {"search": [
            {"__typename": "Book", "id": "b1", "title": "Moby-Dick", "pages": 635},
            {"__typename": "Author", "id": "a1"},
            {"__typename": "Book", "id": "b2", "title": "The Old Man and the Sea", "pages": 127}
        ]}}"#,
    )
    .await;

    // Inline fragments without a type condition, and on the field's own type.
    run.check(
        "untyped_and_redundant_inline_fragments",
        r#"{ newsstand { ... { __typename } ... on SearchResult { ... on Magazine { issue } } } }"#,
    )
    .expect(
        r#"{"data": {"newsstand": [
            {"__typename": "Magazine", "issue": 42},
            {"__typename": "Book"}
        ]}}"#,
    )
    .await;

    run.finish();
}
