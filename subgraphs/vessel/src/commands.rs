//! The vessel subgraph's commands, independent of GraphQL: creating vessels, finding one that fits, and
//! booking consignments on them (and giving the capacity back), which the [`crate::consumers`] run on
//! the saga's events.
//!
//! Booking: on `consignment.created` the consignment is booked on the available vessel with the least
//! room that still fits it, and answered on the same stream with `vessel.assigned` or
//! `vessel.unassignable` (which the consignment subgraph applies). On `consignment.status_changed` to
//! `DELIVERED` the capacity is given back. Every change happens in one transaction with its inbox row and
//! outbox events, so a redelivered event changes nothing and an answer is published if and only if the
//! booking committed.
//!
//! No overbooking: the booking is a conditional update, `reserved + n <= capacity` (and the same for
//! weight) checked by the database on the row it updates. On PostgreSQL two transactions booking the same
//! vessel serialize on the row lock and the second re-checks the condition against the first's result; on
//! SQLite the single connection runs them one after the other. A booking that loses the race looks for the
//! next vessel.

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
    sea_query::{Expr, ExprTrait, SimpleExpr},
};
use serde_json::json;
use shippy_contracts::{consignment, log, streams, vessel};
use shippy_kit::{consumer::HandleError, events::Event, inbox, outbox};
use uuid::Uuid;

use crate::{
    NAME, State,
    consumers::GROUP,
    domain::{Capacity, VesselName, Weight},
    entity::{self, Column, Entity as Vessels, reservation},
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

/// How often a booking looks for another vessel after losing one to a concurrent booking before giving
/// up for now (the event is then retried).
const MAX_ATTEMPTS: usize = 16;

/// What booking needs of a `consignment.created` [`consignment::Snapshot`].
#[derive(Debug, Clone)]
pub struct BookingRequest {
    /// The consignment.
    pub id: Uuid,
    /// Its owner, to address the answer.
    pub owner_id: Uuid,
    /// Total weight.
    pub weight: f64,
    /// Number of containers.
    pub container_count: i32,
}

impl From<consignment::Snapshot> for BookingRequest {
    fn from(snapshot: consignment::Snapshot) -> Self {
        Self {
            id: snapshot.id,
            owner_id: snapshot.owner_id,
            weight: snapshot.weight,
            container_count: snapshot.container_count,
        }
    }
}

/// How a booking request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Booking {
    /// Booked on this vessel (as it is after the booking).
    Assigned(entity::Model),
    /// No available vessel has room.
    Unassignable,
    /// This event was handled before; nothing changed.
    AlreadyHandled,
}

/// Why a booking could not be made right now.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// Every fitting vessel was taken by concurrent bookings, [`MAX_ATTEMPTS`] times over.
    #[error("vessels kept being booked concurrently; try again")]
    Contended,
}

impl From<BookingError> for HandleError {
    fn from(err: BookingError) -> Self {
        HandleError::Retry(err.to_string())
    }
}

