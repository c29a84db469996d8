//! The varied workload: five operations of different shapes, each sent with changing variables, in a
//! fixed rotation, so that consecutive requests differ and no router can answer one request with
//! work done for another (the runs that use it turn deduplication off in both routers).
//!
//! The operations: the benchmark operation with `topProducts(first: $first)` (derived from
//! `workload/operation.graphql`), and from `bench/workload/varied/operations/` a shallow one-subgraph list, a wide list (every product field, from
//! three subgraphs, plus users), an `@requires` (`shippingEstimate` needs price and weight from
//! products) and an abstract type (`feed`, a union whose members' fields live in other subgraphs).
//! The published supergraph has no abstract type, so this workload has its own supergraph
//! (`bench/workload/varied/supergraph.graphql`, composed from the subgraphs' SDL by `compose.mjs`),
//! used by every router in this mode.
//!
//! Every request's expected response comes from the monolith (`subgraphs::monolith`), which answers
//! the same operation without federation; `tests/varied.rs` pins some of them by hand and checks the
//! benchmark operation's against the published response.

use std::sync::LazyLock;

use async_graphql::Variables;
use bytes::Bytes;

use crate::{
    json::Json,
    load::Request,
    subgraphs::{data, monolith},
    workload,
};

/// The workload's name in reports and on the command line.
pub const NAME: &str = "varied";

/// The supergraph of this workload, with subgraph URLs under
/// [`workload::PUBLISHED_SUBGRAPHS_URL`] like the published one.
pub const SUPERGRAPH: &str = include_str!("../workload/varied/supergraph.graphql");

/// One operation of the rotation and the values of `$first` it is sent with, in turn.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// A short name for reports and failure messages.
    pub name: &'static str,
    /// The operation's name in `text`.
    pub operation_name: &'static str,
    pub text: &'static str,
    /// The `first` variable of each pass through the rotation.
    pub firsts: [i32; PASSES],
}

/// Passes through the operations before the rotation repeats: each operation is sent with
/// `PASSES` different variables.
pub const PASSES: usize = 5;

/// The benchmark operation with `topProducts(first: $first)` instead of the default of 5.
static BENCHMARK_WITH_VARIABLE: LazyLock<String> = LazyLock::new(|| {
    workload::OPERATION
        .replacen("query TestQuery {", "query TestQuery($first: Int) {", 1)
        .replacen("  topProducts {", "  topProducts(first: $first) {", 1)
});

/// The operations, in rotation order.
pub static OPERATIONS: LazyLock<[Operation; 5]> = LazyLock::new(|| {
    [
        Operation {
            name: "benchmark",
            operation_name: workload::OPERATION_NAME,
            text: BENCHMARK_WITH_VARIABLE.as_str(),
            // 5 first: the published response; then fewer top products, so smaller responses.
            firsts: [5, 4, 3, 2, 1],
        },
        Operation {
            name: "shallow",
            operation_name: "Shallow",
            text: include_str!("../workload/varied/operations/shallow.graphql"),
            firsts: [5, 4, 3, 2, 1],
        },
        Operation {
            name: "wide",
            operation_name: "Wide",
            text: include_str!("../workload/varied/operations/wide.graphql"),
            firsts: [5, 4, 3, 2, 1],
        },
        Operation {
            name: "requires",
            operation_name: "Requires",
            text: include_str!("../workload/varied/operations/requires.graphql"),
            firsts: [5, 4, 3, 2, 1],
        },
        Operation {
            name: "abstract",
            operation_name: "Feed",
            text: include_str!("../workload/varied/operations/abstract.graphql"),
            // Multiples of three: every answer mixes all three member types.
            firsts: [15, 12, 9, 6, 3],
        },
    ]
});

#[derive(Debug, thiserror::Error)]
pub enum VariedError {
    #[error("the monolith answered {name} with errors: {errors}")]
    MonolithErrors { name: String, errors: String },
    #[error("the monolith's answer to {name} cannot be read: {reason}")]
    MonolithResponse { name: String, reason: String },
}

/// One request of the rotation, before its expected response is known.
#[derive(Debug, Clone)]
pub struct Step {
    pub operation: Operation,
    pub first: i32,
}

impl Step {
    /// `shallow {"first":2}`
    pub fn name(&self) -> String {
        format!("{} {}", self.operation.name, self.variables())
    }

    pub fn variables(&self) -> serde_json::Value {
        serde_json::json!({ "first": self.first })
    }

