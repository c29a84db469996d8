//! An operation's path from query text to response body, one module a stage, in the order an
//! operation goes through them. Transports (`server::http`, `server::ws`, `server::sse`) turn
//! their requests into a [`GraphQLRequest`] and call [`RouterState::prepare`], [`admit()`] and
//! [`RouterState::execute`]; nothing here knows about HTTP.
//!
//! - `documents`       the query text: sent as text, as a trusted document's id or an APQ hash
//!   (the safelist with `persisted_documents.only`)
//! - `parse`           query text to document (token limit)
//! - `document_limits` the document's shape against the operation limits (depth, aliases...)
//! - `validate`        document against the API schema; the operation to run is selected
//! - `normalize`       the planner's canonical form, minus what the router answers itself
//! - `plan`            normalized operation to plan, cached; the selections that carry access
//!   rules or rate limits are found here too (`authorize::Guards`)
//! - `admit`           per caller: `variables` coerced, `authorize` removes fields the caller may
//!   not see (`UNAUTHORIZED_FIELD_OR_TYPE`), rate-limited fields are removed (`RATE_LIMITED`) or
//!   the whole operation refused (429), then `plan` again for what is left (cached)
//! - `execute`         the plan against subgraphs, into one merged data tree; identical in-flight
//!   queries share one execution (`dedupe`)
//! - `render`          the merged data shaped exactly as requested (`shape` compiles that shape)
//!
//! The stages from `parse` to the first `plan` depend only on the query text, operation name
//! and the hot-reloadable part of the configuration, so their outcome (a [`PreparedOperation`],
//! or the errors that rejected the query) is cached: a repeated query goes straight to
//! `admit`. Admission depends on the caller and the moment, and runs for every request on the
//! prepared guards only.

pub(crate) mod admit;
pub(crate) mod authorize;
pub(crate) mod document_limits;
pub(crate) mod documents;
pub(crate) mod error;
pub(crate) mod execute;
pub(crate) mod normalize;
pub(crate) mod parse;
pub(crate) mod plan;
pub(crate) mod render;
pub(crate) mod shape;
pub(crate) mod validate;
pub(crate) mod variables;

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;
use graphql_tools::static_graphql::query;
use graphql_tools::validation::rules::default_rules_validation_plan;
use graphql_tools::validation::validate::ValidationPlan;
use http::StatusCode;
use http::header::HeaderName;
use quick_cache::sync::Cache;
use serde_json::{Map, Value as Json};
use shippy_security::revocation::RevocationStore;
use tracing::Instrument;
use xxhash_rust::xxh3::Xxh3;

pub(crate) use self::admit::{Admitted, Caller, admit};
use self::authorize::Guards;
pub(crate) use self::error::PipelineError;
use self::execute::{ResponseArena, execute};
use self::plan::{CacheCounters, PlanCache};
use self::shape::ShapeCache;
use self::validate::{operation_at, operation_parts};
use self::variables::VariableDefinition;
use crate::auth::KeyError;
use crate::auth::rules::AccessRules;
use crate::auth::{Identity, JwtVerifier};
use crate::config::{ConfigError, header_name};
use crate::config::{FieldRateLimit, RouterConfig};
use crate::error::{GraphQLError, codes};
use crate::graphql::schema::Schema;
use crate::graphql::value::Value;
use crate::query_planner::override_labels::Planners;
use crate::query_planner::{
    FetchNode, NormalizedOperation, OperationKind, PlanNode, QueryPlan, QueryPlanner,
    SubscriptionNode,
};
use crate::rate_limit::LimitError;
use crate::rate_limit::RateLimits;
use crate::rate_limit::directives::DirectiveError;
use crate::subgraph::SubgraphClient;
use crate::subgraph::headers::{HeaderPolicy, SubgraphHeaders};
use crate::subgraph::single_flight::SingleFlight;

