//! Stage 6, execute: runs a query plan against the subgraphs and merges their data into one tree.
//!
//! Subgraph response bodies are kept in an append-only arena for the whole execution, and parsed
//! once into `Value`s that borrow their strings from it; nothing is re-serialized until `respond`
//! writes the client's response. Fetch nodes that run in parallel share the merged data through a
//! mutex that is only ever held for synchronous work (collecting representations, merging a
//! result) and never across an await, so it is uncontended apart from those short sections.
//!
//! Failures never abort the plan: a fetch that fails records an error naming the subgraph, once
//! for each response path it leaves null (its root fields, or each entity's fetched fields), and
//! the rest of the plan runs on whatever data exists, giving partial results.

pub(crate) mod entities;
mod missing;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Instrument;

use ahash::AHashMap;
use bytes::Bytes;
use futures::future::{BoxFuture, join_all};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use self::entities::{
    EntityBatch, apply_rewrites, collect_representations, locate_mut, response_path,
};
use super::RouterState;
use crate::error::{GraphQLError, PathElement, codes};
use crate::graphql::value::{Value, deep_merge, deep_merge_ref, write_str};
use crate::query_planner::{BatchFetchNode, FetchNode, FlattenNode, OperationKind, PlanNode};
use crate::subgraph::FetchError;
use crate::subgraph::headers::SubgraphHeaders;

/// The merged data and errors of one execution.
pub(crate) struct ExecutionOutput<'a> {
    pub(crate) data: Value<'a>,
    pub(crate) errors: Vec<GraphQLError>,
    /// Some fetch failed as a whole; fields missing from the data are explained by its error.
    pub(crate) fetch_failed: bool,
}

/// Keeps subgraph response bodies alive while the data tree borrows from them. Append-only and
/// shareable between the concurrent fetches of one execution.
pub(crate) type ResponseArena = boxcar::Vec<Bytes>;

struct Execution<'a> {
    state: &'a RouterState,
    variables: &'a Map<String, Json>,
    headers: &'a SubgraphHeaders,
    /// The caller's verified claims as JSON, sent as `extensions.claims` to subgraphs that
    /// take them (`forward_claims`).
    claims: Option<&'a Bytes>,
    /// Only queries may share an upstream call with identical in-flight requests.
    deduplicable: bool,
    arena: &'a ResponseArena,
    data: Mutex<Value<'a>>,
    errors: Mutex<Vec<GraphQLError>>,
    fetch_failed: AtomicBool,
}

/// Runs `plan` (if any) starting from `initial_data`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn execute<'a>(
    state: &'a RouterState,
    plan: Option<&'a PlanNode>,
    kind: OperationKind,
    variables: &'a Map<String, Json>,
    headers: &'a SubgraphHeaders,
    claims: Option<&'a Bytes>,
    arena: &'a ResponseArena,
    initial_data: Value<'a>,
) -> ExecutionOutput<'a> {
    let execution = Execution {
        state,
        variables,
        headers,
        claims,
        deduplicable: kind == OperationKind::Query,
        arena,
        data: Mutex::new(initial_data),
        errors: Mutex::new(Vec::new()),
        fetch_failed: AtomicBool::new(false),
    };
    if let Some(node) = plan {
        execution.run(node).await;
    }
    ExecutionOutput {
        data: execution
            .data
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
        errors: execution
            .errors
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
        fetch_failed: execution.fetch_failed.into_inner(),
    }
}

