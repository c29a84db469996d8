//! The request path, one module a stage, in the order a request goes through them:
//!
//! 0. `request`   HTTP to GraphQL request (GET/POST rules, media types, body limits)
//! 1. `parse`     query text to document
//! 2. `validate`  document against the API schema; the operation to run is selected
//! 3. `normalize` the planner's canonical form, minus what the router answers itself
//!    (issue 6 inserts `authorize` and `limit` after it: they act on the normalized operation)
//! 4. `plan`      normalized operation to plan, cached
//! 5. `variables` coercion of the client's variables
//! 6. `execute`   the plan against subgraphs, into one merged data tree
//! 7. `respond`   the merged data shaped exactly as requested (`shape` compiles that shape)
//!
//! Stages 1–4 depend only on the query text and operation name, so their outcome (a
//! [`PreparedOperation`], or the errors that rejected the query) is cached: a repeated query goes
//! straight from `request` to `variables`.

pub mod execute;
pub mod normalize;
pub mod parse;
pub mod plan;
pub mod request;
pub mod respond;
pub mod shape;
pub mod validate;
pub mod variables;

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::response::Response;
use futures::FutureExt;
use graphql_tools::static_graphql::query;
use graphql_tools::validation::rules::default_rules_validation_plan;
use graphql_tools::validation::validate::ValidationPlan;
use http::header::{ALLOW, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use quick_cache::sync::Cache;
use xxhash_rust::xxh3::Xxh3;

use self::execute::{ResponseArena, execute};
use self::plan::{CacheCounters, PlanCache};
use self::request::{GraphQLRequest, MediaType, RequestError};
use self::shape::ShapeCache;
use self::validate::{operation_at, operation_parts};
use self::variables::VariableDefinition;
use crate::config::RouterConfig;
use crate::error::{GraphQLError, codes};
use crate::query_planner::{OperationKind, QueryPlan, QueryPlanner};
use crate::schema::Schema;
use crate::subgraph::{SubgraphClient, forwarded_headers};
use crate::value::Value;

/// Everything requests share, built once from the supergraph and configuration. Immutable
/// apart from the caches, which are internally synchronized.
pub struct RouterState {
    pub config: RouterConfig,
    pub planner: Arc<QueryPlanner>,
    pub schema: Schema,
    /// Indexed like `QueryPlanner::subgraphs()`.
    pub subgraphs: Vec<SubgraphClient>,
    pub forward_headers: Vec<HeaderName>,
    pub validation_rules: ValidationPlan,
    pub operations: Cache<u128, Prepared>,
    pub operation_counters: CacheCounters,
    pub plans: PlanCache,
}

/// A query that passed stages 1–4.
pub struct PreparedOperation {
    pub kind: OperationKind,
    pub document: query::Document,
    pub operation_index: usize,
    pub variables: Vec<VariableDefinition>,
    /// `None` when no subgraph is needed (only `__typename` and introspection).
    pub plan: Option<Arc<QueryPlan>>,
    /// `(name in the plan, client name)` of client variables renamed before planning.
    pub variable_renames: Vec<(String, String)>,
    pub has_introspection: bool,
    pub shapes: ShapeCache,
    /// Size of the last response, so the next one allocates its buffer once.
    pub response_size_hint: AtomicUsize,
}

/// Why a query was rejected before execution.
#[derive(Debug)]
pub struct Rejection {
    pub errors: Vec<GraphQLError>,
    /// Status under `application/graphql-response+json` (legacy JSON always gets 200).
    pub status: StatusCode,
}

pub type Prepared = Result<Arc<PreparedOperation>, Arc<Rejection>>;

impl RouterState {
    pub fn new(
        config: RouterConfig,
        planner: QueryPlanner,
        subgraphs: Vec<SubgraphClient>,
        forward_headers: Vec<HeaderName>,
    ) -> RouterState {
        let schema = Schema::new(Arc::clone(planner.api_schema()));
        let operations = Cache::new(config.query_planning.operation_cache_size.max(1));
        let plans = PlanCache::new(
            config.query_planning.cache_size,
            config.query_planning.timeout,
        );
        RouterState {
            config,
            planner: Arc::new(planner),
            schema,
            subgraphs,
            forward_headers,
            validation_rules: default_rules_validation_plan(),
            operations,
            operation_counters: CacheCounters::default(),
            plans,
        }
    }

    /// Stages 1–4 for a query text, cached by text and operation name.
    pub async fn prepare(&self, text: &str, operation_name: Option<&str>) -> Prepared {
        let mut hasher = Xxh3::new();
        hasher.update(text.as_bytes());
        hasher.update(&[0xff]);
        hasher.update(operation_name.unwrap_or_default().as_bytes());
        let key = hasher.digest128();
        let mut prepared_now = false;
        let result = self
            .operations
            .get_or_insert_async(&key, async {
                prepared_now = true;
                Ok::<_, Infallible>(self.prepare_uncached(text, operation_name).await)
            })
            .await;
        self.operation_counters.record("operation", !prepared_now);
        match result {
            Ok(prepared) => prepared,
            Err(never) => match never {},
        }
    }

    async fn prepare_uncached(&self, text: &str, operation_name: Option<&str>) -> Prepared {
        let reject = |errors: Vec<GraphQLError>, status: StatusCode| {
            Err(Arc::new(Rejection { errors, status }))
        };
        let document = match parse::parse(text, self.config.limits.max_tokens) {
            Ok(document) => document,
            Err(error) => return reject(vec![error], StatusCode::BAD_REQUEST),
        };
        let selected = match validate::validate(
            &self.schema,
            &self.validation_rules,
            &document,
            operation_name,
            self.config.introspection,
        ) {
            Ok(selected) => selected,
            Err(errors) => return reject(errors, StatusCode::BAD_REQUEST),
        };
        let operation = operation_at(&document, selected.index);
        let (kind, selection_set, variable_definitions, _) = operation_parts(operation);
        let has_introspection = validate::selects_introspection(&document, &selection_set.items);
        let variables = variable_definitions
            .iter()
            .map(VariableDefinition::from_ast)
            .collect();
        let root_type = self
            .schema
            .root_type(kind)
            .unwrap_or(&self.schema.query_type)
            .to_string();

        let normalized = match normalize::normalize(&self.planner, &document, &selected, &root_type)
        {
            Ok(normalized) => normalized,
            Err(error) => {
                tracing::warn!(error = %error, "operation normalization failed");
                return reject(
                    vec![GraphQLError::new(
                        "The operation could not be planned",
                        codes::QUERY_PLANNING_FAILED,
                    )],
                    StatusCode::INTERNAL_SERVER_ERROR,
                );
            }
        };
        let plan = match normalized.operation {
            None => None,
            Some(operation) => {
                match self
                    .plans
                    .plan(&self.planner, operation, selected.name.as_deref())
                    .await
                {
                    Ok(plan) => Some(plan),
                    Err(error) => {
                        let message = match error.as_ref() {
                            crate::query_planner::PlannerError::Timeout => {
                                "Query planning took too long"
                            }
                            _ => "The operation could not be planned",
                        };
                        return reject(
                            vec![GraphQLError::new(message, codes::QUERY_PLANNING_FAILED)],
                            StatusCode::INTERNAL_SERVER_ERROR,
                        );
                    }
                }
            }
        };
        let shapes = ShapeCache::new(&document, selected.index);
        Ok(Arc::new(PreparedOperation {
            kind,
            operation_index: selected.index,
            document,
            variables,
            plan,
            variable_renames: normalized.variable_renames,
            has_introspection,
            shapes,
            response_size_hint: AtomicUsize::new(1024),
        }))
    }

    /// Stages 6 and 7 for a prepared operation and its coerced variables.
    pub async fn execute(
        &self,
        prepared: &PreparedOperation,
        variables: &serde_json::Map<String, serde_json::Value>,
        client_headers: &HeaderMap,
    ) -> Vec<u8> {
        let headers = forwarded_headers(&self.forward_headers, client_headers);
        let initial_data = if prepared.has_introspection {
            let (_, selection_set, _, _) =
                operation_parts(operation_at(&prepared.document, prepared.operation_index));
            Value::Object(crate::introspection::resolve_root(
                &self.schema,
                &prepared.document,
                selection_set,
                variables,
            ))
        } else {
            Value::Object(Vec::new())
        };
        let arena = ResponseArena::new();
        let plan_root = prepared.plan.as_ref().and_then(|plan| plan.root.as_ref());
        // The plan knows renamed variables by their new names.
        let renamed;
        let plan_variables = if prepared.variable_renames.is_empty() {
            variables
        } else {
            let mut map = variables.clone();
            for (new, old) in &prepared.variable_renames {
                if let Some(value) = map.remove(old) {
                    map.insert(new.clone(), value);
                }
            }
            renamed = map;
            &renamed
        };
        let output = execute(
            self,
            plan_root,
            prepared.kind,
            plan_variables,
            &headers,
            &arena,
            initial_data,
        )
        .await;
        let shape = prepared.shapes.get(
            &self.schema,
            &prepared.document,
            prepared.operation_index,
            variables,
        );
        let capacity = prepared.response_size_hint.load(Ordering::Relaxed);
        let (body, _) = respond::render(
            &shape,
            &output.data,
            output.errors,
            output.fetch_failed,
            capacity,
        );
        prepared
            .response_size_hint
            .store(body.len() + body.len() / 8 + 64, Ordering::Relaxed);
        body
    }
}

/// The GraphQL endpoint: any method reaches it so that the wrong ones get a GraphQL error.
pub async fn handle(state: Arc<RouterState>, request: http::Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let media = match request::negotiate(&parts.headers) {
        Ok(media) => media,
        Err(error) => return request_error(MediaType::Json, error),
    };
    if let Err(error) = request::check_method(&parts.method) {
        let mut response = request_error(media, error);
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, POST"));
        return response;
    }
    let graphql = if parts.method == Method::GET {
        request::from_get(parts.uri.query())
    } else {
        match request::check_content_type(&parts.headers) {
            Ok(()) => match read_body(body, state.config.http.max_body_size).await {
                Ok(bytes) => request::from_post(&bytes),
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        }
    };
    let graphql = match graphql {
        Ok(graphql) => graphql,
        Err(error) => return request_error(media, error),
    };
    // A bug (here or in the planner) must cost one request, not a connection or the process.
    match AssertUnwindSafe(run(&state, graphql, media, &parts.headers))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => {
            tracing::error!("request handling panicked");
            let error = GraphQLError::new("Internal server error", codes::INTERNAL_SERVER_ERROR);
            respond::http_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                media,
                respond::render_errors(&[error]),
            )
        }
    }
}

