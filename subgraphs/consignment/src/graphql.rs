//! The consignment subgraph's GraphQL API: `Consignment` (a federation entity keyed by `id`), `User`
//! extended with `consignments`, references to `Vessel`, and the `consignmentUpdated` subscription.
//!
//! Access: a consignment is its owner's. `consignment(id)`, `consignments`, `User.consignments`, the
//! entity resolver and `consignmentUpdated` show a user their own consignments and nothing of anyone
//! else's (null, or `FORBIDDEN`). The one other person with a say is the owner of the vessel carrying it,
//! who moves it along with `updateConsignmentStatus`. Its owner may `retryConsignment` an `UNASSIGNABLE`
//! one and `cancelConsignment` one not yet assigned.

use async_graphql::{
    Context, ErrorExtensions, ID, InputObject, Object, Result, SimpleObject, Subscription,
};
use chrono::{DateTime, Utc};
use futures::{StreamExt, stream::BoxStream};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use shippy_kit::{
    auth::{self, Claims},
    error,
    graphql::{self, authenticated, rate_limit},
    pagination::{Page, parse_id},
};
use uuid::Uuid;

use crate::{
    State,
    commands::{self, NewConsignment, OwnerError, StatusError},
    consumers,
    domain::{self, ConsignmentWeight, Containers, Description, Status},
    entity::{self, Column, Entity as Consignments},
};

impl ErrorExtensions for StatusError {
    fn extend(&self) -> async_graphql::Error {
        match self {
            StatusError::NotCarrier => error::forbidden(self.to_string()),
            StatusError::Transition { .. } => error::bad_input("status", self),
            StatusError::Db(_) => error::internal("updating consignment status", self),
        }
    }
}

impl ErrorExtensions for OwnerError {
    fn extend(&self) -> async_graphql::Error {
        match self {
            OwnerError::NotYours => error::forbidden(self.to_string()),
            OwnerError::NotRetryable(_) | OwnerError::NotCancellable(_) => {
                error::bad_input("id", self)
            }
            OwnerError::Db(_) => error::internal("changing consignment", self),
        }
    }
}

/// A user, owned by the user subgraph; this subgraph adds their consignments. (The `#[Object]` impl has
/// no doc comment on purpose: it would become the composed API's description of `User`.)
pub struct User {
    id: Uuid,
}

#[Object]
impl User {
    /// The user's id.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// The user's consignments, oldest first: `first` (1 to 100, default 20) after the consignment
    /// `after`. Only for the user themself: anyone else gets `FORBIDDEN`.
    async fn consignments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> Result<Vec<Consignment>> {
        let caller = caller_id(auth::require(ctx)?)?;
        if caller != self.id {
            return Err(error::forbidden(
                "only a user's own consignments are visible",
            ));
        }
        list(ctx, caller, Page::parse(first, after.as_ref())?).await
    }
}

// A vessel, owned by the vessel subgraph; this subgraph only knows the id. Plain comments, not doc
// comments: a stub's description would become the composed API's description of `Vessel`.
#[derive(SimpleObject)]
#[graphql(unresolvable)]
pub struct Vessel {
    /// The vessel's id.
    id: ID,
}

/// One container of a consignment.
#[derive(SimpleObject)]
pub struct Container {
    /// The customer the container belongs to.
    customer_id: String,
    /// Where it comes from.
    origin: String,
}

/// A consignment (one row).
pub struct Consignment(pub(crate) entity::Model);

impl Consignment {
    /// Whether the caller owns it. Other callers reach a consignment only as the carrier (the owner of
    /// the vessel that moves it), and a carrier is not told what is inside or whose it is.
    fn seen_by_owner(&self, ctx: &Context<'_>) -> bool {
        auth::caller(ctx)
            .and_then(|claims| Uuid::parse_str(&claims.sub).ok())
            .is_some_and(|caller| caller == self.0.owner_id)
    }
}

/// Goods in containers, shipped by their owner on a vessel that has room for them.
#[Object]
impl Consignment {
    /// The consignment's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// What is shipped: visible only to the consignment's owner, `null` for anyone else (the carrier
    /// moving it sees what it needs to carry it: weight, containers, status, vessel).
    async fn description(&self, ctx: &Context<'_>) -> Option<&str> {
        self.seen_by_owner(ctx)
            .then_some(self.0.description.as_str())
    }

    /// Total weight, in kilograms.
    async fn weight(&self) -> i32 {
        shippy_contracts::weight::graphql_int(self.0.weight)
    }

    /// The containers.
    async fn containers(&self) -> Result<Vec<Container>> {
        let stored: Vec<domain::Container> = serde_json::from_value(self.0.containers.clone())
            .map_err(|e| error::internal("reading containers", e))?;
        Ok(stored
            .into_iter()
            .map(|c| Container {
                customer_id: c.customer_id,
                origin: c.origin,
            })
            .collect())
    }

