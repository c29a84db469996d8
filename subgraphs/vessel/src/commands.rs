//! The vessel subgraph's commands, independent of GraphQL: creating vessels, finding one that fits, and
//! booking consignments on them (and giving the capacity back), which the [`crate::consumers`] run on
//! the saga's events.
//!
//! Booking: on an assignment request (`consignment.created`, `.retried` or `.redriven`) the consignment
//! is booked on the available vessel with the least room that still fits it, and answered on the same
//! stream with `vessel.assigned` or `vessel.unassignable` (which the consignment subgraph applies). On
//! `consignment.status_changed` to `DELIVERED`, on `consignment.cancelled` and on
//! `consignment.booking_refused` (a booking that came too late) the capacity is given back.
//!
//! One booking per consignment and round: a request repeated because its answer was slow (re-driven) finds
//! the booking already made and gets the same answer again, without booking twice; only a request of a
//! later round (the owner retried) books again once the earlier booking was given back. Every change happens in one transaction with its inbox row and
//! outbox events, so a redelivered event changes nothing and an answer is published if and only if the
//! booking committed.
//!
//! Owners: a vessel belongs to a user the subgraph knows exists ([`owner_known`]), learned from the user
//! subgraph's `user.registered` events ([`remember_user`], run by [`crate::consumers::Registrations`]).
//!
//! No overbooking: the booking is a conditional update, `reserved + n <= capacity` (and the same for
//! weight, in whole kilograms: exact integer arithmetic) checked by the database on the row it updates.
//! On PostgreSQL two transactions booking the same vessel serialize on the row lock and the second re-checks the condition against the first's result; on
//! SQLite the single connection runs them one after the other. A booking that loses the race looks for the
//! next vessel.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, Order, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
    sea_query::{Expr, ExprTrait, SimpleExpr},
};
use serde_json::json;
use shippy_contracts::{consignment, log, streams, vessel};
use shippy_kit::{consumer::HandleError, events::Event, inbox, outbox};
use tokio::time::Instant;
use uuid::Uuid;

use crate::{
    NAME, State,
    consumers::GROUP,
    domain::{Capacity, VesselName, Weight},
    entity::{self, Column, Entity as Vessels, known_user, reservation},
};

/// A validated new vessel.
#[derive(Debug, Clone)]
pub struct NewVessel {
    /// Name.
    pub name: VesselName,
    /// Capacity in containers.
    pub capacity: Capacity,
    /// Max weight in kilograms.
    pub max_weight: Weight,
}

/// Why a vessel was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The owner is no user this subgraph knows of, even after waiting [`State::owner_wait`] for the
    /// registration to arrive.
    #[error("user {0} is not known to the vessel service")]
    UnknownOwner(Uuid),
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// How often a wait for an unknown owner looks at `known_users` again. Another replica's consumer may
/// be the one recording the registration, so the local wake-up ([`State::users_learned`]) is not enough.
const OWNER_POLL: Duration = Duration::from_millis(100);

