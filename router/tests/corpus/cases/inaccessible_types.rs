//! `@inaccessible` runtime types: an object whose type is not in the API schema cannot be
//! represented, so it comes back as `null` (propagated like any null where the position is
//! non-null), never with its fields or `__typename`. Covered behind an interface (a list with
//! nullable items, a list with non-null items, a nullable field, a non-null field), in a union,
//! in an entity fetched from another subgraph, under `@provides`, and when the object was
//! fetched for a `@requires` whose selection nests inline fragments (on the interface, then on
//! the inaccessible type itself): the requiring subgraph still gets the object (requirements are
//! internal), the client never sees it. The subgraphs declare `interface Item implements Node`,
//! but async-graphql's SDL export drops an interface's `implements`, so the composed supergraph
//! has the two interfaces side by side: client fragments on `Node` inside `Item` still apply
//! (their possible types overlap), but a requirement nesting them does not compose here.
//!
//! Data (catalog): books b1 "Dune" (412 pages, related: draft d1 "Untitled"), b2 "Emma" (320
//! pages, related: b1). Drafts are `@inaccessible`. `items` and `strictItems` are b1, d1, b2;
//! `latest` is d1; shelf "New" pins d1; `search` is b2, d1. Links: b1's sequel is d1, b2's is b1;
//! `pick` is d1 (title provided). Reviews: a summary is "<title> (see <related's id>: <related's
//! title>)", from the required `related`.

use serde_json::json;

use crate::harness::{Case, Subgraph};

const CATALOG: &str = r#"
type Query {
  books: [Book!]!
  items: [Item]!
  strictItems: [Item!]
  latest: Item
  shelf: Shelf
  search: [Result]!
}

interface Node {
  id: ID!
}

interface Item implements Node {
  id: ID!
  title: String!
}

type Book implements Node & Item @key(fields: "id") {
  id: ID!
  title: String! @shareable
  pages: Int!
  related: Item
}

type Draft implements Node & Item @shareable @inaccessible {
  id: ID!
  title: String!
}

union Result = Book | Draft

type Shelf {
  name: String!
  pinned: Item!
}
"#;

const LINKS: &str = r#"
type Query {
  pick: Item @provides(fields: "... on Book { title }")
}

interface Node {
  id: ID!
}

interface Item implements Node {
  id: ID!
  title: String!
}

type Book implements Node & Item @key(fields: "id") {
  id: ID!
  title: String! @external
  sequel: Item
}

type Draft implements Node & Item @shareable @inaccessible {
  id: ID!
  title: String!
}
"#;

const REVIEWS: &str = r#"
interface Node {
  id: ID!
}

interface Item implements Node {
  id: ID!
  title: String!
}

type Book implements Node & Item @key(fields: "id") {
  id: ID!
  title: String! @external
  related: Item @external
  summary: String! @requires(fields: "title related { id ... on Item { title ... on Draft { id } } }")
}

type Draft implements Node & Item @shareable @inaccessible {
  id: ID!
  title: String!
}
"#;