async fn run(
    state: &RouterState,
    request: GraphQLRequest,
    media: MediaType,
    headers: &HeaderMap,
) -> Response {
    let prepared = match state
        .prepare(&request.query, request.operation_name.as_deref())
        .await
    {
        Ok(prepared) => prepared,
        Err(rejection) => return rejected(media, rejection.status, &rejection.errors),
    };
    match prepared.kind {
        OperationKind::Mutation if request.is_get => {
            let error = GraphQLError::new(
                "Mutations cannot be sent with GET; use POST",
                codes::OPERATION_NOT_ALLOWED,
            );
            let mut response = respond::http_response(
                StatusCode::METHOD_NOT_ALLOWED,
                media,
                respond::render_errors(&[error]),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        OperationKind::Subscription => {
            let error = GraphQLError::new(
                "Subscriptions are not served over plain HTTP requests",
                codes::UNSUPPORTED_OPERATION,
            );
            return rejected(media, StatusCode::BAD_REQUEST, &[error]);
        }
        _ => {}
    }
    let variables = match variables::coerce(&state.schema, &prepared.variables, &request.variables)
    {
        Ok(variables) => variables,
        Err(errors) => return rejected(media, StatusCode::BAD_REQUEST, &errors),
    };
    let body = state.execute(&prepared, &variables, headers).await;
    respond::http_response(StatusCode::OK, media, body)
}

async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, RequestError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error)
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(RequestError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                error: GraphQLError::new(
                    format!("The request body exceeds {limit} bytes"),
                    codes::BAD_REQUEST,
                ),
            })
        }
        Err(_) => Err(RequestError {
            status: StatusCode::BAD_REQUEST,
            error: GraphQLError::new("The request body could not be read", codes::BAD_REQUEST),
        }),
    }
}

fn request_error(media: MediaType, error: RequestError) -> Response {
    respond::http_response(error.status, media, respond::render_errors(&[error.error]))
}

/// A GraphQL-level rejection: the spec's status under the GraphQL media type, 200 under legacy JSON.
fn rejected(media: MediaType, status: StatusCode, errors: &[GraphQLError]) -> Response {
    let status = match media {
        MediaType::GraphQLResponseJson => status,
        MediaType::Json => StatusCode::OK,
    };
    respond::http_response(status, media, respond::render_errors(errors))
}
