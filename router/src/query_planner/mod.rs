//! The only door to `hive-router-query-planner`: supergraph in, API schema and plans out.
//!
//! Upstream no longer releases the planner on its own, so we pin 2.10.11 and keep every use of it
//! here. The rest of the router sees our own types: [`QueryPlan`] (converted in `convert`), the API
//! schema as a `graphql-tools` document, and an opaque [`NormalizedOperation`]. The planner can panic
//! on inputs it does not expect; every call into it is wrapped so a panic becomes an error.

mod convert;
pub(crate) mod override_labels;
pub(crate) mod plan;
mod selection;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use graphql_tools::parser::query::Value as AstValue;
use graphql_tools::parser::schema::{Definition, TypeDefinition};
use graphql_tools::static_graphql::{query, schema};
use hive_router_query_planner::ast::normalization::normalize_operation;
use hive_router_query_planner::ast::operation::OperationDefinition;
use hive_router_query_planner::planner::{Planner, QueryPlannerOptions};
use hive_router_query_planner::state::supergraph_state::OperationKind as HiveOperationKind;
use hive_router_query_planner::utils::cancellation::CancellationToken;

pub(crate) use plan::*;
pub(crate) use selection::{NodeKind, OperationNode};

/// A subgraph declared by the supergraph's `join__Graph` enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubgraphDefinition {
    /// `join__graph(name:)`, the name plans and errors use.
    pub(crate) name: String,
    /// `join__graph(url:)`; may be empty when the operator supplies it in config.
    pub(crate) url: String,
}

