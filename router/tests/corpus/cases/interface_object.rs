//! `@interfaceObject`: the ratings subgraph adds fields to the `Media` interface without knowing
//! its implementations, and has its own root field returning `Media`. The router must send
//! `Media` representations to ratings, and ask the media subgraph for the concrete type of what
//! ratings returns (for `__typename` and for type conditions).
//!
//! Data: b1 Book "Moby-Dick" (635 pages, 4 stars), f1 Film "Jaws" (124 minutes, 5 stars), b2 Book
//! "Dune" (412 pages, 3 stars). Top rated: f1, b1.

use serde_json::json;

use crate::harness::{Case, Subgraph};

const MEDIA: &str = r#"
type Query {
  library: [Media!]!
}

interface Media @key(fields: "id") {
  id: ID!
  title: String!
}

type Book implements Media @key(fields: "id") {
  id: ID!
  title: String!
  pages: Int!
}

type Film implements Media @key(fields: "id") {
  id: ID!
  title: String!
  minutes: Int!
}
"#;

const RATINGS: &str = r#"
type Query {
  topRated: [Media!]!
}

type Media @key(fields: "id") @interfaceObject {
  id: ID!
  stars: Int!
}
"#;

pub fn subgraphs() -> Vec<Subgraph> {
    vec![
        Subgraph::new("media", MEDIA)
            .rows(
                "Book",
                json!([
                    { "id": "b1", "title": "Moby-Dick", "pages": 635 },
                    { "id": "b2", "title": "Dune", "pages": 412 },
                ]),
            )
            .rows(
                "Film",
                json!([{ "id": "f1", "title": "Jaws", "minutes": 124 }]),
            )
            .root(json!({ "library": [
                { "__typename": "Book", "id": "b1", "title": "Moby-Dick", "pages": 635 },
                { "__typename": "Film", "id": "f1", "title": "Jaws", "minutes": 124 },
                { "__typename": "Book", "id": "b2", "title": "Dune", "pages": 412 },
            ]})),
        Subgraph::new("ratings", RATINGS)
            .rows(
                "Media",
                json!([
                    { "id": "b1", "stars": 4 },
                    { "id": "f1", "stars": 5 },
                    { "id": "b2", "stars": 3 },
                ]),
            )
            .resolve("Query.topRated", |c| {
                let (f1, b1) = (
                    c.find("Media", "id", &json!("f1")),
                    c.find("Media", "id", &json!("b1")),
                );
                Ok(json!([f1, b1]))
            }),
    ]
}

pub async fn run() {
    let mut run = Case::new("interface_object", subgraphs()).start().await;

    run.check(
        "interface_object_field_on_interface",
        "{ library { title stars } }",
    )
    .expect(
        r#"{"data": {"library": [
                {"title": "Moby-Dick", "stars": 4},
                {"title": "Jaws", "stars": 5},
                {"title": "Dune", "stars": 3}
            ]}}"#,
    )
    .representations("ratings", 3)
    .await;

    run.check(
        "interface_object_field_in_type_conditions",
        "{ library { ... on Book { pages stars } ... on Film { minutes } } }",
    )
    .expect(
        r#"{"data": {"library": [
            {"pages": 635, "stars": 4},
            {"minutes": 124},
            {"pages": 412, "stars": 3}
        ]}}"#,
    )
    .await;

    run.check(
        "interface_object_root_then_interface_fields",
        "{ topRated { id stars title } }",
    )
    .expect(
        r#"{"data": {"topRated": [
                {"id": "f1", "stars": 5, "title": "Jaws"},
                {"id": "b1", "stars": 4, "title": "Moby-Dick"}
            ]}}"#,
    )
    .await;

    // ratings cannot know the concrete types: only the media subgraph can say.
    run.check(
        "typename_through_interface_object",
        "{ topRated { __typename id } }",
    )
    .expect(
        r#"{"data": {"topRated": [
                {"__typename": "Film", "id": "f1"},
                {"__typename": "Book", "id": "b1"}
            ]}}"#,
    )
    .calls("media", 1)
    .await;

    run.check(
        "type_conditions_through_interface_object",
        "{ topRated { id ... on Film { minutes } ... on Book { pages } } }",
    )
    .expect(
        r#"{"data": {"topRated": [
            {"id": "f1", "minutes": 124},
            {"id": "b1", "pages": 635}
        ]}}"#,
    )
    .await;

    run.finish();
}
