//! Schema-building defaults every subgraph applies: Federation v2, query depth and complexity limits.

use async_graphql::{ObjectType, SchemaBuilder, SubscriptionType};

use crate::config::ServerConfig;

/// Turns on Apollo Federation v2 (`@link`, `_service`, `_entities`) and the configured query limits. The
/// `Subscription` type is part of the federation SDL (async-graphql leaves it out unless asked), so the
/// supergraph, and the router, know a subgraph's subscriptions.
pub fn configure<Q, M, S>(
    builder: SchemaBuilder<Q, M, S>,
    server: &ServerConfig,
) -> SchemaBuilder<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    builder
        .enable_federation()
        .enable_subscription_in_federation()
        .limit_depth(server.max_query_depth)
        .limit_complexity(server.max_query_complexity)
}

/// The federation SDL of a schema: what `_service { sdl }` returns and `schema/<name>.graphql` holds.
pub fn federation_sdl<Q, M, S>(schema: &async_graphql::Schema<Q, M, S>) -> String
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    schema.sdl_with_options(async_graphql::SDLExportOptions::new().federation())
}