/// Why the planner could not load a supergraph or plan an operation.
#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    /// The supergraph SDL does not parse.
    #[error("the supergraph is not valid GraphQL SDL: {0}")]
    SupergraphSyntax(String),
    /// The supergraph links a spec or version this router does not implement.
    #[error("the supergraph is not supported: {0}")]
    Unsupported(String),
    /// The planner rejected the supergraph.
    #[error("the supergraph cannot be loaded: {0}")]
    SupergraphInvalid(String),
    /// An operation could not be brought into the planner's canonical form.
    #[error("the operation cannot be normalized: {0}")]
    Normalization(String),
    /// The planner failed on an operation.
    #[error("query planning failed: {0}")]
    Planning(String),
    /// Planning ran longer than `query_planning.timeout`.
    #[error("query planning exceeded its time limit")]
    Timeout,
    /// The supergraph uses more progressive-override labels than `override_labels.max_labels`
    /// (each label doubles the planners built).
    #[error(
        "the supergraph uses {count} progressive override labels; at most {max} are allowed (override_labels.max_labels)"
    )]
    TooManyOverrideLabels {
        /// Labels in the supergraph.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// The supergraph, loaded and ready to plan operations. Immutable; share it with `Arc`.
pub(crate) struct QueryPlanner {
    planner: Planner,
    api_schema: Arc<schema::Document>,
    /// The supergraph as given, for the directives the router enforces itself.
    supergraph: Arc<schema::Document>,
    subgraphs: Vec<SubgraphDefinition>,
}

/// An operation rewritten by the planner's normalization (fragments inlined, fields merged,
/// abstract types expanded): the key of the plan cache and the planner's input.
#[derive(Clone)]
pub(crate) struct NormalizedOperation {
    operation: OperationDefinition,
    text: String,
}

impl NormalizedOperation {
    /// Printed normalized form; equal texts always get equal plans.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

/// Feature specifications a supergraph may link. Anything linked `for: SECURITY` or
/// `for: EXECUTION` that is not listed here is refused: ignoring it could leak data or answer wrongly.
/// `authenticated` and `requiresScopes` are enforced by the `authorize` stage, our `rate-limit`
/// by the `rate_limit` stage. `policy` stays refused: it needs a policy engine we do not have.
const SUPPORTED_LINKS: &[(&str, &[&str])] = &[
    ("link", &["v1.0"]),
    ("join", &["v0.3", "v0.4", "v0.5"]),
    ("inaccessible", &["v0.1", "v0.2"]),
    ("tag", &["v0.1", "v0.2", "v0.3"]),
    ("authenticated", &["v0.1"]),
    ("requiresScopes", &["v0.1"]),
    ("rate-limit", &["v0.1"]),
];

impl QueryPlanner {
    /// Parses and checks a supergraph and builds the planner's graph over it.
    pub(crate) fn new(supergraph_sdl: &str) -> Result<QueryPlanner, PlannerError> {
        let document = graphql_tools::parser::parse_schema::<String>(supergraph_sdl)
            .map_err(|e| PlannerError::SupergraphSyntax(e.to_string()))?
            .into_static();
        check_links(&document)?;
        let subgraphs = extract_subgraphs(&document)?;
        check_has_query_type(&document)?;

        let planner = catch_unwind(AssertUnwindSafe(|| {
            Planner::new_from_supergraph(&document, QueryPlannerOptions::default())
        }))
        .map_err(|panic| PlannerError::SupergraphInvalid(panic_message(&panic)))?
        .map_err(|e| PlannerError::SupergraphInvalid(e.to_string()))?;
        let api_schema = planner.consumer_schema.document.clone();

        Ok(QueryPlanner {
            planner,
            api_schema,
            supergraph: Arc::new(document),
            subgraphs,
        })
    }

    /// The API schema clients see: no `join__`/`link__` internals, no `@inaccessible` elements,
    /// plus the introspection types.
    pub(crate) fn api_schema(&self) -> &Arc<schema::Document> {
        &self.api_schema
    }

    /// The supergraph document (with `join__`, `link__` and security directives).
    pub(crate) fn supergraph(&self) -> &Arc<schema::Document> {
        &self.supergraph
    }

    /// Subgraphs in declaration order; `FetchNode::subgraph` indexes this slice.
    pub(crate) fn subgraphs(&self) -> &[SubgraphDefinition] {
        &self.subgraphs
    }

    /// Normalizes the selected operation of a validated document.
    pub(crate) fn normalize(
        &self,
        document: &query::Document,
        operation_name: Option<&str>,
    ) -> Result<NormalizedOperation, PlannerError> {
        let normalized = catch_unwind(AssertUnwindSafe(|| {
            normalize_operation(&self.planner.supergraph, document, operation_name)
        }))
        .map_err(|panic| PlannerError::Normalization(panic_message(&panic)))?
        .map_err(|e| PlannerError::Normalization(e.to_string()))?;
        let operation = normalized.operation;
        let text = operation.to_string();
        Ok(NormalizedOperation { operation, text })
    }

    /// Plans a normalized operation, giving up after `time_limit`. CPU-bound: call it off the
    /// async workers (`spawn_blocking`).
    pub(crate) fn plan(
        &self,
        operation: &NormalizedOperation,
        time_limit: Duration,
    ) -> Result<QueryPlan, PlannerError> {
        let token = CancellationToken::with_timeout(time_limit);
        let hive_plan = catch_unwind(AssertUnwindSafe(|| {
            self.planner.plan_from_normalized_operation(
                &operation.operation,
                Default::default(),
                &token,
            )
        }))
        .map_err(|panic| PlannerError::Planning(panic_message(&panic)))?
        .map_err(|e| {
            // Cancellation surfaces wrapped in several error types; the token knows for sure.
            if token.bail_if_cancelled().is_err() {
                PlannerError::Timeout
            } else {
                PlannerError::Planning(e.to_string())
            }
        })?;
        convert::convert_plan(&hive_plan, &self.subgraphs)
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("planner panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("planner panicked: {s}")
    } else {
        "planner panicked".to_string()
    }
}

fn operation_kind(kind: Option<&HiveOperationKind>) -> OperationKind {
    match kind {
        Some(HiveOperationKind::Mutation) => OperationKind::Mutation,
        Some(HiveOperationKind::Subscription) => OperationKind::Subscription,
        Some(HiveOperationKind::Query) | None => OperationKind::Query,
    }
}

fn string_argument<'a>(
    arguments: &'a [(String, AstValue<'static, String>)],
    name: &str,
) -> Option<&'a str> {
    arguments.iter().find_map(|(n, v)| match v {
        AstValue::String(s) if n == name => Some(s.as_str()),
        _ => None,
    })
}