/// Writes `{"query":…,"variables":{…}}` with the fetch's client variables (`variables`, as the
/// plan names them) plus `extra` (representations), each given as already-serialized JSON, and
/// the caller's claims for subgraphs that take them. Also the `subscribe` payload of a
/// subscription's primary fetch.
pub(crate) fn request_body(
    state: &RouterState,
    variables: &Map<String, Json>,
    claims: Option<&Bytes>,
    fetch: &FetchNode,
    extra: &[(&str, &[u8])],
) -> Bytes {
    let extra_len: usize = extra.iter().map(|(_, v)| v.len() + 8).sum();
    let mut body = Vec::with_capacity(fetch.query_json.len() + extra_len + 64);
    body.extend_from_slice(b"{\"query\":");
    body.extend_from_slice(fetch.query_json.as_bytes());
    let mut first = true;
    let mut separator = |body: &mut Vec<u8>| {
        body.extend_from_slice(if first { b",\"variables\":{" } else { b"," });
        first = false;
    };
    for (name, json) in extra {
        separator(&mut body);
        write_str(&mut body, name);
        body.push(b':');
        body.extend_from_slice(json);
    }
    for name in &fetch.variable_usages {
        if let Some(value) = variables.get(name) {
            separator(&mut body);
            write_str(&mut body, name);
            body.push(b':');
            // Serializing a JSON value into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut body, value);
        }
    }
    if !first {
        body.push(b'}');
    }
    if let Some(claims) = claims
        && state.subgraphs[fetch.subgraph].forward_claims
    {
        body.extend_from_slice(b",\"extensions\":{\"claims\":");
        body.extend_from_slice(claims);
        body.push(b'}');
    }
    body.push(b'}');
    Bytes::from(body)
}

/// One event of a subscription (a GraphQL response from the subgraph's stream, `payload` of its
/// `next` message) as the data the rest of the plan starts from, parsed into `arena`, with the
/// primary fetch's output rewrites applied. Its errors are returned tagged with the subgraph.
pub(crate) fn event_data<'a>(
    state: &RouterState,
    arena: &'a ResponseArena,
    fetch: &FetchNode,
    payload: Bytes,
) -> (Value<'a>, Vec<GraphQLError>) {
    let index = arena.push(payload);
    let bytes: &'a [u8] = &arena[index];
    let service = fetch.service.as_str();
    match sonic_rs::from_slice::<SubgraphBody<'a>>(bytes) {
        Ok(mut event) => {
            let errors = event
                .take_errors()
                .unwrap_or_default()
                .into_iter()
                .map(|e| subgraph_error(e, service, Some))
                .collect();
            if !fetch.output_rewrites.is_empty() {
                apply_rewrites(&state.schema, &mut event.data, &fetch.output_rewrites);
            }
            (event.data, errors)
        }
        Err(_) => {
            tracing::warn!(
                subgraph = service,
                "subscription event is not a GraphQL response"
            );
            let error = GraphQLError::new(
                format!("Subgraph \"{service}\" sent an invalid subscription event"),
                codes::SUBREQUEST_MALFORMED_RESPONSE,
            )
            .with_extension("service", service.to_string());
            (Value::Null, vec![error])
        }
    }
}

/// A subgraph response body: `data` borrows from the arena, `errors` are owned (they are rare).
#[derive(Deserialize)]
struct SubgraphBody<'a> {
    #[serde(borrow, default)]
    data: Value<'a>,
    /// Parsed with the depth-limited `Value` (a subgraph must not be able to overflow the
    /// stack), converted to JSON when handled.
    #[serde(borrow, default)]
    errors: Option<Vec<Value<'a>>>,
}

impl SubgraphBody<'_> {
    fn take_errors(&mut self) -> Option<Vec<Json>> {
        self.errors.take().map(|errors| {
            errors
                .iter()
                .map(|e| serde_json::to_value(e).unwrap_or(Json::Null))
                .collect()
        })
    }
}

impl<'a> Execution<'a> {
    fn run<'n>(&'n self, node: &'a PlanNode) -> BoxFuture<'n, ()> {
        Box::pin(async move {
            match node {
                PlanNode::Fetch(fetch) => self.run_root_fetch(fetch).await,
                PlanNode::Flatten(flatten) => self.run_flatten(flatten).await,
                PlanNode::BatchFetch(batch) => self.run_batch(batch).await,
                PlanNode::Sequence(nodes) => {
                    for node in nodes {
                        self.run(node).await;
                    }
                }
                PlanNode::Parallel(nodes) => {
                    join_all(nodes.iter().map(|node| self.run(node))).await;
                }
                PlanNode::Condition(condition) => {
                    let value = self
                        .variables
                        .get(&condition.variable)
                        .and_then(Json::as_bool)
                        .unwrap_or(false);
                    let branch = if value {
                        &condition.if_clause
                    } else {
                        &condition.else_clause
                    };
                    if let Some(branch) = branch {
                        self.run(branch).await;
                    }
                }
                // A subscription's events are executed one by one from its `rest`
                // (`RouterState::execute_event`); the node itself is never run.
                PlanNode::Subscription(_) | PlanNode::Defer => self.push_error(GraphQLError::new(
                    "Subscriptions and @defer are not executed over this transport",
                    codes::UNSUPPORTED_OPERATION,
                )),
            }
        })
    }