/// Records that user `user_id` exists (idempotent: a redelivered registration changes nothing).
pub async fn remember_user<C: ConnectionTrait>(db: &C, user_id: Uuid) -> Result<(), DbErr> {
    known_user::Entity::insert(known_user::ActiveModel {
        user_id: Set(user_id),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Whether user `user_id` is known, waiting up to [`State::owner_wait`] for a registration that is on
/// its way (a user who registered a moment ago, whose `user.registered` is still being relayed).
pub async fn owner_known(state: &State, user_id: Uuid) -> Result<bool, DbErr> {
    let deadline = Instant::now() + state.owner_wait;
    loop {
        // Armed before the look, so a registration recorded between the look and the wait still wakes us.
        let learned = state.users_learned.notified();
        tokio::pin!(learned);
        learned.as_mut().enable();
        if known_user::Entity::find_by_id(user_id)
            .one(&state.db)
            .await?
            .is_some()
        {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        tokio::select! {
            () = learned => {}
            () = tokio::time::sleep(OWNER_POLL.min(deadline - now)) => {}
        }
    }
}

/// Creates an available vessel owned by `owner` and records `vessel.created` in the same transaction.
/// The owner must be a known user ([`owner_known`]); otherwise nothing is stored.
pub async fn create(
    state: &State,
    owner: Uuid,
    new: NewVessel,
) -> Result<entity::Model, CreateError> {
    if !owner_known(state, owner).await? {
        tracing::warn!(%owner, wait = ?state.owner_wait, "createVessel refused: the owner is not a known user (unregistered, or its registration has not reached the vessel subgraph; check the `vessel` group's lag on the log stream)");
        metrics::counter!(shippy_telemetry::metrics::names::UNKNOWN_OWNER_REFUSALS, "service" => NAME)
            .increment(1);
        return Err(CreateError::UnknownOwner(owner));
    }
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
        reserved_weight: Set(0),
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

/// Kilograms still free on a vessel, as SQL (exact: integer columns).
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
    /// Total weight in kilograms.
    pub weight: i64,
    /// Number of containers.
    pub container_count: i32,
    /// The consignment's assignment round (0, then one more per retry of its owner).
    pub round: i32,
}

impl From<consignment::Snapshot> for BookingRequest {
    fn from(snapshot: consignment::Snapshot) -> Self {
        Self {
            id: snapshot.id,
            owner_id: snapshot.owner_id,
            weight: snapshot.weight,
            container_count: snapshot.container_count,
            round: snapshot.assignment_round,
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
    /// The consignment was booked before (a repeated request): answered again with this vessel, nothing
    /// more booked.
    AlreadyBooked(entity::Model),
    /// The consignment's booking of this round (or a later one) was made and given back already: the
    /// request is stale, nothing is booked or answered.
    Stale,
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

/// A database error is classified like any other (`HandleError::from(DbErr)`): an outage is transient and
/// never dead-letters the request. Losing every fitting vessel to concurrent bookings is a conflict of
/// the moment, transient too.
impl From<BookingError> for HandleError {
    fn from(err: BookingError) -> Self {
        match err {
            BookingError::Db(err) => err.into(),
            contended @ BookingError::Contended => HandleError::Transient(contended.to_string()),
        }
    }
}

/// Books `request` (from event `event_id`) on the best-fitting available vessel, or records that none
/// fits, in a transaction of its own ([`book_in`]).
pub async fn book(
    state: &State,
    event_id: Uuid,
    request: &BookingRequest,
) -> Result<Booking, BookingError> {
    let txn = state.db.begin().await?;
    if !inbox::first_time(&txn, GROUP, event_id).await? {
        return Ok(Booking::AlreadyHandled);
    }
    let mut events = Vec::new();
    let booking = book_in(&txn, request, &mut events).await?;
    outbox::record_all(&txn, &events).await?;
    txn.commit().await?;
    if booking != Booking::Stale {
        state.outbox.wake();
    }
    Ok(booking)
}

/// [`book`]'s work inside `txn`, the caller's transaction (which has recorded the event in the inbox and
/// commits, so that a consumer can book several requests in one transaction). The events to publish are
/// added to `events`, for the caller to record in `txn` (all of a transaction's in one statement).
/// Nothing is committed here: an error leaves `txn` to be rolled back.
pub(crate) async fn book_in(
    txn: &DatabaseTransaction,
    request: &BookingRequest,
    events: &mut Vec<Event>,
) -> Result<Booking, BookingError> {
    // Out-of-range requests cannot fit any vessel; the parsers say so without a query.
    let (Ok(containers), Ok(weight)) = (
        Capacity::parse(request.container_count),
        Weight::parse(request.weight),
    ) else {
        let reason = format!("No vessel can carry {}", size_in_words(request));
        return unassignable_in(request, &reason, events);
    };
    // A repeated request must not book twice. (Two requests for one consignment racing past this check
    // both try to insert its reservation: the primary key refuses the second, whose transaction rolls
    // back with its capacity update, and its retry finds the booking here.)
    if let Some(existing) = reservation::Entity::find_by_id(request.id).one(txn).await? {
        if existing.released_at.is_none() {
            return answer_again(txn, request, existing, events).await;
        }
        if existing.round >= request.round {
            tracing::info!(consignment = %request.id, round = request.round,
                "assignment request for a consignment whose booking was already given back; ignored as stale");
            return Ok(Booking::Stale);
        }
        // The owner retried after the earlier booking was given back: book afresh.
        reservation::Entity::delete_by_id(request.id)
            .exec(txn)
            .await?;
    }
    for _ in 0..MAX_ATTEMPTS {
        let Some(vessel) = find_available(txn, containers, weight).await? else {
            let reason = format!("No vessel has room for {}", size_in_words(request));
            return unassignable_in(request, &reason, events);
        };
        // The vessel as the booking leaves it comes back with the update (`RETURNING`).
        let Some(vessel) = Vessels::update_many()
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
            .exec_with_returning(txn)
            .await?
            .pop()
        else {
            // Someone booked it first and it no longer fits: look again.
            continue;
        };
        reservation::Entity::insert(reservation::ActiveModel {
            consignment_id: Set(request.id),
            vessel_id: Set(vessel.id),
            containers: Set(containers.get()),
            weight: Set(weight.get()),
            reserved_at: Set(Utc::now()),
            released_at: Set(None),
            round: Set(request.round),
        })
        .exec_without_returning(txn)
        .await?;
        let answer = assigned(
            request,
            &vessel,
            format!(
                "consignment {} assigned to vessel {}",
                request.id, vessel.name
            ),
        )?;
        let log = log::event(
            NAME,
            "vessel.reserved",
            Some(vessel.owner_id.to_string()),
            format!(
                "{} containers ({} kg) booked on {} for consignment {}",
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
        events.extend([answer, log]);
        return Ok(Booking::Assigned(vessel));
    }
    Err(BookingError::Contended)
}

/// Answers a repeated request for a consignment booked before with that booking (adopting it for the
/// request's round, so that giving back a late booking of an older round leaves it alone).
async fn answer_again(
    txn: &DatabaseTransaction,
    request: &BookingRequest,
    existing: reservation::Model,
    events: &mut Vec<Event>,
) -> Result<Booking, BookingError> {
    if existing.round < request.round {
        reservation::Entity::update_many()
            .col_expr(reservation::Column::Round, Expr::value(request.round))
            .filter(reservation::Column::ConsignmentId.eq(request.id))
            .filter(reservation::Column::ReleasedAt.is_null())
            .exec(txn)
            .await?;
    }
    let vessel = Vessels::find_by_id(existing.vessel_id)
        .one(txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(existing.vessel_id.to_string()))?;
    let answer = assigned(
        request,
        &vessel,
        format!(
            "consignment {} is booked on vessel {} already",
            request.id, vessel.name
        ),
    )?;
    events.push(answer);
    tracing::info!(consignment = %request.id, vessel = %vessel.id, round = request.round,
        "repeated assignment request answered with the existing booking");
    Ok(Booking::AlreadyBooked(vessel))
}

/// `vessel.assigned`: `request` is booked on `vessel`.
fn assigned(
    request: &BookingRequest,
    vessel: &entity::Model,
    message: String,
) -> Result<Event, DbErr> {
    answer(
        vessel::ASSIGNED,
        request,
        message,
        &vessel::Assigned {
            consignment_id: request.id,
            vessel_id: vessel.id,
            vessel_owner_id: vessel.owner_id,
            vessel_name: vessel.name.clone(),
            round: request.round,
        },
    )
}

/// A consignment's size as its owner would say it: "12 containers and 40,000 kg".
fn size_in_words(request: &BookingRequest) -> String {
    let containers = match request.container_count {
        1 => "1 container".to_owned(),
        n => format!("{} containers", grouped(&n.to_string())),
    };
    format!(
        "{containers} and {} kg",
        grouped(&request.weight.to_string())
    )
}

/// `digits` (a number as Rust prints it) with its whole part in groups of three: `40000.5` -> `40,000.5`.
fn grouped(digits: &str) -> String {
    let (sign, rest) = digits
        .strip_prefix('-')
        .map_or(("", digits), |rest| ("-", rest));
    let (whole, fraction) = rest
        .split_once('.')
        .map_or((rest, None), |(w, f)| (w, Some(f)));
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match fraction {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
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

/// Answers `request` with `vessel.unassignable` for `reason` (added to `events`).
fn unassignable_in(
    request: &BookingRequest,
    reason: &str,
    events: &mut Vec<Event>,
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
            round: request.round,
        },
    )?;
    events.push(answer);
    Ok(Booking::Unassignable)
}

/// Gives back the capacity booked for `consignment` (it was delivered). `false` when there was nothing to
/// release (already released, never booked, or this event was handled before). See [`give_back`].
pub async fn release(state: &State, event_id: Uuid, consignment: Uuid) -> Result<bool, DbErr> {
    give_back(state, event_id, consignment, GiveBack::Delivered).await
}

/// Why a booking is given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveBack {
    /// The consignment was delivered.
    Delivered,
    /// Its owner cancelled it: whatever booking it has.
    Cancelled,
    /// The booking on `vessel_id` answering round `round` came too late (the consignment had expired or
    /// was cancelled, or was booked elsewhere): only that booking, not one of a later round.
    Refused {
        /// The vessel of the refused booking.
        vessel_id: Uuid,
        /// The round it answered.
        round: i32,
    },
}

/// Gives back the capacity booked for `consignment` for `why`. `false` when there was nothing to give
/// back (already released, never booked, a booking other than the one refused, or this event was
/// handled before).
///
/// Idempotent by itself, whatever the event ids: the booking is marked released by a conditional
/// update (`released_at IS NULL`) and the capacity is given back only when that update changed a row.
/// Two releases racing on PostgreSQL serialize on the booking's row lock, and the second one's
/// condition, re-checked against the first's commit, matches no row.
pub async fn give_back(
    state: &State,
    event_id: Uuid,
    consignment: Uuid,
    why: GiveBack,
) -> Result<bool, DbErr> {
    let txn = state.db.begin().await?;
    if !inbox::first_time(&txn, GROUP, event_id).await? {
        return Ok(false);
    }
    let mut events = Vec::new();
    let given_back = give_back_in(&txn, consignment, why, &mut events).await?;
    outbox::record_all(&txn, &events).await?;
    txn.commit().await?;
    if given_back {
        state.outbox.wake();
    }
    Ok(given_back)
}

/// [`give_back`]'s work inside `txn`, the caller's transaction, its events added to `events` (see
/// [`book_in`]).
pub(crate) async fn give_back_in(
    txn: &DatabaseTransaction,
    consignment: Uuid,
    why: GiveBack,
    events: &mut Vec<Event>,
) -> Result<bool, DbErr> {
    let mut mark = reservation::Entity::update_many()
        .col_expr(reservation::Column::ReleasedAt, Expr::value(Utc::now()))
        .filter(reservation::Column::ConsignmentId.eq(consignment))
        .filter(reservation::Column::ReleasedAt.is_null());
    if let GiveBack::Refused { vessel_id, round } = why {
        mark = mark
            .filter(reservation::Column::VesselId.eq(vessel_id))
            .filter(reservation::Column::Round.eq(round));
    }
    let marked = mark.exec(txn).await?;
    let booking = match marked.rows_affected {
        1 => {
            reservation::Entity::find_by_id(consignment)
                .one(txn)
                .await?
        }
        _ => None,
    };
    let Some(booking) = booking else {
        match why {
            GiveBack::Delivered => {
                tracing::warn!(%consignment, "delivered consignment has no active booking (never booked, or released already)")
            }
            // Usual: most cancelled consignments were never booked.
            GiveBack::Cancelled => {
                tracing::debug!(%consignment, "cancelled consignment has no active booking")
            }
            GiveBack::Refused { .. } => {
                tracing::info!(%consignment, "refused booking was given back already, or replaced by a later one")
            }
        }
        return Ok(false);
    };
    let vessel = Vessels::update_many()
        .col_expr(
            Column::ReservedContainers,
            Expr::col(Column::ReservedContainers).sub(booking.containers),
        )
        .col_expr(
            Column::ReservedWeight,
            Expr::col(Column::ReservedWeight).sub(booking.weight),
        )
        .filter(Column::Id.eq(booking.vessel_id))
        .exec_with_returning(txn)
        .await?
        .pop();
    if let Some(vessel) = vessel {
        events.push(log::event(
            NAME,
            "vessel.released",
            Some(vessel.owner_id.to_string()),
            format!(
                "consignment {consignment} {}: {} containers free again on {}",
                match why {
                    GiveBack::Delivered => "delivered",
                    GiveBack::Cancelled => "cancelled",
                    GiveBack::Refused { .. } => "booked too late",
                },
                booking.containers,
                vessel.name
            ),
            json!({
                "vessel_id": vessel.id,
                "consignment_id": consignment,
                "containers": booking.containers,
                "remaining_capacity": vessel.remaining_capacity(),
            }),
        ));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_and_conflicts_are_transient_other_failures_not() {
        let outage = BookingError::Db(DbErr::Conn(sea_orm::RuntimeErr::Internal(
            "connection refused".into(),
        )));
        assert!(HandleError::from(outage).is_transient());
        assert!(HandleError::from(BookingError::Contended).is_transient());
        let own = BookingError::Db(DbErr::Custom("bad row".into()));
        assert!(matches!(HandleError::from(own), HandleError::Retry(_)));
    }

    #[test]
    fn sizes_in_an_owners_words() {
        let request = |container_count, weight| BookingRequest {
            id: Uuid::nil(),
            owner_id: Uuid::nil(),
            weight,
            container_count,
            round: 0,
        };
        assert_eq!(
            size_in_words(&request(12, 40_000)),
            "12 containers and 40,000 kg"
        );
        assert_eq!(size_in_words(&request(1, 999)), "1 container and 999 kg");
        assert_eq!(
            size_in_words(&request(1000, 1_234_567)),
            "1,000 containers and 1,234,567 kg"
        );
        assert_eq!(grouped("-1234"), "-1,234");
        assert_eq!(grouped("123"), "123");
    }
}