fn check_links(document: &schema::Document) -> Result<(), PlannerError> {
    let schema_definition = document.definitions.iter().find_map(|d| match d {
        Definition::SchemaDefinition(s) => Some(s),
        _ => None,
    });
    let Some(schema_definition) = schema_definition else {
        return Err(PlannerError::Unsupported(
            "no `schema` definition with `@link` directives: not a Federation v2 supergraph".into(),
        ));
    };
    let mut has_join = false;
    let mut has_link = false;
    for directive in schema_definition
        .directives
        .iter()
        .filter(|d| d.name == "link")
    {
        let Some(url) = string_argument(&directive.arguments, "url") else {
            return Err(PlannerError::Unsupported("`@link` without a `url`".into()));
        };
        let purpose = directive.arguments.iter().find_map(|(n, v)| match v {
            AstValue::Enum(e) if n == "for" => Some(e.as_str()),
            _ => None,
        });
        let mut parts = url.trim_end_matches('/').rsplitn(3, '/');
        let version = parts.next().unwrap_or_default();
        let feature = parts.next().unwrap_or_default();
        let known = SUPPORTED_LINKS.iter().find(|(name, _)| *name == feature);
        match known {
            Some((name, versions)) if versions.contains(&version) => {
                has_join |= *name == "join";
                has_link |= *name == "link";
            }
            Some((name, versions)) => {
                return Err(PlannerError::Unsupported(format!(
                    "`@link(url: \"{url}\")`: {name} {version} is not supported (supported: {})",
                    versions.join(", ")
                )));
            }
            None if matches!(purpose, Some("SECURITY" | "EXECUTION")) => {
                return Err(PlannerError::Unsupported(format!(
                    "`@link(url: \"{url}\", for: {})`: this router does not implement that feature and \
                     ignoring it would change results",
                    purpose.unwrap_or_default()
                )));
            }
            None => tracing::warn!(url, "supergraph links a feature this router ignores"),
        }
    }
    if !has_link || !has_join {
        return Err(PlannerError::Unsupported(
            "a supergraph must link https://specs.apollo.dev/link/v1.0 and join v0.3, v0.4 or v0.5"
                .into(),
        ));
    }
    Ok(())
}

fn extract_subgraphs(document: &schema::Document) -> Result<Vec<SubgraphDefinition>, PlannerError> {
    let join_graph = document.definitions.iter().find_map(|d| match d {
        Definition::TypeDefinition(TypeDefinition::Enum(e)) if e.name == "join__Graph" => Some(e),
        _ => None,
    });
    let Some(join_graph) = join_graph else {
        return Err(PlannerError::SupergraphInvalid(
            "the `join__Graph` enum is missing".into(),
        ));
    };
    let mut subgraphs = Vec::with_capacity(join_graph.values.len());
    for value in &join_graph.values {
        let Some(directive) = value.directives.iter().find(|d| d.name == "join__graph") else {
            return Err(PlannerError::SupergraphInvalid(format!(
                "`join__Graph.{}` has no `@join__graph` directive",
                value.name
            )));
        };
        let name = string_argument(&directive.arguments, "name").ok_or_else(|| {
            PlannerError::SupergraphInvalid(format!(
                "`join__Graph.{}` has no subgraph name",
                value.name
            ))
        })?;
        let url = string_argument(&directive.arguments, "url").unwrap_or_default();
        subgraphs.push(SubgraphDefinition {
            name: name.to_string(),
            url: url.to_string(),
        });
    }
    Ok(subgraphs)
}

fn check_has_query_type(document: &schema::Document) -> Result<(), PlannerError> {
    let declared = document.definitions.iter().find_map(|d| match d {
        Definition::SchemaDefinition(s) => s.query.clone(),
        _ => None,
    });
    let query_type = declared.unwrap_or_else(|| "Query".to_string());
    let exists = document.definitions.iter().any(|d| {
        matches!(d, Definition::TypeDefinition(TypeDefinition::Object(o)) if o.name == query_type)
    });
    if exists {
        Ok(())
    } else {
        Err(PlannerError::SupergraphInvalid(format!(
            "the query root type `{query_type}` is missing"
        )))
    }
}

#[cfg(test)]
mod tests;
