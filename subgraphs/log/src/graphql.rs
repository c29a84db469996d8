//! The log subgraph's GraphQL API: `LogEntry`, `logs` with filters and cursor pagination, `User` extended
//! with `activity`, and the `logAdded` subscription.
//!
//! Access: a user sees the entries that concern them (`userId` is theirs); a token with the `admin` scope
//! sees every entry. Entries are ordered by id, which is the event's UUIDv7, so by when things happened.

use async_graphql::{
    Context, ErrorExtensions, ID, InputObject, Json, Object, Result, Subscription,
};
use chrono::{DateTime, Utc};
use futures::{StreamExt, stream::BoxStream};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};
use shippy_contracts::streams;
use shippy_kit::{
    auth::{self, Claims, SCOPE_ADMIN},
    error,
    events::Event,
    graphql::{self, authenticated},
    live::Live,
    pagination::{Page, parse_id},
};
use uuid::Uuid;

use crate::{
    State,
    entity::{self, Column, Entity as Entries},
};

/// Longest `service` or `kind` filter, in characters.
const FILTER_MAX: usize = 100;

/// A log entry (one row).
pub struct LogEntry(entity::Model);

/// One thing that happened, as the service that did it recorded it.
#[Object]
impl LogEntry {
    /// The entry's id: the id of the event it records.
    async fn id(&self) -> ID {
        ID(self.0.event_id.to_string())
    }

    /// The event's id (the same as `id`: one entry per event).
    async fn event_id(&self) -> ID {
        ID(self.0.event_id.to_string())
    }

    /// The service that recorded it, e.g. `consignment`.
    async fn service(&self) -> &str {
        &self.0.service
    }

    /// What happened, e.g. `consignment.assigned`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }

    /// The user it concerns, if any.
    async fn user_id(&self) -> Option<ID> {
        self.0.user_id.clone().map(ID)
    }

    /// A short description.
    async fn message(&self) -> &str {
        &self.0.message
    }

    /// Details, as the recording service gave them.
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(self.0.payload.clone())
    }

    /// When it happened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

impl LogEntry {
    fn from_event(event: &Event) -> Self {
        Self(entity::Model {
            event_id: event.event_id,
            service: event.service.clone(),
            kind: event.kind.clone(),
            user_id: event.user_id.clone(),
            message: event.message.clone(),
            payload: event.payload.clone(),
            created_at: event.occurred_at,
            stored_at: event.occurred_at,
        })
    }
}

/// Which entries `logs` returns; every condition given must hold.
#[derive(InputObject, Default)]
pub struct LogFilter {
    /// Only entries recorded by this service.
    service: Option<String>,
    /// Only entries of this kind.
    kind: Option<String>,
    /// Only entries that happened at or after this time.
    since: Option<DateTime<Utc>>,
    /// Only entries that happened before this time.
    until: Option<DateTime<Utc>>,
}

impl LogFilter {
    fn apply(self, mut query: Select<Entries>) -> Result<Select<Entries>> {
        for (field, value) in [
            ("filter.service", &self.service),
            ("filter.kind", &self.kind),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.chars().count() > FILTER_MAX)
            {
                return Err(error::bad_input(field, "must be at most 100 characters"));
            }
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && until <= since
        {
            return Err(error::bad_input("filter.until", "must be after `since`"));
        }
        if let Some(service) = self.service {
            query = query.filter(Column::Service.eq(service));
        }
        if let Some(kind) = self.kind {
            query = query.filter(Column::Kind.eq(kind));
        }
        if let Some(since) = self.since {
            query = query.filter(Column::CreatedAt.gte(since));
        }
        if let Some(until) = self.until {
            query = query.filter(Column::CreatedAt.lt(until));
        }
        Ok(query)
    }
}

fn state<'a>(ctx: &'a Context<'_>) -> Result<&'a State> {
    graphql::schema_data(ctx)
}

async fn fetch(ctx: &Context<'_>, query: Select<Entries>) -> Result<Vec<LogEntry>> {
    let rows = query
        .all(&state(ctx)?.db)
        .await
        .map_err(|e| error::internal("reading the log", e))?;
    Ok(rows.into_iter().map(LogEntry).collect())
}

/// A user, owned by the user subgraph; this subgraph adds their activity. (No doc comment on the
/// `#[Object]` impl: it would become the composed API's description of `User`.)
pub struct User {
    id: Uuid,
}

#[Object]
impl User {
    /// The user's id.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// The user's latest entries, newest first (`first`: 1 to 100, default 20). Only for the user
    /// themself: anyone else gets `FORBIDDEN`.
    async fn activity(&self, ctx: &Context<'_>, first: Option<i32>) -> Result<Vec<LogEntry>> {
        let claims = auth::require(ctx)?;
        if claims.sub != self.id.to_string() {
            return Err(error::forbidden("only a user's own activity is visible"));
        }
        let page = Page::parse(first, None)?;
        let query = Entries::find()
            .filter(Column::UserId.eq(claims.sub.clone()))
            .order_by_desc(Column::EventId)
            .limit(page.limit);
        fetch(ctx, query).await
    }
}