    /// The GraphQL-over-HTTP POST body.
    pub fn body(&self) -> Bytes {
        let body = serde_json::json!({
            "query": self.operation.text,
            "operationName": self.operation.operation_name,
            "variables": self.variables(),
        });
        Bytes::from(body.to_string())
    }

    /// The monolith's answer to this request: what a correct router returns.
    pub async fn expected(&self) -> Result<Json, VariedError> {
        let request = async_graphql::Request::new(self.operation.text)
            .operation_name(self.operation.operation_name)
            .variables(Variables::from_json(self.variables()));
        let response = monolith::schema().execute(request).await;
        if !response.errors.is_empty() {
            let errors: Vec<String> = response.errors.iter().map(|e| e.message.clone()).collect();
            return Err(VariedError::MonolithErrors {
                name: self.name(),
                errors: errors.join("; "),
            });
        }
        let failed = |reason: String| VariedError::MonolithResponse {
            name: self.name(),
            reason,
        };
        let bytes = serde_json::to_vec(&response).map_err(|e| failed(e.to_string()))?;
        Json::parse(&bytes).map_err(|e| failed(e.to_string()))
    }
}

/// The rotation: pass by pass, every operation once, so that consecutive requests are different
/// operations and an operation's variables change each time it comes round.
pub fn rotation() -> Vec<Step> {
    (0..PASSES)
        .flat_map(|pass| {
            OPERATIONS.iter().map(move |operation| Step {
                operation: *operation,
                first: operation.firsts[pass],
            })
        })
        .collect()
}

/// The rotation's requests with their expected responses, ready for [`crate::load::run`].
pub async fn requests() -> Result<Vec<Request>, VariedError> {
    let mut requests = Vec::new();
    for step in rotation() {
        let expected = step.expected().await?;
        requests.push(Request::new(step.name(), step.body(), expected));
    }
    Ok(requests)
}

/// This workload's supergraph with every subgraph URL moved under `base_url`.
pub fn supergraph_for(base_url: &str) -> String {
    SUPERGRAPH.replace(
        workload::PUBLISHED_SUBGRAPHS_URL,
        base_url.trim_end_matches('/'),
    )
}

/// The SDL each subgraph exports for composition (`async-graphql`, federation directives on), by
/// subgraph name: the input of `workload/varied/compose.mjs`.
pub fn subgraph_sdls() -> Vec<(&'static str, String)> {
    use crate::subgraphs::{accounts, inventory, products, reviews};
    use async_graphql::SDLExportOptions;
    let options = || SDLExportOptions::new().federation();
    vec![
        ("accounts", accounts::schema().sdl_with_options(options())),
        ("inventory", inventory::schema().sdl_with_options(options())),
        ("products", products::schema().sdl_with_options(options())),
        ("reviews", reviews::schema().sdl_with_options(options())),
    ]
}

/// How many feed items the longest `feed` request asks for; the feed must hold that many.
pub fn longest_feed() -> i32 {
    OPERATIONS
        .iter()
        .filter(|o| o.name == "abstract")
        .flat_map(|o| o.firsts)
        .max()
        .unwrap_or(data::DEFAULT_FEED_LENGTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_requests_differ_and_every_body_is_distinct() {
        let steps = rotation();
        assert_eq!(steps.len(), OPERATIONS.len() * PASSES);
        for pair in steps.windows(2) {
            assert_ne!(pair[0].operation.name, pair[1].operation.name);
        }
        let mut bodies: Vec<Bytes> = steps.iter().map(Step::body).collect();
        bodies.sort();
        bodies.dedup();
        assert_eq!(
            bodies.len(),
            steps.len(),
            "no body repeats within a rotation"
        );
    }

    #[test]
    fn the_benchmark_operation_takes_first_as_a_variable() {
        let text = OPERATIONS[0].text;
        assert!(text.contains("query TestQuery($first: Int) {"), "{text}");
        assert!(text.contains("  topProducts(first: $first) {"), "{text}");
        assert_eq!(
            text.len(),
            workload::OPERATION.len() + "($first: Int)".len() + "(first: $first)".len()
        );
    }

    #[test]
    fn the_feed_is_long_enough_for_every_request() {
        assert!(longest_feed() as usize <= data::FEED.len());
    }

    #[test]
    fn the_supergraph_names_every_subgraph_under_the_published_url() {
        let sdl = supergraph_for("http://127.0.0.1:5123");
        for name in workload::SUBGRAPH_NAMES {
            assert!(
                sdl.contains(&format!("url: \"http://127.0.0.1:5123/{name}\"")),
                "{name}"
            );
        }
        assert!(sdl.contains("union FeedItem"));
    }
}