    fn push_error(&self, error: GraphQLError) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(error);
    }

    fn push_errors(&self, errors: impl IntoIterator<Item = GraphQLError>) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(errors);
    }

    fn request_body(&self, fetch: &FetchNode, extra: &[(&str, &[u8])]) -> Bytes {
        request_body(self.state, self.variables, self.claims, fetch, extra)
    }

    /// Records a failed fetch: `error` (naming the subgraph) once per response path it left
    /// null, or once without a path when no path is known.
    fn fail(&self, error: GraphQLError, paths: Vec<Vec<PathElement>>) {
        self.fetch_failed.store(true, Ordering::Relaxed);
        if paths.is_empty() {
            self.push_error(error);
        } else {
            self.push_errors(paths.into_iter().map(|path| error.clone().with_path(path)));
        }
    }

    /// The response paths an entity fetch that failed leaves null: each entity's path followed
    /// by each field the fetch selects under `entities_key` (the entity's own path when the
    /// fields cannot be read).
    fn entity_paths(
        &self,
        fetch: &FetchNode,
        entities_key: &str,
        batch: &EntityBatch,
    ) -> Vec<Vec<PathElement>> {
        let fields = missing::entity_fields(&fetch.query, entities_key);
        let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        let mut paths = Vec::with_capacity(batch.entities.len() * fields.len().max(1));
        for entity in &batch.entities {
            let base = response_path(&data, batch.location(entity));
            if fields.is_empty() {
                paths.push(base);
                continue;
            }
            for field in &fields {
                let mut path = base.clone();
                path.push(PathElement::Key(field.clone()));
                paths.push(path);
            }
        }
        paths
    }

    /// Sends a request and parses the response; a failure is returned as an error naming the
    /// subgraph (without a path: the caller knows which paths the fetch leaves null).
    async fn send(&self, fetch: &FetchNode, body: Bytes) -> Result<SubgraphBody<'a>, GraphQLError> {
        let client = &self.state.subgraphs[fetch.subgraph];
        let deduplicable = self.deduplicable && fetch.operation_kind == OperationKind::Query;
        let service = fetch.service.as_str();
        let span = crate::telemetry::fetch_span(service, fetch.operation_kind, &fetch.query);
        let started = std::time::Instant::now();
        let result = client
            .fetch(body, self.headers.for_subgraph(&client.name), deduplicable)
            .instrument(span.clone())
            .await;
        crate::telemetry::record_fetch(&span, service, &result, started.elapsed());
        let failure = |code: &str, message: String| {
            GraphQLError::new(message, code).with_extension("service", service.to_string())
        };
        let response = match result {
            Ok(response) => {
                self.headers
                    .collect_response(&client.name, &response.headers);
                response
            }
            Err(error) => {
                tracing::warn!(subgraph = service, error = %error, "subgraph fetch failed");
                let (code, message) = match error {
                    FetchError::Timeout(_) => (
                        codes::SUBREQUEST_TIMEOUT,
                        format!("Subgraph \"{service}\" did not respond in time"),
                    ),
                    FetchError::Transport(_) => (
                        codes::SUBREQUEST_HTTP_ERROR,
                        format!("Subgraph \"{service}\" could not be reached"),
                    ),
                    FetchError::TooLarge(limit) => (
                        codes::SUBREQUEST_MALFORMED_RESPONSE,
                        format!("Subgraph \"{service}\" sent a response larger than {limit} bytes"),
                    ),
                    FetchError::CircuitOpen => (
                        codes::SUBREQUEST_CIRCUIT_OPEN,
                        format!(
                            "Subgraph \"{service}\" is failing; requests to it are paused (circuit open)"
                        ),
                    ),
                    FetchError::ConcurrencyExceeded => (
                        codes::SUBREQUEST_CONCURRENCY_EXCEEDED,
                        format!("Subgraph \"{service}\" has too many requests in flight"),
                    ),
                };
                return Err(failure(code, message));
            }
        };
        let status = response.status;
        let index = self.arena.push(response.body);
        let bytes: &'a [u8] = &self.arena[index];
        match sonic_rs::from_slice::<SubgraphBody<'a>>(bytes) {
            Ok(parsed)
                if status.is_success() || !parsed.data.is_null() || parsed.errors.is_some() =>
            {
                Ok(parsed)
            }
            Ok(_) | Err(_) if !status.is_success() => {
                tracing::warn!(subgraph = service, %status, "subgraph answered with an HTTP error");
                Err(failure(
                    codes::SUBREQUEST_HTTP_ERROR,
                    format!(
                        "Subgraph \"{service}\" answered with HTTP {}",
                        status.as_u16()
                    ),
                ))
            }
            _ => {
                tracing::warn!(
                    subgraph = service,
                    "subgraph response is not a GraphQL response"
                );
                Err(failure(
                    codes::SUBREQUEST_MALFORMED_RESPONSE,
                    format!("Subgraph \"{service}\" sent an invalid GraphQL response"),
                ))
            }
        }
    }

    async fn run_root_fetch(&self, fetch: &'a FetchNode) {
        let body = self.request_body(fetch, &[]);
        let mut response = match self.send(fetch, body).await {
            Ok(response) => response,
            Err(error) => {
                let paths = missing::root_fields(&fetch.query)
                    .into_iter()
                    .map(|key| vec![PathElement::Key(key)])
                    .collect();
                return self.fail(error, paths);
            }
        };
        if let Some(errors) = response.take_errors() {
            self.push_errors(
                errors
                    .into_iter()
                    .map(|e| subgraph_error(e, &fetch.service, Some)),
            );
        }
        if !fetch.output_rewrites.is_empty() {
            apply_rewrites(
                &self.state.schema,
                &mut response.data,
                &fetch.output_rewrites,
            );
        }
        let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        deep_merge(&mut data, response.data);
    }

    async fn run_flatten(&self, flatten: &'a FlattenNode) {
        let fetch = &flatten.fetch;
        let Some(requires) = &fetch.requires else {
            self.push_error(GraphQLError::new(
                "Entity fetch without requirements",
                codes::INTERNAL_SERVER_ERROR,
            ));
            return;
        };
        let paths = std::slice::from_ref(&flatten.path);
        let mut batch = EntityBatch::default();
        {
            let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
            collect_representations(
                &self.state.schema,
                &data,
                paths,
                requires,
                &fetch.input_rewrites,
                &mut batch,
            );
        }
        if batch.count == 0 {
            return;
        }
        let body = self.request_body(fetch, &[("representations", &batch.representations)]);
        let mut response = match self.send(fetch, body).await {
            Ok(response) => response,
            Err(error) => return self.fail(error, self.entity_paths(fetch, "_entities", &batch)),
        };
        let entities = take_entities(&mut response.data, "_entities");
        self.merge_entities(
            fetch,
            "_entities",
            entities,
            response.take_errors(),
            &batch,
            &fetch.output_rewrites,
        );
    }

    async fn run_batch(&self, node: &'a BatchFetchNode) {
        // Aliases with the same representations variable share one collection.
        let mut batches: Vec<(&str, EntityBatch)> = Vec::new();
        {
            let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
            for alias in &node.aliases {
                if batches
                    .iter()
                    .any(|(name, _)| *name == alias.representations_variable)
                {
                    continue;
                }
                let mut batch = EntityBatch::default();
                collect_representations(
                    &self.state.schema,
                    &data,
                    &alias.paths,
                    &alias.requires,
                    &alias.input_rewrites,
                    &mut batch,
                );
                batches.push((&alias.representations_variable, batch));
            }
        }
        if batches.iter().all(|(_, b)| b.count == 0) {
            return;
        }
        let extra: Vec<(&str, &[u8])> = batches
            .iter()
            .map(|(name, b)| (*name, b.representations.as_slice()))
            .collect();
        let body = self.request_body(&node.fetch, &extra);
        let mut response = match self.send(&node.fetch, body).await {
            Ok(response) => response,
            Err(error) => {
                let mut paths = Vec::new();
                for alias in &node.aliases {
                    if let Some((_, batch)) = batches
                        .iter()
                        .find(|(name, _)| *name == alias.representations_variable)
                    {
                        paths.extend(self.entity_paths(&node.fetch, &alias.alias, batch));
                    }
                }
                return self.fail(error, paths);
            }
        };
        let mut errors = response.take_errors().unwrap_or_default();
        for alias in &node.aliases {
            let Some((_, batch)) = batches
                .iter()
                .find(|(name, _)| *name == alias.representations_variable)
            else {
                continue;
            };
            let entities = take_entities(&mut response.data, &alias.alias);
            // Errors belong to the alias their path starts with.
            let (mine, rest): (Vec<Json>, Vec<Json>) = errors.into_iter().partition(|e| {
                e.get("path")
                    .and_then(Json::as_array)
                    .and_then(|p| p.first())
                    .and_then(Json::as_str)
                    == Some(alias.alias.as_str())
            });
            errors = rest;
            self.merge_entities(
                &node.fetch,
                &alias.alias,
                entities,
                (!mine.is_empty()).then_some(mine),
                batch,
                &alias.output_rewrites,
            );
        }
        if !errors.is_empty() {
            self.push_errors(
                errors
                    .into_iter()
                    .map(|e| subgraph_error(e, &node.fetch.service, |_| None)),
            );
        }
    }

    /// Merges an `_entities` result back into the entities it was requested for and re-paths
    /// the subgraph's `[_entities, i, …]` errors to those entities' response paths.
    #[allow(clippy::too_many_arguments)]
    fn merge_entities(
        &self,
        fetch: &FetchNode,
        field: &str,
        entities: Option<Vec<Value<'a>>>,
        errors: Option<Vec<Json>>,
        batch: &EntityBatch,
        output_rewrites: &[crate::query_planner::Rewrite],
    ) {
        let service = fetch.service.as_str();
        // Entity-scoped errors by representation index; the others are reported as they are.
        let mut entity_errors: AHashMap<usize, Vec<(usize, Vec<PathElement>)>> = AHashMap::new();
        let mut raw_errors: Vec<Json> = errors.unwrap_or_default();
        let mut plain_errors = Vec::new();
        for (i, error) in raw_errors.iter().enumerate() {
            match entity_error_target(error, field) {
                Some((index, rest)) if index < batch.count => {
                    entity_errors.entry(index).or_default().push((i, rest))
                }
                _ => plain_errors.push(i),
            }
        }

        let mut entities = match entities {
            Some(entities) if entities.len() == batch.count => entities,
            other => {
                if other.is_some() || raw_errors.is_empty() {
                    tracing::warn!(
                        subgraph = service,
                        expected = batch.count,
                        "subgraph returned a wrong number of entities"
                    );
                    self.fetch_failed.store(true, Ordering::Relaxed);
                    self.push_error(
                        GraphQLError::new(
                            format!("Subgraph \"{service}\" returned an invalid entities result"),
                            codes::SUBREQUEST_MALFORMED_RESPONSE,
                        )
                        .with_extension("service", service.to_string()),
                    );
                }
                // Errors still reach the client; entity errors lose their (unknown) target.
                self.fetch_failed.store(true, Ordering::Relaxed);
                self.push_errors(
                    raw_errors
                        .drain(..)
                        .map(|e| subgraph_error(e, service, |_| None)),
                );
                return;
            }
        };
        if !output_rewrites.is_empty() {
            for entity in &mut entities {
                apply_rewrites(&self.state.schema, entity, output_rewrites);
            }
        }
        // The last entity that uses a representation takes its result; earlier ones clone it.
        let mut remaining_uses = vec![0u32; entities.len()];
        for entity in &batch.entities {
            remaining_uses[entity.representation as usize] += 1;
        }

        let mut repathed: Vec<GraphQLError> = Vec::new();
        let mut lost = 0usize;
        {
            let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
            for entity in &batch.entities {
                let index = entity.representation as usize;
                let location = batch.location(entity);
                if let Some(errors) = entity_errors.get(&index) {
                    let base = response_path(&data, location);
                    for (error_index, rest) in errors {
                        let mut full = base.clone();
                        full.extend(rest.iter().cloned());
                        repathed.push(subgraph_error(
                            raw_errors[*error_index].clone(),
                            service,
                            |_| Some(full),
                        ));
                    }
                }
                remaining_uses[index] -= 1;
                let Some(target) = locate_mut(&mut data, location) else {
                    lost += 1;
                    continue;
                };
                if remaining_uses[index] == 0 {
                    deep_merge(target, std::mem::take(&mut entities[index]));
                } else {
                    deep_merge_ref(target, &entities[index]);
                }
            }
        }
        if lost > 0 {
            tracing::warn!(
                subgraph = service,
                lost,
                "entities moved between collection and merge"
            );
        }
        let plain = plain_errors
            .into_iter()
            .map(|i| subgraph_error(raw_errors[i].clone(), service, |_| None));
        self.push_errors(plain.chain(repathed));
    }
}