    /// Where it is in its life.
    async fn status(&self) -> Result<Status> {
        Status::parse(&self.0.status).ok_or_else(|| {
            error::internal("reading consignment status", format!("{:?}", self.0.status))
        })
    }

    /// Why no vessel carries it, in plain words ("No vessel has room for 12 containers and 40,000 kg",
    /// "No vessel answered within 10 minutes"): set while it is `UNASSIGNABLE`, null otherwise, and
    /// null for anyone but its owner.
    async fn unassignable_reason(&self, ctx: &Context<'_>) -> Option<&str> {
        if !self.seen_by_owner(ctx) || self.0.status != Status::Unassignable.as_str() {
            return None;
        }
        self.0.unassignable_reason.as_deref()
    }

    /// The vessel carrying it (resolved by the vessel subgraph); null until assigned.
    async fn vessel(&self) -> Option<Vessel> {
        self.0.vessel_id.map(|id| Vessel {
            id: ID(id.to_string()),
        })
    }

    /// Its owner (resolved by the user subgraph): visible only to the owner, `null` for anyone else.
    async fn owner(&self, ctx: &Context<'_>) -> Option<User> {
        self.seen_by_owner(ctx).then_some(User {
            id: self.0.owner_id,
        })
    }

    /// Creation time.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Time of the last change.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// One container of a new consignment.
#[derive(InputObject)]
pub struct ContainerInput {
    /// The customer it belongs to, 1 to 100 characters.
    customer_id: String,
    /// Where it comes from, 1 to 100 characters.
    origin: String,
}

/// A new consignment.
#[derive(InputObject)]
pub struct CreateConsignmentInput {
    /// What is shipped, 1 to 500 characters.
    description: String,
    /// Total weight in kilograms: 1 to 1000000000.
    weight: i32,
    /// 1 to 1000 containers.
    containers: Vec<ContainerInput>,
}

impl CreateConsignmentInput {
    fn parse(self) -> Result<NewConsignment> {
        let description = Description::parse(&self.description)
            .map_err(|e| error::bad_input("input.description", e))?;
        let weight = ConsignmentWeight::parse(self.weight.into())
            .map_err(|e| error::bad_input("input.weight", e))?;
        // The count first: no point checking 100 000 labels of a list that is too long anyway.
        if self.containers.len() > domain::CONTAINERS_MAX {
            return Err(error::bad_input(
                "input.containers",
                "must list at most 1000 containers",
            ));
        }
        let containers = self
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                domain::Container::parse(&c.customer_id, &c.origin).map_err(|(field, e)| {
                    error::bad_input(&format!("input.containers[{i}].{field}"), e)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let containers =
            Containers::new(containers).map_err(|e| error::bad_input("input.containers", e))?;
        Ok(NewConsignment {
            description,
            weight,
            containers,
        })
    }
}

fn state<'a>(ctx: &'a Context<'_>) -> Result<&'a State> {
    graphql::schema_data(ctx)
}

fn caller_id(claims: &Claims) -> Result<Uuid> {
    Uuid::parse_str(&claims.sub)
        .map_err(|_| error::unauthenticated("the token subject is not a user id"))
}

async fn list(ctx: &Context<'_>, owner: Uuid, page: Page) -> Result<Vec<Consignment>> {
    let mut query = Consignments::find()
        .filter(Column::OwnerId.eq(owner))
        .order_by_asc(Column::Id)
        .limit(page.limit);
    if let Some(after) = page.after {
        query = query.filter(Column::Id.gt(after));
    }
    let rows = query
        .all(&state(ctx)?.db)
        .await
        .map_err(|e| error::internal("listing consignments", e))?;
    Ok(rows.into_iter().map(Consignment).collect())
}

/// The caller's consignment `id`, or `None` (not found, or someone else's: the same answer).
async fn own(ctx: &Context<'_>, owner: Uuid, id: Uuid) -> Result<Option<entity::Model>> {
    Consignments::find_by_id(id)
        .filter(Column::OwnerId.eq(owner))
        .one(&state(ctx)?.db)
        .await
        .map_err(|e| error::internal("loading consignment", e))
}

/// Queries.
#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// The caller's consignments, oldest first: `first` (1 to 100, default 20) after the consignment
    /// `after`. Requires a token.
    #[graphql(directive = authenticated::apply())]
    async fn consignments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> Result<Vec<Consignment>> {
        let owner = caller_id(auth::require(ctx)?)?;
        list(ctx, owner, Page::parse(first, after.as_ref())?).await
    }

    /// One of the caller's consignments; null if there is none with this id or it is someone else's.
    /// Requires a token.
    #[graphql(directive = authenticated::apply())]
    async fn consignment(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Consignment>> {
        let owner = caller_id(auth::require(ctx)?)?;
        let id = parse_id("id", &id)?;
        Ok(own(ctx, owner, id).await?.map(Consignment))
    }

    /// Federation entity resolver for `Consignment @key(fields: "id")`: the same rule as `consignment`,
    /// null for anyone but the owner.
    #[graphql(entity)]
    async fn find_consignment_by_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(key)] id: ID,
    ) -> Result<Option<Consignment>> {
        let Some(claims) = auth::caller(ctx) else {
            return Ok(None);
        };
        let owner = caller_id(claims)?;
        Ok(own(ctx, owner, parse_id("id", &id)?)
            .await?
            .map(Consignment))
    }

