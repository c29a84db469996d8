//! The request path, one module a stage, in the order a request goes through them:
//!
//! - `request`      HTTP to GraphQL request (GET/POST rules, media types, CSRF, body limit)
//! - `authenticate` the bearer token to an identity (401 when invalid)
//! - `parse`        query text to document (token limit)
//! - `limit`        the document's shape against the operation limits (depth, aliases...)
//! - `validate`     document against the API schema; the operation to run is selected
//! - `normalize`    the planner's canonical form, minus what the router answers itself
//! - `plan`         normalized operation to plan, cached; the selections that carry access
//!   rules or rate limits are found here too (`authorize::Guards`)
//! - `variables`    coercion of the client's variables
//! - `authorize`    fields the caller may not see are removed (`UNAUTHORIZED_FIELD_OR_TYPE`)
//! - `rate_limit`   fields over their limit are removed (`RATE_LIMITED`), or the request gets 429
//! - `plan`         again when fields were removed: the plan of what is left (cached)
//! - `execute`      the plan against subgraphs, into one merged data tree; identical in-flight
//!   queries share one execution (`dedupe`)
//! - `respond`      the merged data shaped exactly as requested (`shape` compiles that shape)
//!
//! The stages from `parse` to the first `plan` depend only on the query text, operation name and the hot-reloadable part of the
//! configuration, so their outcome (a [`PreparedOperation`], or the errors that rejected the
//! query) is cached: a repeated query goes straight from `request` to `variables`. Stages 6 and 7
//! depend on the caller and the moment, and run for every request on the prepared guards only.

