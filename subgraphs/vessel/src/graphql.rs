//! The vessel subgraph's GraphQL API: `Vessel` (a federation entity keyed by `id`) and a `User` reference
//! resolved by the user subgraph.

use async_graphql::{Context, EmptySubscription, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use shippy_contracts::weight::graphql_int;
use shippy_kit::{
    auth, error,
    graphql::{self, RowLoader, authenticated},
    pagination::{Page, parse_id},
};
use uuid::Uuid;

use crate::{
    State,
    commands::{self, CreateError, NewVessel},
    domain::{Capacity, VesselName, Weight},
    entity::{self, Column, Entity as Vessels},
};

/// Loads vessels by id, one query per batch.
pub type VesselLoader = RowLoader<Vessels>;

/// The [`VesselLoader`] of `db`.
pub fn vessel_loader(db: DatabaseConnection) -> VesselLoader {
    RowLoader::new(db, Column::Id, |row: &entity::Model| row.id)
}

// A user, owned by the user subgraph; this subgraph only knows the id. Plain comments, not doc comments: a
// stub's description would become the composed API's description of `User`.
#[derive(SimpleObject)]
#[graphql(unresolvable)]
pub struct User {
    /// The user's id.
    id: ID,
}

/// A vessel (one row).
pub struct Vessel(entity::Model);

/// A vessel that carries containers, owned by the user who registered it.
#[Object]
impl Vessel {
    /// The vessel's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Capacity in containers.
    async fn capacity(&self) -> i32 {
        self.0.capacity
    }

    /// Heaviest total cargo weight it takes, in kilograms.
    async fn max_weight(&self) -> i32 {
        graphql_int(self.0.max_weight)
    }

    /// Whether it takes new consignments.
    async fn available(&self) -> bool {
        self.0.available
    }

    /// Containers still free: capacity minus what assigned consignments have booked.
    async fn remaining_capacity(&self) -> i32 {
        self.0.remaining_capacity()
    }

    /// Kilograms still free: max weight minus what assigned consignments have booked.
    async fn remaining_weight(&self) -> i32 {
        graphql_int(self.0.remaining_weight())
    }

    /// The owner (resolved by the user subgraph). Nullable so that an owner the user subgraph cannot
    /// find costs this one field (null, with an error at its path), not the whole list it is in.
    async fn owner(&self) -> Option<User> {
        Some(User {
            id: ID(self.0.owner_id.to_string()),
        })
    }

    /// Creation time.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A new vessel.
#[derive(InputObject)]
pub struct CreateVesselInput {
    /// Name, 1 to 100 characters.
    name: String,
    /// Capacity in containers, 1 to 1000000.
    capacity: i32,
    /// Heaviest total cargo weight it takes, in kilograms: 1 to 1000000000.
    max_weight: i32,
}

impl CreateVesselInput {
    fn parse(self) -> Result<NewVessel> {
        Ok(NewVessel {
            name: VesselName::parse(&self.name).map_err(|e| error::bad_input("input.name", e))?,
            capacity: Capacity::parse(self.capacity)
                .map_err(|e| error::bad_input("input.capacity", e))?,
            max_weight: Weight::parse(self.max_weight.into())
                .map_err(|e| error::bad_input("input.maxWeight", e))?,
        })
    }
}

fn state<'a>(ctx: &'a Context<'_>) -> Result<&'a State> {
    graphql::schema_data(ctx)
}

async fn load(ctx: &Context<'_>, id: Uuid) -> Result<Option<Vessel>> {
    Ok(graphql::load_one::<VesselLoader, _>(ctx, id)
        .await?
        .map(Vessel))
}

/// Queries.
#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// All vessels, oldest first: `first` (1 to 100, default 20) after the vessel `after`.
    async fn vessels(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> Result<Vec<Vessel>> {
        let page = Page::parse(first, after.as_ref())?;
        let mut query = Vessels::find().order_by_asc(Column::Id).limit(page.limit);
        if let Some(after) = page.after {
            query = query.filter(Column::Id.gt(after));
        }
        let rows = query
            .all(&state(ctx)?.db)
            .await
            .map_err(|e| error::internal("listing vessels", e))?;
        Ok(rows.into_iter().map(Vessel).collect())
    }

    /// One vessel by id, or null.
    async fn vessel(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Vessel>> {
        load(ctx, parse_id("id", &id)?).await
    }

    /// The available vessel with the least room that still takes `capacity` more containers weighing
    /// `maxWeight` more kilograms (1 to 1000000000), or null if none does.
    async fn find_available_vessel(
        &self,
        ctx: &Context<'_>,
        capacity: i32,
        max_weight: i32,
    ) -> Result<Option<Vessel>> {
        let capacity = Capacity::parse(capacity).map_err(|e| error::bad_input("capacity", e))?;
        let max_weight =
            Weight::parse(max_weight.into()).map_err(|e| error::bad_input("maxWeight", e))?;
        let found = commands::find_available(&state(ctx)?.db, capacity, max_weight)
            .await
            .map_err(|e| error::internal("finding a vessel", e))?;
        Ok(found.map(Vessel))
    }

    /// Federation entity resolver for `Vessel @key(fields: "id")`.
    #[graphql(entity)]
    async fn find_vessel_by_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(key)] id: ID,
    ) -> Result<Option<Vessel>> {
        load(ctx, parse_id("id", &id)?).await
    }
}

/// Mutations.
#[derive(Default)]
pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates an available vessel owned by the caller. Requires a token. Records `vessel.created`.
    ///
    /// The caller must be a registered user. A user who registered a moment ago may not be known here
    /// yet: the call then waits a few seconds for the registration to arrive, and if it does not, fails
    /// with `extensions.code` `UNKNOWN_USER` and stores nothing (try again shortly).
    #[graphql(directive = authenticated::apply())]
    async fn create_vessel(&self, ctx: &Context<'_>, input: CreateVesselInput) -> Result<Vessel> {
        let claims = auth::require(ctx)?;
        let owner = Uuid::parse_str(&claims.sub)
            .map_err(|_| error::unauthenticated("the token subject is not a user id"))?;
        let new = input.parse()?;
        let row = commands::create(state(ctx)?, owner, new)
            .await
            .map_err(|e| match e {
                CreateError::UnknownOwner(_) => error::error(
                    error::Code::UnknownUser,
                    "your account is not known to the vessel service (yet): if you registered a \
                     moment ago, try again shortly",
                ),
                CreateError::Db(e) => error::internal("creating vessel", e),
            })?;
        Ok(Vessel(row))
    }
}

/// The vessel subgraph's schema type.
pub type VesselSchema = async_graphql::Schema<Query, Mutation, EmptySubscription>;
