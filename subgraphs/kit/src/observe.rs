//! What makes a subgraph observable: a `subgraph.request` span around every HTTP request
//! (continuing the caller's W3C trace, normally the router's fetch span), `/metrics`, and the
//! GraphQL request series, recorded by an async-graphql extension that knows the operation type.
//!
//! Resolver spans come from async-graphql's `Tracing` extension and database spans from SeaORM's
//! `tracing-spans` feature; both nest under the request span (see [`crate::graphql::configure`]).

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use async_graphql::{
    Response, ServerResult, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
    },
    parser::types::{ExecutableDocument, OperationType},
};
use axum::{
    Router,
    extract::Request,
    middleware::{self, Next},
    routing::get,
};
use shippy_telemetry::metrics::names;
use tracing::Instrument;

/// The subgraph a request is served by, put in the GraphQL request data for [`GraphQLMetrics`].
#[derive(Debug, Clone)]
pub struct ServiceLabel(pub Arc<str>);

/// Adds `/metrics` and the request span to a subgraph's app. The span is named `subgraph.request`
/// and carries the subgraph's name; its parent is the `traceparent` the request came with.
pub fn instrument(app: Router, service: &str) -> Router {
    shippy_telemetry::metrics::install();
    let label = ServiceLabel(Arc::from(service));
    app.route(
        "/metrics",
        get(|| async { shippy_telemetry::metrics::response() }),
    )
    .layer(middleware::from_fn(
        move |mut request: Request, next: Next| {
            let label = label.clone();
            async move {
                // Probes and scrapes would bury the requests that matter under one-span traces.
                if matches!(request.uri().path(), "/health" | "/ready" | "/metrics") {
                    return next.run(request).await;
                }
                let span = tracing::info_span!(target: shippy_telemetry::SPANS, "subgraph.request",
                    otel.kind = "server",
                    shippy.service = %label.0,
                    http.request.method = %request.method(),
                    url.path = %request.uri().path(),
                    http.response.status_code = tracing::field::Empty,
                );
                shippy_telemetry::propagation::set_parent_from_headers(&span, request.headers());
                request.extensions_mut().insert(label);
                let response = next.run(request).instrument(span.clone()).await;
                span.record("http.response.status_code", response.status().as_u16());
                response
            }
        },
    ))
}

/// Counts and times every GraphQL request by operation type and result (`ok` or `error`: the
/// response has errors), for the subgraph named by the request's [`ServiceLabel`].
pub struct GraphQLMetrics;

impl ExtensionFactory for GraphQLMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(MetricsExtension::default())
    }
}

/// One request's view: the operations of the parsed document and the one that ran.
#[derive(Default)]
struct MetricsExtension {
    /// `(name, type)` of each operation in the document; filled when it parses.
    operations: Mutex<Vec<(Option<String>, OperationType)>>,
    /// The type of the operation executed.
    executed: Mutex<Option<OperationType>>,
    /// The subgraph, from the request data (attached after the `request` hook starts, so read in
    /// `execute`).
    service: Mutex<Option<Arc<str>>>,
}

fn type_name(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

#[async_trait::async_trait]
impl Extension for MetricsExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let response = next.run(ctx).await;
        let service = self
            .service
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
            .unwrap_or("unknown")
            .to_owned();
        let operation_type = self
            .executed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or("unknown", type_name);
        let result = if response.errors.is_empty() {
            "ok"
        } else {
            "error"
        };
        let labels = [
            ("service", service),
            ("operation_type", operation_type.to_owned()),
            ("result", result.to_owned()),
        ];
        metrics::counter!(names::SUBGRAPH_REQUESTS, &labels).increment(1);
        metrics::histogram!(names::SUBGRAPH_REQUEST_DURATION, &labels)
            .record(started.elapsed().as_secs_f64());
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let operations = document
            .operations
            .iter()
            .map(|(name, operation)| (name.map(|n| n.to_string()), operation.node.ty))
            .collect();
        *self.operations.lock().unwrap_or_else(|p| p.into_inner()) = operations;
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let executed = {
            let operations = self.operations.lock().unwrap_or_else(|p| p.into_inner());
            operations
                .iter()
                .find(|(name, _)| operation_name.is_none() || name.as_deref() == operation_name)
                .map(|(_, ty)| *ty)
        };
        *self.executed.lock().unwrap_or_else(|p| p.into_inner()) = executed;
        *self.service.lock().unwrap_or_else(|p| p.into_inner()) =
            ctx.data_opt::<ServiceLabel>().map(|label| label.0.clone());
        next.run(ctx, operation_name).await
    }
}