/// Takes `data[field]` when it is a list of entities.
fn take_entities<'a>(data: &mut Value<'a>, field: &str) -> Option<Vec<Value<'a>>> {
    let Value::Object(fields) = data else {
        return None;
    };
    let index = fields.iter().position(|(k, _)| k == field)?;
    match std::mem::take(&mut fields[index].1) {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

/// `[field, i, rest…]` paths of entity errors.
fn entity_error_target(error: &Json, field: &str) -> Option<(usize, Vec<PathElement>)> {
    let path = error.get("path")?.as_array()?;
    if path.first()?.as_str()? != field {
        return None;
    }
    let index = usize::try_from(path.get(1)?.as_u64()?).ok()?;
    Some((index, path[2..].iter().filter_map(path_element).collect()))
}

fn path_element(value: &Json) -> Option<PathElement> {
    match value {
        Json::String(s) => Some(PathElement::Key(s.clone())),
        Json::Number(n) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(PathElement::Index),
        _ => None,
    }
}

/// Turns an error from a subgraph into a client error: its message and extensions are kept, it
/// is tagged with the subgraph, given a code if it has none, and re-pathed by `repath` (which
/// receives the subgraph's own path).
pub(crate) fn subgraph_error(
    error: Json,
    service: &str,
    repath: impl FnOnce(Vec<PathElement>) -> Option<Vec<PathElement>>,
) -> GraphQLError {
    let (message, path, extensions) = match error {
        Json::Object(mut object) => {
            let message = match object.remove("message") {
                Some(Json::String(message)) => message,
                _ => format!("Subgraph \"{service}\" reported an error"),
            };
            let path = object.remove("path").and_then(|p| match p {
                Json::Array(items) => {
                    Some(items.iter().filter_map(path_element).collect::<Vec<_>>())
                }
                _ => None,
            });
            let extensions = match object.remove("extensions") {
                Some(Json::Object(extensions)) => extensions,
                _ => Map::new(),
            };
            (message, path, extensions)
        }
        _ => (
            format!("Subgraph \"{service}\" reported an error"),
            None,
            Map::new(),
        ),
    };
    let mut error = GraphQLError {
        message,
        locations: Vec::new(),
        path: path.and_then(repath),
        extensions,
    };
    if !error.extensions.contains_key("code") {
        error.extensions.insert(
            "code".into(),
            Json::String(codes::DOWNSTREAM_SERVICE_ERROR.into()),
        );
    }
    error
        .extensions
        .insert("service".into(), Json::String(service.to_string()));
    error
}