/// Books `request` (from event `event_id`) on the best-fitting available vessel, or records that none
/// fits.
pub async fn book(
    state: &State,
    event_id: Uuid,
    request: &BookingRequest,
) -> Result<Booking, BookingError> {
    // Out-of-range requests cannot fit any vessel; the parsers say so without a query.
    let (Ok(containers), Ok(weight)) = (
        Capacity::parse(request.container_count),
        Weight::parse(request.weight),
    ) else {
        return unassignable(
            state,
            event_id,
            request,
            "the consignment's size is out of range",
        )
        .await;
    };
    let txn = state.db.begin().await?;
    if !inbox::first_time(&txn, GROUP, event_id).await? {
        return Ok(Booking::AlreadyHandled);
    }
    for _ in 0..MAX_ATTEMPTS {
        let Some(vessel) = find_available(&txn, containers, weight).await? else {
            return unassignable_in(txn, state, request, "no available vessel has room for it")
                .await;
        };
        let booked = Vessels::update_many()
            .col_expr(
                Column::ReservedContainers,
                Expr::col(Column::ReservedContainers).add(containers.get()),
            )
            .col_expr(
                Column::ReservedWeight,
                Expr::col(Column::ReservedWeight).add(weight.get()),
            )
            .filter(Column::Id.eq(vessel.id))
            .filter(Column::Available.eq(true))
            .filter(remaining_capacity().gte(containers.get()))
            .filter(remaining_weight().gte(weight.get()))
            .exec(&txn)
            .await?;
        if booked.rows_affected == 0 {
            // Someone booked it first and it no longer fits: look again.
            continue;
        }
        reservation::Entity::insert(reservation::ActiveModel {
            consignment_id: Set(request.id),
            vessel_id: Set(vessel.id),
            containers: Set(containers.get()),
            weight: Set(weight.get()),
            reserved_at: Set(Utc::now()),
            released_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        let vessel = Vessels::find_by_id(vessel.id)
            .one(&txn)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(vessel.id.to_string()))?;
        let answer = answer(
            vessel::ASSIGNED,
            request,
            format!(
                "consignment {} assigned to vessel {}",
                request.id, vessel.name
            ),
            &vessel::Assigned {
                consignment_id: request.id,
                vessel_id: vessel.id,
                vessel_owner_id: vessel.owner_id,
                vessel_name: vessel.name.clone(),
            },
        )?;
        let log = log::event(
            NAME,
            "vessel.reserved",
            Some(vessel.owner_id.to_string()),
            format!(
                "{} containers ({} weight) booked on {} for consignment {}",
                containers.get(),
                weight.get(),
                vessel.name,
                request.id
            ),
            json!({
                "vessel_id": vessel.id,
                "consignment_id": request.id,
                "containers": containers.get(),
                "weight": weight.get(),
                "remaining_capacity": vessel.remaining_capacity(),
            }),
        );
        outbox::record(&txn, &answer).await?;
        outbox::record(&txn, &log).await?;
        txn.commit().await?;
        state.outbox.wake();
        return Ok(Booking::Assigned(vessel));
    }
    Err(BookingError::Contended)
}

/// The answer to `request` on the `consignment` stream, addressed to the consignment's owner.
fn answer<P: serde::Serialize>(
    kind: &str,
    request: &BookingRequest,
    message: String,
    payload: &P,
) -> Result<Event, DbErr> {
    shippy_contracts::event(
        streams::CONSIGNMENT,
        NAME,
        kind,
        Some(request.owner_id.to_string()),
        message,
        payload,
    )
    .map_err(|e| DbErr::Custom(format!("cannot encode `{kind}`: {e}")))
}

async fn unassignable(
    state: &State,
    event_id: Uuid,
    request: &BookingRequest,
    reason: &str,
) -> Result<Booking, BookingError> {
    let txn = state.db.begin().await?;
    if !inbox::first_time(&txn, GROUP, event_id).await? {
        return Ok(Booking::AlreadyHandled);
    }
    unassignable_in(txn, state, request, reason).await
}

async fn unassignable_in(
    txn: sea_orm::DatabaseTransaction,
    state: &State,
    request: &BookingRequest,
    reason: &str,
) -> Result<Booking, BookingError> {
    let answer = answer(
        vessel::UNASSIGNABLE,
        request,
        format!("no vessel for consignment {}: {reason}", request.id),
        &vessel::Unassignable {
            consignment_id: request.id,
            reason: reason.to_owned(),
            container_count: request.container_count,
            weight: request.weight,
        },
    )?;
    outbox::record(&txn, &answer).await?;
    txn.commit().await?;
    state.outbox.wake();
    Ok(Booking::Unassignable)
}

/// Gives back the capacity booked for `consignment` (it was delivered). `false` when there was nothing to
/// release (already released, never booked, or this event was handled before).
pub async fn release(state: &State, event_id: Uuid, consignment: Uuid) -> Result<bool, DbErr> {
    let txn = state.db.begin().await?;
    if !inbox::first_time(&txn, GROUP, event_id).await? {
        return Ok(false);
    }
    let Some(booking) = reservation::Entity::find_by_id(consignment)
        .filter(reservation::Column::ReleasedAt.is_null())
        .one(&txn)
        .await?
    else {
        txn.commit().await?;
        tracing::warn!(%consignment, "delivered consignment has no active booking (never booked, or released already)");
        return Ok(false);
    };
    reservation::Entity::update_many()
        .col_expr(reservation::Column::ReleasedAt, Expr::value(Utc::now()))
        .filter(reservation::Column::ConsignmentId.eq(consignment))
        .exec(&txn)
        .await?;
    Vessels::update_many()
        .col_expr(
            Column::ReservedContainers,
            Expr::col(Column::ReservedContainers).sub(booking.containers),
        )
        .col_expr(
            Column::ReservedWeight,
            Expr::col(Column::ReservedWeight).sub(booking.weight),
        )
        .filter(Column::Id.eq(booking.vessel_id))
        .exec(&txn)
        .await?;
    if let Some(vessel) = Vessels::find_by_id(booking.vessel_id).one(&txn).await? {
        let log = log::event(
            NAME,
            "vessel.released",
            Some(vessel.owner_id.to_string()),
            format!(
                "consignment {consignment} delivered: {} containers free again on {}",
                booking.containers, vessel.name
            ),
            json!({
                "vessel_id": vessel.id,
                "consignment_id": consignment,
                "containers": booking.containers,
                "remaining_capacity": vessel.remaining_capacity(),
            }),
        );
        outbox::record(&txn, &log).await?;
    }
    txn.commit().await?;
    state.outbox.wake();
    Ok(true)
}
