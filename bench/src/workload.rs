//! The benchmark workload, compiled in: supergraph, operation and the response a correct router gives.
//!
//! The files live in `bench/workload/` (copied from the public benchmark). The supergraph names its
//! subgraphs at `http://0.0.0.0:4200/<name>`; [`supergraph_for`] points it at wherever ours listen.

use bytes::Bytes;

/// The supergraph as published, with subgraph URLs under [`PUBLISHED_SUBGRAPHS_URL`].
pub const SUPERGRAPH: &str = include_str!("../workload/supergraph.graphql");
/// The nested benchmark query (`users` and `topProducts`, five levels deep).
pub const OPERATION: &str = include_str!("../workload/operation.graphql");
/// The operation's name in [`OPERATION`].
pub const OPERATION_NAME: &str = "TestQuery";
/// The exact response (87,327 bytes) a correct router returns for [`OPERATION`].
pub const EXPECTED_RESPONSE: &str = include_str!("../workload/expected_response.json");
/// The base URL the published supergraph gives its subgraphs; each lives under `/<subgraph name>`.
pub const PUBLISHED_SUBGRAPHS_URL: &str = "http://0.0.0.0:4200";
/// The subgraph names, which are also their URL paths.
pub const SUBGRAPH_NAMES: [&str; 4] = ["accounts", "inventory", "products", "reviews"];

/// The supergraph with every subgraph URL moved under `base_url` (e.g. `http://127.0.0.1:4200`).
pub fn supergraph_for(base_url: &str) -> String {
    SUPERGRAPH.replace(PUBLISHED_SUBGRAPHS_URL, base_url.trim_end_matches('/'))
}

/// The JSON body of a GraphQL-over-HTTP POST for `query`, as every target receives it.
pub fn request_body(query: &str, operation_name: Option<&str>) -> Bytes {
    let mut body = serde_json::json!({ "query": query });
    if let Some(name) = operation_name {
        body["operationName"] = name.into();
    }
    Bytes::from(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_response_equals_itself_in_the_order_keeping_tree() {
        let expected = crate::json::Json::parse(EXPECTED_RESPONSE).unwrap();
        assert_eq!(
            crate::json::first_difference(&expected, &expected.clone()),
            None
        );
    }

    #[test]
    fn supergraph_urls_are_rewritten_for_every_subgraph() {
        let sdl = supergraph_for("http://127.0.0.1:5123/");
        assert!(!sdl.contains(PUBLISHED_SUBGRAPHS_URL));
        for name in SUBGRAPH_NAMES {
            assert!(
                sdl.contains(&format!("url: \"http://127.0.0.1:5123/{name}\"")),
                "{name}"
            );
        }
    }

    #[test]
    fn request_body_carries_query_and_operation_name() {
        let body: serde_json::Value =
            serde_json::from_slice(&request_body(OPERATION, Some(OPERATION_NAME))).unwrap();
        assert_eq!(body["query"], OPERATION);
        assert_eq!(body["operationName"], OPERATION_NAME);
        let bare: serde_json::Value = serde_json::from_slice(&request_body("{ a }", None)).unwrap();
        assert!(bare.get("operationName").is_none());
    }

    #[test]
    fn expected_response_is_the_published_one() {
        assert_eq!(EXPECTED_RESPONSE.len(), 87_327);
        assert!(EXPECTED_RESPONSE.starts_with("{\"data\":{\"users\":"));
    }
}
