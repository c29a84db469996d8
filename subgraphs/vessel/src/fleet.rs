//! The vessel subgraph's domain operations, independent of GraphQL.

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
    sea_query::{Expr, ExprTrait, SimpleExpr},
};
use serde_json::json;
use shippy_contracts::log;
use shippy_kit::outbox;
use uuid::Uuid;

use crate::{
    NAME, State,
    domain::{Capacity, VesselName, Weight},
    entity::{self, Column, Entity as Vessels},
};

/// A validated new vessel.
#[derive(Debug, Clone)]
pub struct NewVessel {
    /// Name.
    pub name: VesselName,
    /// Capacity in containers.
    pub capacity: Capacity,
    /// Max weight.
    pub max_weight: Weight,
}

/// Creates an available vessel owned by `owner` and records `vessel.created` in the same transaction.
pub async fn create(state: &State, owner: Uuid, new: NewVessel) -> Result<entity::Model, DbErr> {
    let id = Uuid::now_v7();
    let row = entity::ActiveModel {
        id: Set(id),
        name: Set(new.name.as_str().to_owned()),
        capacity: Set(new.capacity.get()),
        max_weight: Set(new.max_weight.get()),
        available: Set(true),
        owner_id: Set(owner),
        created_at: Set(Utc::now()),
        reserved_containers: Set(0),
        reserved_weight: Set(0.0),
    };
    let txn = state.db.begin().await?;
    Vessels::insert(row).exec_without_returning(&txn).await?;
    let vessel = Vessels::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(id.to_string()))?;
    let event = log::event(
        NAME,
        "vessel.created",
        Some(owner.to_string()),
        format!("vessel {} created", vessel.name),
        json!({
            "vessel_id": id,
            "name": vessel.name,
            "capacity": vessel.capacity,
            "max_weight": vessel.max_weight,
        }),
    );
    outbox::record(&txn, &event).await?;
    txn.commit().await?;
    state.outbox.wake();
    Ok(vessel)
}

/// Containers still free on a vessel, as SQL.
pub(crate) fn remaining_capacity() -> SimpleExpr {
    Expr::col(Column::Capacity).sub(Expr::col(Column::ReservedContainers))
}

/// Weight still free on a vessel, as SQL.
pub(crate) fn remaining_weight() -> SimpleExpr {
    Expr::col(Column::MaxWeight).sub(Expr::col(Column::ReservedWeight))
}

/// The available vessel with the least room that still takes `capacity` more containers weighing
/// `max_weight` more (best fit, so roomy vessels stay free for big consignments), or `None`.
pub async fn find_available<C: ConnectionTrait>(
    db: &C,
    capacity: Capacity,
    max_weight: Weight,
) -> Result<Option<entity::Model>, DbErr> {
    Vessels::find()
        .filter(Column::Available.eq(true))
        .filter(remaining_capacity().gte(capacity.get()))
        .filter(remaining_weight().gte(max_weight.get()))
        .order_by(remaining_capacity(), Order::Asc)
        .order_by(remaining_weight(), Order::Asc)
        .order_by_asc(Column::Id)
        .limit(1)
        .one(db)
        .await
}