pub mod authenticate;
pub mod authorize;
pub mod dedupe;
pub mod execute;
pub mod limit;
pub mod normalize;
pub mod parse;
pub mod plan;
pub mod rate_limit;
pub mod request;
pub mod respond;
pub mod shape;
pub mod validate;
pub mod variables;

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::FutureExt;
use graphql_tools::static_graphql::query;
use graphql_tools::validation::rules::default_rules_validation_plan;
use graphql_tools::validation::validate::ValidationPlan;
use http::header::{ALLOW, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use quick_cache::sync::Cache;
use shippy_security::login_limits::CLIENT_IP_HEADER;
use shippy_security::revocation::RevocationStore;
use tracing::Instrument;
use xxhash_rust::xxh3::Xxh3;

use self::authorize::{Guards, Verdicts};
use self::dedupe::InboundDedupe;
use self::execute::{ResponseArena, execute};
use self::plan::{CacheCounters, PlanCache};
use self::request::{GraphQLRequest, MediaType, RequestError};
use self::shape::ShapeCache;
use self::validate::{operation_at, operation_parts};
use self::variables::VariableDefinition;
use crate::auth::rules::AccessRules;
use crate::auth::{Identity, JwtVerifier};
use crate::config::{FieldRateLimit, RouterConfig};
use crate::error::{GraphQLError, RouterError, codes};
use crate::limits::RateLimits;
use crate::query_planner::{
    FetchNode, NormalizedOperation, OperationKind, PlanNode, QueryPlan, QueryPlanner,
    SubscriptionNode,
};
use crate::schema::Schema;
use crate::subgraph::{SubgraphClient, forwarded_headers};
use crate::telemetry::{Observed, Outcome};
use crate::value::Value;

/// Everything requests share, built once from the supergraph and configuration. Immutable
/// apart from the caches (internally synchronized) and `live`, swapped whole on reload.
pub struct RouterState {
    /// The configuration the router started with; its non-reloadable parts (HTTP server,
    /// planning, subgraphs) are read from here.
    pub config: RouterConfig,
    /// The hot-reloadable part, as of the last reload. A request loads it once and uses that
    /// snapshot throughout, so a reload never mixes two configurations in one request.
    pub live: ArcSwap<Live>,
    pub planner: Arc<QueryPlanner>,
    pub schema: Schema,
    /// Indexed like `QueryPlanner::subgraphs()`.
    pub subgraphs: Vec<SubgraphClient>,
    pub forward_headers: Vec<HeaderName>,
    pub validation_rules: ValidationPlan,
    pub operations: Cache<u128, Prepared>,
    pub operation_counters: CacheCounters,
    pub plans: PlanCache,
    /// `@authenticated` / `@requiresScopes` of the supergraph.
    pub access: AccessRules,
    /// `@rateLimit` of the supergraph, combined with `rate_limit.fields` on every (re)load.
    pub rate_limit_directives: Vec<(String, FieldRateLimit)>,
    pub inbound: InboundDedupe,
    pub client_ip_header: Option<HeaderName>,
    /// Subscription connections and the upstream streams they share.
    pub subscriptions: Arc<crate::subscriptions::Hub>,
    /// Revoked token ids (the user subgraph's `logout`). Made once at start-up, so that `shippy up`
    /// can share its store with the user subgraph; every verifier a reload builds checks it.
    pub revocations: Arc<dyn RevocationStore>,
}

/// The configuration that can change while serving, with what is built from it.
pub struct Live {
    pub config: RouterConfig,
    pub verifier: Option<Arc<JwtVerifier>>,
    pub rate_limits: Arc<RateLimits>,
    pub csrf_headers: Vec<HeaderName>,
    /// Bumped by every reload; part of the prepared-operation cache key, so operations prepared
    /// under an older configuration are never served under a newer one.
    pub generation: u64,
}

impl Live {
    pub fn new(
        config: RouterConfig,
        directives: &[(String, FieldRateLimit)],
        generation: u64,
        revocations: &Arc<dyn RevocationStore>,
    ) -> Result<Live, RouterError> {
        let verifier = JwtVerifier::from_config(&config.auth.jwt)
            .map_err(|e| RouterError::Config(e.to_string()))?
            .map(|verifier| Arc::new(verifier.with_revocations(Arc::clone(revocations))));
        let rate_limits = RateLimits::new(&config.rate_limit, directives.to_vec())
            .map_err(|e| RouterError::Config(e.to_string()))?;
        let csrf_headers = config
            .csrf
            .required_headers
            .iter()
            .map(|name| {
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                    RouterError::Config(format!(
                        "`csrf.required_headers`: `{name}` is not a valid header name"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Live {
            config,
            verifier,
            rate_limits: Arc::new(rate_limits),
            csrf_headers,
            generation,
        })
    }
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
    /// Selections with access rules or rate limits, checked per request.
    pub guards: Guards,
    /// The normalized operation, kept only when it has guards (to plan what is left after some
    /// are removed).
    pub normalized: Option<NormalizedOperation>,
    /// Plans without some guarded selections, by the sorted ids removed. `Ok(None)`: nothing
    /// left to fetch. `Err`: planning failed.
    pub variants: Cache<Vec<u32>, Result<Option<Arc<QueryPlan>>, ()>>,
    /// The prepared-operation cache key, reused in the inbound deduplication key.
    pub key: u128,
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
        revocations: Arc<dyn RevocationStore>,
    ) -> Result<RouterState, RouterError> {
        let schema = Schema::new(Arc::clone(planner.api_schema()));
        let operations = Cache::new(config.query_planning.operation_cache_size.max(1));
        let plans = PlanCache::new(
            config.query_planning.cache_size,
            config.query_planning.timeout,
        );
        let access = AccessRules::from_supergraph(planner.supergraph());
        let rate_limit_directives =
            crate::limits::directives::from_supergraph(planner.supergraph())
                .map_err(RouterError::Config)?;
        let client_ip_header = config
            .http
            .client_ip_header
            .as_deref()
            .map(|name| {
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                    RouterError::Config(format!(
                        "`http.client_ip_header`: `{name}` is not a valid header name"
                    ))
                })
            })
            .transpose()?;
        let live = Live::new(config.clone(), &rate_limit_directives, 0, &revocations)?;
        if !access.is_empty() && live.verifier.is_none() {
            tracing::warn!(
                "**********************************************************************\n\
                 * The supergraph uses @authenticated/@requiresScopes but `auth.jwt`  *\n\
                 * configures no key: every request is anonymous and those fields     *\n\
                 * are refused to everyone. Set auth.jwt.secret, public_key_file or   *\n\
                 * jwks_url.                                                          *\n\
                 **********************************************************************"
            );
        }
        let subscriptions = Arc::new(crate::subscriptions::Hub::new(config.subscriptions.clone()));
        Ok(RouterState {
            config,
            live: ArcSwap::from_pointee(live),
            planner: Arc::new(planner),
            schema,
            subgraphs,
            forward_headers,
            validation_rules: default_rules_validation_plan(),
            operations,
            operation_counters: CacheCounters::default(),
            plans,
            access,
            rate_limit_directives,
            inbound: InboundDedupe::default(),
            client_ip_header,
            subscriptions,
            revocations,
        })
    }

    /// The stages up to the first `plan` for a query text, cached by text, operation name and
    /// configuration generation.
    pub async fn prepare(&self, text: &str, operation_name: Option<&str>, live: &Live) -> Prepared {
        let mut hasher = Xxh3::new();
        hasher.update(text.as_bytes());
        hasher.update(&[0xff]);
        hasher.update(operation_name.unwrap_or_default().as_bytes());
        hasher.update(&live.generation.to_le_bytes());
        let key = hasher.digest128();
        let mut prepared_now = false;
        let span = tracing::info_span!(target: shippy_telemetry::SPANS, "prepare", cache.hit = tracing::field::Empty);
        let result = self
            .operations
            .get_or_insert_async(&key, async {
                prepared_now = true;
                Ok::<_, Infallible>(self.prepare_uncached(text, operation_name, live, key).await)
            })
            .instrument(span.clone())
            .await;
        span.record("cache.hit", !prepared_now);
        self.operation_counters.record("operation", !prepared_now);
        match result {
            Ok(prepared) => prepared,
            Err(never) => match never {},
        }
    }

    async fn prepare_uncached(
        &self,
        text: &str,
        operation_name: Option<&str>,
        live: &Live,
        key: u128,
    ) -> Prepared {
        let reject = |errors: Vec<GraphQLError>, status: StatusCode| {
            Err(Arc::new(Rejection { errors, status }))
        };
        let limits = &live.config.limits;
        let document = match tracing::info_span!(target: shippy_telemetry::SPANS, "parse")
            .in_scope(|| parse::parse(text, limits.max_tokens))
        {
            Ok(document) => document,
            Err(error) => return reject(vec![error], StatusCode::BAD_REQUEST),
        };
        if let Err(error) = limit::check(&document, limits) {
            return reject(vec![error], StatusCode::BAD_REQUEST);
        }
        let selected = match tracing::info_span!(target: shippy_telemetry::SPANS, "validate")
            .in_scope(|| {
                validate::validate(
                    &self.schema,
                    &self.validation_rules,
                    &document,
                    operation_name,
                    live.config.introspection,
                )
            }) {
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
        let (guards, kept) = match &normalized.operation {
            None => (Guards::default(), None),
            Some(operation) => {
                let guards = Guards::build(
                    &self.schema,
                    &operation.selections(),
                    &root_type,
                    &self.access,
                    &live.rate_limits,
                    &normalized.variable_renames,
                );
                let kept = (!guards.is_empty()).then(|| operation.clone());
                (guards, kept)
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
            guards,
            normalized: kept,
            variants: Cache::new(32),
            key,
        }))
    }

    /// The plan of `prepared` without the selections `removed` (sorted node ids).
    pub async fn plan_without(
        &self,
        prepared: &PreparedOperation,
        removed: &[u32],
    ) -> Result<Option<Arc<QueryPlan>>, Arc<Rejection>> {
        if removed.is_empty() {
            return Ok(prepared.plan.clone());
        }
        let Some(normalized) = &prepared.normalized else {
            return Ok(prepared.plan.clone());
        };
        let result = prepared
            .variants
            .get_or_insert_async(removed, async {
                let Some(operation) = normalized.without(removed) else {
                    return Ok::<_, Infallible>(Ok(None));
                };
                let name =
                    operation_parts(operation_at(&prepared.document, prepared.operation_index)).3;
                Ok(self
                    .plans
                    .plan(&self.planner, operation, name)
                    .await
                    .map(Some)
                    .map_err(|_| ()))
            })
            .await;
        match result {
            Ok(Ok(plan)) => Ok(plan),
            Ok(Err(())) => Err(Arc::new(Rejection {
                errors: vec![GraphQLError::new(
                    "The operation could not be planned",
                    codes::QUERY_PLANNING_FAILED,
                )],
                status: StatusCode::INTERNAL_SERVER_ERROR,
            })),
            Err(never) => match never {},
        }
    }

    /// Execute and respond for a prepared operation, the plan of what is left of it, and its
    /// coerced variables. `errors` (of removed fields) come first in the response.
    #[allow(clippy::too_many_arguments)]
    pub async fn execute(
        &self,
        prepared: &PreparedOperation,
        plan: Option<&QueryPlan>,
        variables: &serde_json::Map<String, serde_json::Value>,
        headers: &HeaderMap,
        identity: Option<&Identity>,
        errors: Vec<GraphQLError>,
    ) -> Vec<u8> {
        let plan_root = plan.and_then(|plan| plan.root.as_ref());
        self.execute_from(
            prepared, plan_root, None, variables, headers, identity, errors,
        )
        .await
    }

    /// Execute and respond for one event of a subscription: `payload` (the subgraph's `next`
    /// payload) is the primary fetch's result, then the rest of the plan runs on it exactly as
    /// a query's entity fetches do, and the response is shaped like a query's.
    #[allow(clippy::too_many_arguments)]
    pub async fn execute_event(
        &self,
        prepared: &PreparedOperation,
        subscription: &SubscriptionNode,
        payload: Bytes,
        variables: &serde_json::Map<String, serde_json::Value>,
        headers: &HeaderMap,
        identity: Option<&Identity>,
        errors: Vec<GraphQLError>,
    ) -> Vec<u8> {
        self.execute_from(
            prepared,
            subscription.rest.as_deref(),
            Some((&subscription.primary, payload)),
            variables,
            headers,
            identity,
            errors,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute_from(
        &self,
        prepared: &PreparedOperation,
        plan_root: Option<&PlanNode>,
        event: Option<(&FetchNode, Bytes)>,
        variables: &serde_json::Map<String, serde_json::Value>,
        headers: &HeaderMap,
        identity: Option<&Identity>,
        mut errors: Vec<GraphQLError>,
    ) -> Vec<u8> {
        let arena = ResponseArena::new();
        let initial_data = if let Some((primary, payload)) = event {
            let (data, event_errors) = execute::event_data(self, &arena, primary, payload);
            errors.extend(event_errors);
            data
        } else if prepared.has_introspection {
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
        let plan_variables = plan_variables(prepared, variables);
        let mut output = execute(
            self,
            plan_root,
            prepared.kind,
            &plan_variables,
            headers,
            identity.map(|i| i.claims_json()),
            &arena,
            initial_data,
        )
        .await;
        if !errors.is_empty() {
            output.errors.splice(0..0, errors);
        }
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

/// The client's variables under the names the plan knows them by (variables renamed before
/// planning get their new names).
pub fn plan_variables<'v>(
    prepared: &PreparedOperation,
    variables: &'v serde_json::Map<String, serde_json::Value>,
) -> Cow<'v, serde_json::Map<String, serde_json::Value>> {
    if prepared.variable_renames.is_empty() {
        return Cow::Borrowed(variables);
    }
    let mut map = variables.clone();
    for (new, old) in &prepared.variable_renames {
        if let Some(value) = map.remove(old) {
            map.insert(new.clone(), value);
        }
    }
    Cow::Owned(map)
}

/// The GraphQL endpoint: any method reaches it so that the wrong ones get a GraphQL error.
/// Each request runs in its own `router.request` span and is counted in the request series.
pub async fn handle(state: Arc<RouterState>, request: http::Request<Body>) -> Response {
    // A WebSocket lives for its connection: it has its own gauges, not a request span.
    if crate::subscriptions::ws::is_upgrade(request.headers()) {
        return crate::subscriptions::ws::handle(state, request).await;
    }
    let span = crate::telemetry::request_span(request.headers());
    let started = std::time::Instant::now();
    let observed = Observed::default();
    let response = handle_request(state, request, &observed)
        .instrument(span.clone())
        .await;
    // Responses that did not reach execution carry no outcome: they were rejected.
    let outcome = response
        .extensions()
        .get::<Outcome>()
        .copied()
        .unwrap_or(Outcome::Rejected);
    crate::telemetry::record_request(&span, &observed, &response, outcome, started.elapsed());
    response
}

async fn handle_request(
    state: Arc<RouterState>,
    request: http::Request<Body>,
    observed: &Observed,
) -> Response {
    let live = state.live.load_full();
    let (parts, body) = request.into_parts();
    // GraphQL over SSE: errors before the stream starts are plain JSON.
    let event_stream = crate::subscriptions::sse::accepts(&parts.headers);
    let media = match request::negotiate(&parts.headers) {
        Ok(media) => media,
        Err(_) if event_stream => MediaType::Json,
        Err(error) => return request_error(MediaType::Json, error),
    };
    if let Err(error) = request::check_method(&parts.method) {
        let mut response = request_error(media, error);
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, POST"));
        return response;
    }
    if live.config.csrf.enabled
        && let Err(error) = request::check_csrf(&parts.headers, &live.csrf_headers)
    {
        return request_error(media, error);
    }
    let identity =
        match authenticate::authenticate(live.verifier.as_deref(), &parts.headers, media).await {
            Ok(identity) => identity,
            Err(response) => return response,
        };
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
    let caller = Caller {
        headers: &parts.headers,
        identity: identity.as_deref(),
        ip: crate::limits::client_ip(
            &parts.headers,
            &parts.extensions,
            state.client_ip_header.as_ref(),
        ),
    };
    if event_stream {
        let mut response =
            crate::subscriptions::sse::respond(&state, graphql, caller, identity.clone()).await;
        // The stream started; what it carries later is the subscription's, not this request's.
        if response.status() == StatusCode::OK {
            response.extensions_mut().insert(Outcome::Ok);
        }
        return response;
    }
    // A bug (here or in the planner) must cost one request, not a connection or the process.
    match AssertUnwindSafe(run(&state, &live, graphql, media, caller, observed))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => {
            tracing::error!("request handling panicked");
            let error = GraphQLError::new("Internal server error", codes::INTERNAL_SERVER_ERROR);
            let mut response = respond::http_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                media,
                respond::render_errors(&[error]),
            );
            response.extensions_mut().insert(Outcome::Error);
            response
        }
    }
}

/// Who sent a request: what `authorize`, `rate_limit` and `execute` need to know about them.
#[derive(Clone, Copy)]
pub struct Caller<'r> {
    pub headers: &'r HeaderMap,
    pub identity: Option<&'r Identity>,
    pub ip: Option<IpAddr>,
}

/// A prepared operation admitted for this caller: what `execute` needs.
pub struct Admitted {
    pub prepared: Arc<PreparedOperation>,
    pub variables: serde_json::Map<String, serde_json::Value>,
    /// Guarded selections removed for this caller (sorted node ids).
    pub removed: Vec<u32>,
    /// The plan of what is left.
    pub plan: Option<Arc<QueryPlan>>,
    /// Why fields were removed; first in the response.
    pub errors: Vec<GraphQLError>,
    /// The caller's headers forwarded to subgraphs.
    pub headers: HeaderMap,
}

/// Why an operation was not admitted.
pub enum Refusal {
    /// Status under `application/graphql-response+json`, and the errors.
    Rejected(StatusCode, Vec<GraphQLError>),
    /// Every root field is over its rate limit; try again after the duration.
    RateLimited(Vec<GraphQLError>, std::time::Duration),
}

/// The per-caller stages after `prepare`, shared by every transport: variables coerced, fields
/// the caller may not see or is rate limited on removed (or the whole operation refused), and
/// the plan of what is left.
pub async fn admit(
    state: &RouterState,
    live: &Live,
    prepared: Arc<PreparedOperation>,
    raw_variables: &serde_json::Map<String, serde_json::Value>,
    caller: Caller<'_>,
) -> Result<Admitted, Refusal> {
    let variables = variables::coerce(&state.schema, &prepared.variables, raw_variables)
        .map_err(|errors| Refusal::Rejected(StatusCode::BAD_REQUEST, errors))?;
    let guards = &prepared.guards;
    let mut verdicts = Verdicts::new(guards, &variables);
    if !guards.is_empty() {
        authorize::authorize(
            guards,
            &mut verdicts,
            caller.identity,
            &live.config.auth.scopes_claim,
        );
        rate_limit::check(
            guards,
            &mut verdicts,
            &live.rate_limits,
            caller.identity,
            caller.ip,
        )
        .await;
        if let Some(wait) = rate_limit::whole_operation_limited(
            guards,
            &verdicts,
            &variables,
            prepared.has_introspection,
        ) {
            return Err(Refusal::RateLimited(verdicts.errors(guards), wait));
        }
    }
    let removed = verdicts.removed_nodes(guards);
    let plan = state
        .plan_without(&prepared, &removed)
        .await
        .map_err(|rejection| Refusal::Rejected(rejection.status, rejection.errors.clone()))?;
    let errors = verdicts.errors(guards);
    let mut headers = forwarded_headers(&state.forward_headers, caller.headers);
    // The client's address, for the user subgraph's login limits: set by the router alone (a
    // client's own value is never passed on), and only on mutations, so that identical queries
    // of different clients still share one subgraph fetch.
    headers.remove(CLIENT_IP_HEADER);
    if prepared.kind == OperationKind::Mutation
        && let Some(ip) = caller.ip
        && let Ok(value) = HeaderValue::from_str(&ip.to_string())
    {
        headers.insert(CLIENT_IP_HEADER, value);
    }
    Ok(Admitted {
        prepared,
        variables,
        removed,
        plan,
        errors,
        headers,
    })
}

async fn run(
    state: &RouterState,
    live: &Live,
    request: GraphQLRequest,
    media: MediaType,
    caller: Caller<'_>,
    observed: &Observed,
) -> Response {
    let prepared = match state
        .prepare(&request.query, request.operation_name.as_deref(), live)
        .await
    {
        Ok(prepared) => prepared,
        Err(rejection) => return rejected(media, rejection.status, &rejection.errors),
    };
    let _ = observed.kind.set(prepared.kind);
    let span = tracing::Span::current();
    span.record("graphql.operation.type", prepared.kind.as_str());
    let (_, _, _, name) =
        operation_parts(operation_at(&prepared.document, prepared.operation_index));
    if let Some(name) = name {
        span.record("graphql.operation.name", name);
    }
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
    let admitted = match admit(state, live, prepared, &request.variables, caller).await {
        Ok(admitted) => admitted,
        Err(Refusal::Rejected(status, errors)) => return rejected(media, status, &errors),
        Err(Refusal::RateLimited(errors, wait)) => return too_many_requests(media, errors, wait),
    };
    let Admitted {
        prepared,
        variables,
        removed,
        plan,
        errors,
        headers,
    } = admitted;
    let execute = || async {
        Bytes::from(
            state
                .execute(
                    &prepared,
                    plan.as_deref(),
                    &variables,
                    &headers,
                    caller.identity,
                    errors.clone(),
                )
                .instrument(tracing::info_span!(target: shippy_telemetry::SPANS, "execute"))
                .await,
        )
    };
    let body = if prepared.kind == OperationKind::Query && state.config.http.dedupe {
        let key = dedupe_key(
            &prepared,
            &removed,
            &variables,
            &headers,
            caller.identity,
            &errors,
        );
        state.inbound.run(key, execute).await
    } else {
        execute().await
    };
    let outcome = Outcome::of_executed(&body);
    let mut response = respond::http_response(StatusCode::OK, media, body);
    response.extensions_mut().insert(outcome);
    response
}

/// Everything an executed query's response depends on.
pub fn dedupe_key(
    prepared: &PreparedOperation,
    removed: &[u32],
    variables: &serde_json::Map<String, serde_json::Value>,
    headers: &HeaderMap,
    identity: Option<&Identity>,
    errors: &[GraphQLError],
) -> u128 {
    let mut hasher = Xxh3::new();
    hasher.update(&prepared.key.to_le_bytes());
    for id in removed {
        hasher.update(&id.to_le_bytes());
    }
    hasher.update(&[0xff]);
    hasher.update(&serde_json::to_vec(variables).unwrap_or_default());
    for (name, value) in headers {
        hasher.update(&[0]);
        hasher.update(name.as_str().as_bytes());
        hasher.update(&[1]);
        hasher.update(value.as_bytes());
    }
    hasher.update(&[0xfe]);
    if let Some(identity) = identity {
        hasher.update(identity.claims_json());
    }
    hasher.update(&[0xfd]);
    hasher.update(&serde_json::to_vec(errors).unwrap_or_default());
    hasher.digest128()
}

/// 429 for an operation whose every root field is over its rate limit.
fn too_many_requests(
    media: MediaType,
    errors: Vec<GraphQLError>,
    wait: std::time::Duration,
) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = respond::http_response(
        StatusCode::TOO_MANY_REQUESTS,
        media,
        respond::render_errors(&errors),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
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
                    codes::MAX_BODY_SIZE_EXCEEDED,
                )
                .with_extension("limit", limit),
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