/// Queries.
#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// Log entries in the order they happened, `first` (1 to 100, default 20) after the entry `after`,
    /// narrowed by `filter`. A user sees the entries that concern them; scope `admin` sees all. Requires a
    /// token.
    #[graphql(directive = authenticated::apply())]
    async fn logs(
        &self,
        ctx: &Context<'_>,
        filter: Option<LogFilter>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> Result<Vec<LogEntry>> {
        let claims = auth::require(ctx)?;
        let page = Page::parse(first, after.as_ref())?;
        let mut query = filter
            .unwrap_or_default()
            .apply(Entries::find())?
            .order_by_asc(Column::EventId)
            .limit(page.limit);
        if !claims.has_scope(SCOPE_ADMIN) {
            query = query.filter(Column::UserId.eq(claims.sub.clone()));
        }
        if let Some(after) = page.after {
            query = query.filter(Column::EventId.gt(after));
        }
        fetch(ctx, query).await
    }

    /// Federation entity resolver for `User @key(fields: "id")`: any id; the fields decide what to show.
    #[graphql(entity)]
    async fn find_user_by_id(&self, #[graphql(key)] id: ID) -> Result<User> {
        Ok(User {
            id: parse_id("id", &id)?,
        })
    }
}

/// Whether `claims` may see `event`, and it matches the `service` asked for.
fn visible(claims: &Claims, service: Option<&str>, event: &Event) -> bool {
    (claims.has_scope(SCOPE_ADMIN) || event.user_id.as_deref() == Some(claims.sub.as_str()))
        && service.is_none_or(|s| s == event.service)
}

/// What a subscriber that fell behind gets instead of the entries it missed: an error item with
/// `extensions.code` `SUBSCRIPTION_LAGGED` and `extensions.missed`; the subscription goes on. The missed
/// entries are in `logs` (filter `since`).
fn lagged(missed: u64) -> async_graphql::Error {
    async_graphql::Error::new(format!(
        "this subscription fell behind and skipped {missed} log events; read them with `logs`"
    ))
    .extend_with(move |_, ext| {
        ext.set("code", "SUBSCRIPTION_LAGGED");
        ext.set("missed", missed);
    })
}

/// Subscriptions (over WebSocket, graphql-transport-ws).
#[derive(Default)]
pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Each new entry the caller may see (their own; scope `admin`: all), optionally only from `service`.
    /// Requires a token. A subscriber that falls behind gets a `SUBSCRIPTION_LAGGED` error item saying
    /// how many entries it missed, and the subscription continues.
    #[graphql(directive = authenticated::apply())]
    async fn log_added(
        &self,
        ctx: &Context<'_>,
        service: Option<String>,
    ) -> Result<BoxStream<'static, Result<LogEntry>>> {
        let claims = auth::require(ctx)?.clone();
        if service
            .as_ref()
            .is_some_and(|s| s.chars().count() > FILTER_MAX)
        {
            return Err(error::bad_input(
                "service",
                "must be at most 100 characters",
            ));
        }
        let feed = state(ctx)?.live.subscribe();
        Ok(feed
            .filter_map(move |live| {
                let item = match live {
                    Live::Event(event) => (event.stream == streams::LOG
                        && visible(&claims, service.as_deref(), &event))
                    .then(|| Ok(LogEntry::from_event(&event))),
                    Live::Lagged(missed) => Some(Err(lagged(missed))),
                };
                std::future::ready(item)
            })
            .boxed())
    }
}

/// The log subgraph's schema type.
pub type LogSchema = async_graphql::Schema<Query, async_graphql::EmptyMutation, Subscription>;

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, scopes: &[&str]) -> Claims {
        Claims {
            jti: None,
            sub: sub.into(),
            email: "a@b.co".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            iat: 0,
            exp: 0,
            iss: "shippy".into(),
            aud: "shippy".into(),
        }
    }

    #[test]
    fn visibility() {
        let event = shippy_contracts::log::event(
            "vessel",
            "vessel.created",
            Some("u1".into()),
            "",
            serde_json::json!({}),
        );
        assert!(visible(&claims("u1", &[]), None, &event));
        assert!(visible(&claims("u1", &[]), Some("vessel"), &event));
        assert!(!visible(&claims("u1", &[]), Some("user"), &event));
        assert!(!visible(&claims("u2", &[]), None, &event));
        assert!(visible(&claims("u2", &[SCOPE_ADMIN]), None, &event));
        let anonymous = shippy_contracts::log::event("user", "x", None, "", serde_json::json!({}));
        assert!(!visible(&claims("u1", &[]), None, &anonymous));
        let err = lagged(3);
        assert_eq!(
            err.extensions.unwrap().get("code"),
            Some(&async_graphql::Value::from("SUBSCRIPTION_LAGGED"))
        );
    }
}