    /// Federation entity resolver for `User @key(fields: "id")`: any id; the fields decide what to show.
    #[graphql(entity)]
    async fn find_user_by_id(&self, #[graphql(key)] id: ID) -> Result<User> {
        Ok(User {
            id: parse_id("id", &id)?,
        })
    }
}

/// Mutations.
#[derive(Default)]
pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates a consignment owned by the caller, `PENDING` until the vessel subgraph assigns it (watch
    /// `consignmentUpdated`). Requires a token. Records `consignment.created`.
    #[graphql(
        directive = authenticated::apply(),
        directive = rate_limit::apply(10, "1m".into(), None)
    )]
    async fn create_consignment(
        &self,
        ctx: &Context<'_>,
        input: CreateConsignmentInput,
    ) -> Result<Consignment> {
        let owner = caller_id(auth::require(ctx)?)?;
        let new = input.parse()?;
        let row = commands::create(state(ctx)?, owner, new)
            .await
            .map_err(|e| error::internal("creating consignment", e))?;
        Ok(Consignment(row))
    }

    /// Moves a consignment along: `ASSIGNED -> IN_TRANSIT -> DELIVERED`, nothing else. Only the owner of
    /// the vessel carrying it may (`FORBIDDEN` for anyone else); another step is `BAD_USER_INPUT`.
    /// Records `consignment.status_changed`.
    #[graphql(directive = authenticated::apply())]
    async fn update_consignment_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: Status,
    ) -> Result<Consignment> {
        let caller = caller_id(auth::require(ctx)?)?;
        let id = parse_id("id", &id)?;
        let row = commands::update_status(state(ctx)?, caller, id, status)
            .await
            .map_err(|e| e.extend())?;
        Ok(Consignment(row))
    }

    /// Asks again for a vessel for one of the caller's `UNASSIGNABLE` consignments: it is `PENDING`
    /// again, with a new deadline. Another status is `BAD_USER_INPUT`; a consignment that is not the
    /// caller's (or does not exist) is `FORBIDDEN`. Records `consignment.retried`.
    #[graphql(
        directive = authenticated::apply(),
        directive = rate_limit::apply(10, "1m".into(), None)
    )]
    async fn retry_consignment(&self, ctx: &Context<'_>, id: ID) -> Result<Consignment> {
        let caller = caller_id(auth::require(ctx)?)?;
        let id = parse_id("id", &id)?;
        let row = commands::retry(state(ctx)?, caller, id)
            .await
            .map_err(|e| e.extend())?;
        Ok(Consignment(row))
    }

    /// Cancels one of the caller's consignments that no vessel carries yet (`PENDING` or
    /// `UNASSIGNABLE`): it becomes `CANCELLED` for good, and any capacity a vessel booked for it is
    /// given back. Another status is `BAD_USER_INPUT`; a consignment that is not the caller's (or does
    /// not exist) is `FORBIDDEN`. Records `consignment.cancelled`.
    #[graphql(directive = authenticated::apply())]
    async fn cancel_consignment(&self, ctx: &Context<'_>, id: ID) -> Result<Consignment> {
        let caller = caller_id(auth::require(ctx)?)?;
        let id = parse_id("id", &id)?;
        let row = commands::cancel(state(ctx)?, caller, id)
            .await
            .map_err(|e| e.extend())?;
        Ok(Consignment(row))
    }
}

/// Subscriptions (over WebSocket, graphql-transport-ws).
#[derive(Default)]
pub struct Subscription;

#[Subscription]
impl Subscription {
    /// The caller's consignment `id`, or all the caller's consignments, each time one changes status
    /// (creation included), as it is after the change. Requires a token; another user's id is
    /// `FORBIDDEN`.
    #[graphql(directive = authenticated::apply())]
    async fn consignment_updated(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> Result<BoxStream<'static, Result<Consignment>>> {
        let owner = caller_id(auth::require(ctx)?)?;
        let only = id.as_ref().map(|id| parse_id("id", id)).transpose()?;
        let state = state(ctx)?.clone();
        let feed = state.live.subscribe();
        if let Some(id) = only
            && own(ctx, owner, id).await?.is_none()
        {
            return Err(error::forbidden("no consignment of yours has this id"));
        }
        Ok(consumers::watch(state, feed, owner, only)
            .map(|row| row.map(Consignment))
            .boxed())
    }
}

/// The consignment subgraph's schema type.
pub type ConsignmentSchema = async_graphql::Schema<Query, Mutation, Subscription>;