/// The message of a `QUERY_PLANNING_FAILED` for a plan that ran out of time (the planner may
/// just have been busy, unlike the other planning failures).
pub(crate) const PLANNING_TIMED_OUT: &str = "Query planning took too long";

/// A GraphQL request, as sent by the client (over any transport).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GraphQLRequest {
    /// The query text; absent when the request names a persisted document instead.
    pub(crate) query: Option<String>,
    /// A trusted document's id (`documentId`).
    pub(crate) document_id: Option<String>,
    pub(crate) operation_name: Option<String>,
    pub(crate) variables: Map<String, Json>,
    pub(crate) extensions: Map<String, Json>,
    /// True for GET, where only queries may run.
    pub(crate) is_get: bool,
}

impl GraphQLRequest {
    /// Whether it names something to run: a query text, a trusted document's id or an APQ hash.
    pub(crate) fn names_an_operation(&self) -> bool {
        self.query.is_some()
            || self.document_id.is_some()
            || self.extensions.contains_key("persistedQuery")
    }
}

/// Why the operation path could not be set up from a configuration and a supergraph.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A setting is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `auth.jwt` does not give a usable key.
    #[error(transparent)]
    Jwt(#[from] KeyError),
    /// `rate_limit` cannot be set up.
    #[error(transparent)]
    RateLimit(#[from] LimitError),
    /// A `@rateLimit` of the supergraph is malformed.
    #[error(transparent)]
    RateLimitDirective(#[from] DirectiveError),
    /// `persisted_documents.manifest` cannot be loaded.
    #[error("`persisted_documents.manifest`: {0}")]
    PersistedDocuments(#[from] self::documents::ManifestError),
    /// `auth.revocation` (or the rate-limit Redis it falls back to) is unusable.
    #[error("`auth.revocation.redis_url`: {0}")]
    Revocation(#[source] shippy_security::revocation::StoreError),
}

/// Everything requests share, built once from the supergraph and configuration. Immutable
/// apart from the caches (internally synchronized) and `live`, swapped whole on reload.
pub(crate) struct RouterState {
    /// The configuration the router started with; its non-reloadable parts (HTTP server,
    /// planning, subgraphs) are read from here.
    pub(crate) config: RouterConfig,
    /// The hot-reloadable part, as of the last reload. A request loads it once and uses that
    /// snapshot throughout, so a reload never mixes two configurations in one request. Shared by
    /// every supergraph's state: a supergraph swap keeps the configuration reloads made.
    pub(crate) live: Arc<ArcSwap<Live>>,
    /// The planner with every progressive-override label off (`planners.base()`): the API
    /// schema, normalization, the supergraph's directives.
    pub(crate) planner: Arc<QueryPlanner>,
    /// A planner per combination of progressive-override labels.
    pub(crate) planners: Planners,
    /// `override_labels.header`, parsed.
    pub(crate) override_header: Option<HeaderName>,
    pub(crate) schema: Schema,
    /// Indexed like `QueryPlanner::subgraphs()`. Shared with the next supergraph's state when
    /// a subgraph keeps its name and URLs, so its breaker and connection pool survive a swap.
    pub(crate) subgraphs: Vec<Arc<SubgraphClient>>,
    pub(crate) validation_rules: ValidationPlan,
    pub(crate) operations: Cache<u128, Prepared>,
    pub(crate) operation_counters: CacheCounters,
    pub(crate) plans: PlanCache,
    /// `@authenticated` / `@requiresScopes` of the supergraph.
    pub(crate) access: AccessRules,
    /// `@rateLimit` of the supergraph, combined with `rate_limit.fields` on every (re)load.
    pub(crate) rate_limit_directives: Vec<(String, FieldRateLimit)>,
    pub(crate) inbound: SingleFlight<(Bytes, http::HeaderMap)>,
    pub(crate) client_ip_header: Option<HeaderName>,
    /// Revoked token ids (the user subgraph's `logout`). Made once at start-up, so that `shippy up`
    /// can share its store with the user subgraph; every verifier a reload builds checks it.
    pub(crate) revocations: Arc<dyn RevocationStore>,
    /// Trusted documents and automatic persisted queries; shared across supergraph swaps.
    pub(crate) documents: Arc<documents::PersistedDocuments>,
    /// Which supergraph this state serves, and since when.
    pub(crate) supergraph: SupergraphInfo,
}

/// The identity of a loaded supergraph, shown on `/ready` and in metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SupergraphInfo {
    /// SHA-256 of the SDL, lowercase hex.
    pub(crate) hash: String,
    /// When this router loaded it.
    pub(crate) loaded_at: std::time::SystemTime,
}

impl SupergraphInfo {
    pub(crate) fn of(sdl: &str) -> SupergraphInfo {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(sdl.as_bytes());
        let mut hash = String::with_capacity(64);
        for byte in digest {
            use std::fmt::Write;
            let _ = write!(hash, "{byte:02x}");
        }
        SupergraphInfo {
            hash,
            loaded_at: std::time::SystemTime::now(),
        }
    }
}

/// The configuration that can change while serving, with what is built from it.
pub(crate) struct Live {
    pub(crate) config: RouterConfig,
    pub(crate) verifier: Option<Arc<JwtVerifier>>,
    pub(crate) rate_limits: Arc<RateLimits>,
    pub(crate) csrf_headers: Vec<HeaderName>,
    /// `auth.jwt.header_name`, parsed once per (re)load: the header subscriptions forward to
    /// subgraphs in `connection_init`.
    pub(crate) auth_header: HeaderName,
    /// The forward list and `headers` rules for subgraph requests.
    pub(crate) headers: Arc<HeaderPolicy>,
    /// Bumped by every reload; part of the prepared-operation cache key, so operations prepared
    /// under an older configuration are never served under a newer one.
    pub(crate) generation: u64,
}

impl Live {
    pub(crate) fn new(
        config: RouterConfig,
        directives: &[(String, FieldRateLimit)],
        generation: u64,
        revocations: &Arc<dyn RevocationStore>,
    ) -> Result<Live, SetupError> {
        let verifier = JwtVerifier::from_config(&config.auth.jwt)?
            .map(|verifier| Arc::new(verifier.with_revocations(Arc::clone(revocations))));
        let rate_limits = RateLimits::new(&config.rate_limit, directives.to_vec())?;
        let csrf_headers = config
            .csrf
            .required_headers
            .iter()
            .map(|name| header_name("csrf.required_headers", name))
            .collect::<Result<Vec<_>, _>>()?;
        let auth_header = config.auth.jwt.header()?;
        let headers = Arc::new(HeaderPolicy::new(
            &config.subgraph_defaults.forward_headers,
            &config.headers,
        )?);
        Ok(Live {
            config,
            verifier,
            rate_limits: Arc::new(rate_limits),
            csrf_headers,
            auth_header,
            headers,
            generation,
        })
    }
}

/// A query that passed stages 1–4.
pub(crate) struct PreparedOperation {
    pub(crate) kind: OperationKind,
    pub(crate) document: query::Document,
    pub(crate) operation_index: usize,
    pub(crate) variables: Vec<VariableDefinition>,
    /// `None` when no subgraph is needed (only `__typename` and introspection).
    pub(crate) plan: Option<Arc<QueryPlan>>,
    /// `(name in the plan, client name)` of client variables renamed before planning.
    pub(crate) variable_renames: Vec<(String, String)>,
    pub(crate) has_introspection: bool,
    pub(crate) shapes: ShapeCache,
    /// Size of the last response, so the next one allocates its buffer once.
    pub(crate) response_size_hint: AtomicUsize,
    /// Selections with access rules or rate limits, checked per request.
    pub(crate) guards: Guards,
    /// The normalized operation, kept only when it has guards (to plan what is left after some
    /// are removed).
    pub(crate) normalized: Option<NormalizedOperation>,
    /// Plans without some guarded selections, by the sorted ids removed. `Ok(None)`: nothing
    /// left to fetch. `Err`: planning failed.
    pub(crate) variants: Cache<Vec<u32>, Result<Option<Arc<QueryPlan>>, ()>>,
    /// The prepared-operation cache key, reused in the inbound deduplication key.
    pub(crate) key: u128,
    /// The progressive-override combination it was planned for (`Planners::get`).
    pub(crate) override_variant: usize,
    /// The query text and operation name it was prepared from: a supergraph swap prepares them
    /// again against the new supergraph (to warm its caches, and to decide whether an open
    /// subscription still exists there).
    pub(crate) source: Arc<(String, Option<String>)>,
}

/// The outcome of `prepare`, cached: shared by every request with the same text.
pub(crate) type Prepared = Result<Arc<PreparedOperation>, Arc<PipelineError>>;

impl RouterState {
    pub(crate) fn new(
        config: RouterConfig,
        planners: Planners,
        subgraphs: Vec<Arc<SubgraphClient>>,
        revocations: Arc<dyn RevocationStore>,
        supergraph: SupergraphInfo,
    ) -> Result<RouterState, SetupError> {
        let planner = Arc::clone(planners.base());
        let rate_limit_directives =
            crate::rate_limit::directives::from_supergraph(planner.supergraph())?;
        let client_ip_header = config
            .http
            .client_ip_header
            .as_deref()
            .map(|name| header_name("http.client_ip_header", name))
            .transpose()?;
        let override_header = config
            .override_labels
            .header
            .as_deref()
            .map(|name| header_name("override_labels.header", name))
            .transpose()?;
        let live = Live::new(config.clone(), &rate_limit_directives, 0, &revocations)?;
        let documents = documents::PersistedDocuments::new(&config.persisted_documents)?;
        Ok(RouterState::assemble(
            config,
            Arc::new(ArcSwap::from_pointee(live)),
            planners,
            override_header,
            subgraphs,
            rate_limit_directives,
            client_ip_header,
            revocations,
            Arc::new(documents),
            supergraph,
        ))
    }

    /// The state for another supergraph, sharing with this one what must survive a swap: the
    /// live configuration, the revoked token ids and the persisted documents. Everything built
    /// from the supergraph (API schema, access rules, `@rateLimit`s) and the caches are new, so
    /// nothing prepared or planned for the old supergraph is ever served under the new one. The
    /// caller rebuilds the live rate limits when the `@rateLimit`s changed.
    pub(crate) fn next(
        &self,
        planners: Planners,
        subgraphs: Vec<Arc<SubgraphClient>>,
        supergraph: SupergraphInfo,
    ) -> Result<RouterState, SetupError> {
        let rate_limit_directives =
            crate::rate_limit::directives::from_supergraph(planners.base().supergraph())?;
        Ok(RouterState::assemble(
            self.config.clone(),
            Arc::clone(&self.live),
            planners,
            self.override_header.clone(),
            subgraphs,
            rate_limit_directives,
            self.client_ip_header.clone(),
            Arc::clone(&self.revocations),
            Arc::clone(&self.documents),
            supergraph,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        config: RouterConfig,
        live: Arc<ArcSwap<Live>>,
        planners: Planners,
        override_header: Option<HeaderName>,
        subgraphs: Vec<Arc<SubgraphClient>>,
        rate_limit_directives: Vec<(String, FieldRateLimit)>,
        client_ip_header: Option<HeaderName>,
        revocations: Arc<dyn RevocationStore>,
        documents: Arc<documents::PersistedDocuments>,
        supergraph: SupergraphInfo,
    ) -> RouterState {
        let planner = Arc::clone(planners.base());
        let schema = Schema::new(Arc::clone(planner.api_schema()))
            .with_hidden_members_from(planner.supergraph());
        let operations = Cache::new(config.query_planning.operation_cache_size.max(1));
        let plans = PlanCache::new(
            config.query_planning.cache_size,
            config.query_planning.timeout,
        );
        let access = AccessRules::from_supergraph(planner.supergraph());
        if !access.is_empty() && live.load().verifier.is_none() {
            tracing::warn!(
                "**********************************************************************\n\
                 * The supergraph uses @authenticated/@requiresScopes but `auth.jwt`  *\n\
                 * configures no key: every request is anonymous and those fields     *\n\
                 * are refused to everyone. Set auth.jwt.secret, public_key_file or   *\n\
                 * jwks_url.                                                          *\n\
                 **********************************************************************"
            );
        }
        RouterState {
            config,
            live,
            planner,
            planners,
            override_header,
            schema,
            subgraphs,
            validation_rules: default_rules_validation_plan(),
            operations,
            operation_counters: CacheCounters::default(),
            plans,
            access,
            rate_limit_directives,
            inbound: SingleFlight::default(),
            client_ip_header,
            revocations,
            documents,
            supergraph,
        }
    }

    /// The stages up to the first `plan` for a query text, cached by text, operation name and
    /// configuration generation.
    /// [`RouterState::prepare`] for a request: its text resolved first (`documents`), and an
    /// operation outside the manifest refused under `persisted_documents.only` before any work
    /// is spent on it.
    pub(crate) async fn prepare_request(
        &self,
        request: &GraphQLRequest,
        live: &Live,
        caller: &Caller<'_>,
    ) -> Prepared {
        let resolved = self.documents.resolve(request).map_err(Arc::new)?;
        if self.documents.only() && !resolved.trusted {
            let introspection = self.documents.allow_introspection()
                && parse::parse(&resolved.text, live.config.limits.max_tokens)
                    .is_ok_and(|document| validate::selects_only_introspection(&document));
            if !introspection {
                return Err(Arc::new(documents::not_in_list()));
            }
        }
        let variant = self.override_variant(caller);
        self.prepare(
            &resolved.text,
            request.operation_name.as_deref(),
            live,
            variant,
        )
        .await
    }

    /// The progressive-override combination for a request: labels named by the configured
    /// header or claim are in effect, `percent(N)` labels otherwise by a random draw.
    fn override_variant(&self, caller: &Caller<'_>) -> usize {
        if self.planners.labels().is_empty() {
            return 0;
        }
        let mut enabled: Vec<String> = Vec::new();
        if let Some(header) = &self.override_header {
            for value in caller.headers.get_all(header) {
                if let Ok(text) = value.to_str() {
                    enabled.extend(text.split(',').map(|l| l.trim().to_string()));
                }
            }
        }
        if let (Some(claim), Some(identity)) = (&self.config.override_labels.claim, caller.identity)
        {
            match identity.claims().get(claim) {
                Some(serde_json::Value::String(label)) => enabled.push(label.clone()),
                Some(serde_json::Value::Array(labels)) => {
                    enabled.extend(labels.iter().filter_map(|l| l.as_str()).map(str::to_string))
                }
                _ => {}
            }
        }
        let enabled: Vec<&str> = enabled.iter().map(String::as_str).collect();
        let variant = self.planners.choose(&enabled, || fastrand::f64() * 100.0);
        metrics::counter!("shippy_router_override_variants_total", "variant" => variant.to_string())
            .increment(1);
        variant
    }

    pub(crate) async fn prepare(
        &self,
        text: &str,
        operation_name: Option<&str>,
        live: &Live,
        variant: usize,
    ) -> Prepared {
        let mut hasher = Xxh3::new();
        hasher.update(text.as_bytes());
        hasher.update(&[0xff]);
        hasher.update(operation_name.unwrap_or_default().as_bytes());
        hasher.update(&live.generation.to_le_bytes());
        hasher.update(&variant.to_le_bytes());
        let key = hasher.digest128();
        let mut prepared_now = false;
        let span = tracing::info_span!(target: shippy_telemetry::SPANS, "prepare", cache.hit = tracing::field::Empty);
        let result = self
            .operations
            .get_or_insert_async(&key, async {
                prepared_now = true;
                Ok::<_, Infallible>(
                    self.prepare_uncached(text, operation_name, live, key, variant)
                        .await,
                )
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
        variant: usize,
    ) -> Prepared {
        let reject = |errors: Vec<GraphQLError>, status: StatusCode| {
            Err(Arc::new(PipelineError::Rejected { errors, status }))
        };
        let limits = &live.config.limits;
        let document = match tracing::info_span!(target: shippy_telemetry::SPANS, "parse")
            .in_scope(|| parse::parse(text, limits.max_tokens))
        {
            Ok(document) => document,
            Err(error) => return reject(vec![error], StatusCode::BAD_REQUEST),
        };
        if let Err(error) = document_limits::check(&document, limits) {
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

        let normalized = match normalize::normalize(
            &self.planner,
            &self.schema,
            &document,
            &selected,
            &root_type,
        ) {
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
                    .plan(
                        self.planners.get(variant),
                        operation,
                        selected.name.as_deref(),
                        variant,
                    )
                    .await
                {
                    Ok(plan) => Some(plan),
                    Err(error) => {
                        let message = match error.as_ref() {
                            crate::query_planner::PlannerError::Timeout => PLANNING_TIMED_OUT,
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
            override_variant: variant,
            source: Arc::new((text.to_owned(), operation_name.map(str::to_owned))),
        }))
    }

    /// The plan of `prepared` without the selections `removed` (sorted node ids).
    pub(crate) async fn plan_without(
        &self,
        prepared: &PreparedOperation,
        removed: &[u32],
    ) -> Result<Option<Arc<QueryPlan>>, PipelineError> {
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
                    .plan(
                        self.planners.get(prepared.override_variant),
                        operation,
                        name,
                        prepared.override_variant,
                    )
                    .await
                    .map(Some)
                    .map_err(|_| ()))
            })
            .await;
        match result {
            Ok(Ok(plan)) => Ok(plan),
            Ok(Err(())) => Err(PipelineError::rejected(
                StatusCode::INTERNAL_SERVER_ERROR,
                GraphQLError::new(
                    "The operation could not be planned",
                    codes::QUERY_PLANNING_FAILED,
                ),
            )),
            Err(never) => match never {},
        }
    }

    /// Execute and respond for a prepared operation, the plan of what is left of it, and its
    /// coerced variables. `errors` (of removed fields) come first in the response.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn execute(
        &self,
        prepared: &PreparedOperation,
        plan: Option<&QueryPlan>,
        variables: &serde_json::Map<String, serde_json::Value>,
        headers: &SubgraphHeaders,
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
    pub(crate) async fn execute_event(
        &self,
        prepared: &PreparedOperation,
        subscription: &SubscriptionNode,
        payload: Bytes,
        variables: &serde_json::Map<String, serde_json::Value>,
        headers: &SubgraphHeaders,
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
        headers: &SubgraphHeaders,
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
            Value::Object(crate::graphql::introspection::resolve_root(
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
        let (body, _) = render::render(
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
pub(crate) fn plan_variables<'v>(
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

/// Everything an executed query's response depends on.
pub(crate) fn dedupe_key(
    prepared: &PreparedOperation,
    removed: &[u32],
    variables: &serde_json::Map<String, serde_json::Value>,
    headers: &SubgraphHeaders,
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
    headers.hash_into(&mut hasher);
    hasher.update(&[0xfe]);
    if let Some(identity) = identity {
        hasher.update(identity.claims_json());
    }
    hasher.update(&[0xfd]);
    hasher.update(&serde_json::to_vec(errors).unwrap_or_default());
    hasher.digest128()
}