pub fn subgraphs() -> Vec<Subgraph> {
    let draft = json!({ "__typename": "Draft", "id": "d1", "title": "Untitled" });
    let b1 = json!({ "__typename": "Book", "id": "b1", "title": "Dune", "pages": 412, "related": draft });
    let b2 = json!({ "__typename": "Book", "id": "b2", "title": "Emma", "pages": 320,
                     "related": { "__typename": "Book", "id": "b1", "title": "Dune" } });
    vec![
        Subgraph::new("catalog", CATALOG)
            .rows("Book", json!([b1, b2]))
            .root(json!({
                "items": [b1, draft, b2],
                "latest": draft,
                "shelf": { "name": "New", "pinned": draft },
                "search": [b2, draft],
            }))
            .resolve("Query.books", |c| Ok(c.all("Book")))
            .resolve("Query.items", |c| Ok(c.parent["items"].clone()))
            .resolve("Query.strictItems", |c| Ok(c.parent["items"].clone()))
            .resolve("Query.latest", |c| Ok(c.parent["latest"].clone()))
            .resolve("Query.shelf", |c| Ok(c.parent["shelf"].clone()))
            .resolve("Query.search", |c| Ok(c.parent["search"].clone())),
        Subgraph::new("links", LINKS)
            .rows(
                "Book",
                json!([
                    { "id": "b1", "sequel": draft },
                    { "id": "b2", "sequel": { "__typename": "Book", "id": "b1" } },
                ]),
            )
            .root(json!({ "pick": draft }))
            .resolve("Query.pick", |c| Ok(c.parent["pick"].clone())),
        Subgraph::new("reviews", REVIEWS)
            .key_only("Book")
            .resolve("Book.summary", |c| {
                let title = c.parent["title"].as_str().ok_or("title was not sent")?;
                let related = &c.parent["related"];
                let id = related["id"]
                    .as_str()
                    .ok_or(format!("related.id was not sent: {related}"))?;
                let seen = related["title"]
                    .as_str()
                    .ok_or(format!("related.title was not sent: {related}"))?;
                Ok(json!(format!("{title} (see {id}: {seen})")))
            }),
    ]
}

pub async fn run() {
    let mut run = Case::new("inaccessible_types", subgraphs()).start().await;

    run.check(
        "interface_list_with_nullable_items",
        "{ items { __typename id title ... on Book { pages } } }",
    )
    .expect(
        r#"{"data": {"items": [
            {"__typename": "Book", "id": "b1", "title": "Dune", "pages": 412},
            null,
            {"__typename": "Book", "id": "b2", "title": "Emma", "pages": 320}
        ]}}"#,
    )
    .await;

    // A non-null item cannot be null: the list is (and the error says where).
    run.check("interface_list_with_non_null_items", "{ strictItems { id } }")
        .expect(
            r#"{"data": {"strictItems": null},
                "errors": [{"path": ["strictItems", 1], "extensions": {"code": "NON_NULL_VIOLATION"}}]}"#,
        )
        .await;

    run.check(
        "nullable_interface_field",
        "{ latest { __typename title } }",
    )
    .expect(r#"{"data": {"latest": null}}"#)
    .await;

    run.check("non_null_interface_field", "{ shelf { name pinned { title } } }")
        .expect(
            r#"{"data": {"shelf": null},
                "errors": [{"path": ["shelf", "pinned"], "extensions": {"code": "NON_NULL_VIOLATION"}}]}"#,
        )
        .await;

    run.check(
        "union_member",
        "{ search { __typename ... on Book { title } } }",
    )
    .expect(r#"{"data": {"search": [{"__typename": "Book", "title": "Emma"}, null]}}"#)
    .await;

    run.check(
        "entity_field_from_another_subgraph",
        "{ books { id sequel { __typename title } } }",
    )
    .expect(
        r#"{"data": {"books": [
            {"id": "b1", "sequel": null},
            {"id": "b2", "sequel": {"__typename": "Book", "title": "Dune"}}
        ]}}"#,
    )
    .await;

    run.check("under_provides", "{ pick { ... on Book { title } } }")
        .expect(r#"{"data": {"pick": null}}"#)
        .await;

    // The requirement carries the draft to the reviews subgraph; the client gets it as null.
    run.check(
        "fetched_for_requires_with_nested_interface_fragments",
        "{ books { id summary related { __typename ... on Node { id ... on Item { title } } } } }",
    )
    .expect(
        r#"{"data": {"books": [
            {"id": "b1", "summary": "Dune (see d1: Untitled)", "related": null},
            {"id": "b2", "summary": "Emma (see b1: Dune)",
             "related": {"__typename": "Book", "id": "b1", "title": "Dune"}}
        ]}}"#,
    )
    .await;

    run.check("requires_only_without_the_field", "{ books { summary } }")
        .expect(
            r#"{"data": {"books": [
            {"summary": "Dune (see d1: Untitled)"},
            {"summary": "Emma (see b1: Dune)"}
        ]}}"#,
        )
        .await;

    run.finish();
}
