//! Schema-building defaults every subgraph applies: Federation v2, query depth and complexity limits,
//! tracing and metrics extensions (see [`crate::observe`]), and
//! the directives our subgraphs put on fields for the router to enforce before a request reaches them:
//! [`authenticated`] (the federation `@authenticated`, spelled `@federation__authenticated`),
//! `requires_scopes = "admin"` (async-graphql's own
//! attribute for `@requiresScopes`) and [`rate_limit`] (our `@rateLimit`, composed into the supergraph
//! with `@composeDirective`). Subgraphs keep checking the token themselves; the directives let the router
//! refuse or limit a field without a round trip.
//!
//! ```ignore
//! #[graphql(directive = authenticated::apply())]
//! async fn me(&self) -> ... {}
//! #[graphql(directive = rate_limit::apply(10, "1m".into(), Some("ip".into())))]
//! async fn login(&self) -> ... {}
//! ```

use std::{any::Any, collections::HashMap, fmt::Display, hash::Hash, sync::Arc};

use async_graphql::{
    Context, ObjectType, SchemaBuilder, SubscriptionType,
    dataloader::{DataLoader, Loader},
};

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::{config::ServerConfig, error};

/// Loads rows of `E` by a `Uuid` column, one query per batch (entity resolution asks for many at once).
/// Put a `DataLoader` of it into the schema's data and read through [`load_one`].
pub struct RowLoader<E: EntityTrait> {
    db: DatabaseConnection,
    /// The column the keys are in.
    column: E::Column,
    /// The key of a loaded row (the value of `column`).
    key: fn(&E::Model) -> Uuid,
}

impl<E: EntityTrait> RowLoader<E> {
    /// Loads from `db` the rows whose `column` is a key; `key` reads it back from a row.
    pub fn new(db: DatabaseConnection, column: E::Column, key: fn(&E::Model) -> Uuid) -> Self {
        Self { db, column, key }
    }
}

impl<E> Loader<Uuid> for RowLoader<E>
where
    E: EntityTrait,
    E::Model: Sync,
{
    type Value = E::Model;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, E::Model>, Arc<DbErr>> {
        let rows = E::find()
            .filter(self.column.is_in(keys.iter().copied()))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        Ok(rows
            .into_iter()
            .map(|row| ((self.key)(&row), row))
            .collect())
    }
}

/// What the schema was built with (`.data(...)`: the subgraph's state, its data loaders). Missing data is
/// a bug in building the schema, so it is an internal error, never the client's.
pub fn schema_data<'a, T: Any + Send + Sync>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a T> {
    ctx.data::<T>().map_err(|_| {
        error::internal(
            "schema data",
            format!("{} missing", std::any::type_name::<T>()),
        )
    })
}

/// The value for `key` through the schema's `DataLoader<L>`, batched with the request's other loads.
pub async fn load_one<L, K>(ctx: &Context<'_>, key: K) -> async_graphql::Result<Option<L::Value>>
where
    L: Loader<K>,
    L::Error: Display,
    K: Send + Sync + Hash + Eq + Clone + 'static,
{
    schema_data::<DataLoader<L>>(ctx)?
        .load_one(key)
        .await
        .map_err(|e| error::internal("loading an entity", e))
}

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
        // Spans for parsing, validation and every resolver, under the request's span.
        .extension(async_graphql::extensions::Tracing)
        .extension(crate::observe::GraphQLMetrics)
}

/// Where `@rateLimit` is specified; the router recognises this link.
pub const RATE_LIMIT_SPEC: &str = "https://shippy.dev/rate-limit/v0.1";

// Spelled `@federation__authenticated`, the federation spec's namespaced name, because async-graphql's
// fixed import list stops at `@requiresScopes`; composition reads it as `@authenticated`. The doc line is
// the directive's description in the SDL.
/// `@authenticated` (Federation 2.5): only callers with a valid token may select the field.
#[async_graphql::TypeDirective(name = "federation__authenticated", location = "FieldDefinition")]
pub fn authenticated() {}

/// `@rateLimit(limit:, duration:, by:)`: at most `limit` selections of the field per `duration` (`30s`,
/// `1m`) per caller: `by` is `user` (the default: the token's subject, else the client IP), `ip`, or a
/// claim name.
#[async_graphql::TypeDirective(
    name = "rateLimit",
    location = "FieldDefinition",
    composable = "https://shippy.dev/rate-limit/v0.1"
)]
pub fn rate_limit(limit: u32, duration: String, by: Option<String>) {}

/// The federation SDL of a schema: what `_service { sdl }` returns and `schema/<name>.graphql` holds.
/// Composable directives ([`rate_limit`]) get their `@link` and `@composeDirective`.
pub fn federation_sdl<Q, M, S>(schema: &async_graphql::Schema<Q, M, S>) -> String
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    schema.sdl_with_options(
        async_graphql::SDLExportOptions::new()
            .federation()
            .compose_directive(),
    )
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        #[graphql(directive = authenticated::apply())]
        async fn me(&self) -> i32 {
            1
        }
        #[graphql(requires_scopes = "admin")]
        async fn all(&self) -> i32 {
            2
        }
        #[graphql(directive = rate_limit::apply(3, "1m".into(), Some("ip".into())))]
        async fn limited(&self) -> i32 {
            3
        }
    }

    #[test]
    fn the_sdl_links_and_uses_the_directives() {
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish();
        let sdl = federation_sdl(&schema);
        assert!(sdl.contains("me: Int! @federation__authenticated"), "{sdl}");
        assert!(
            sdl.contains("all: Int! @requiresScopes(scopes: [[\"admin\"]])"),
            "{sdl}"
        );
        assert!(
            sdl.contains("limited: Int! @rateLimit(limit: 3, duration: \"1m\", by: \"ip\")"),
            "{sdl}"
        );
        assert!(sdl.contains(RATE_LIMIT_SPEC), "{sdl}");
        assert!(
            sdl.contains("@composeDirective(name: \"@rateLimit\")"),
            "{sdl}"
        );
    }
}
