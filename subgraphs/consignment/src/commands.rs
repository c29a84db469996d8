//! The consignment subgraph's commands, independent of GraphQL: creating consignments, applying the
//! vessel subgraph's answers (which [`crate::consumers`] decode from the `consignment` stream), retrying
//! and cancelling on the owner's word, and moving a consignment along on its carrier's word. (Repeating
//! unanswered requests and giving up on them is [`crate::saga`]'s.)
//!
//! Every change commits together with its events: a `consignment.*` event on the `consignment` stream
//! whose payload is the consignment after the change (read by the vessel subgraph and by live
//! subscriptions) and a `consignment.*` entry for the activity log.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, TransactionTrait, sea_query::Expr,
};
use serde_json::json;
use shippy_contracts::{consignment as contract, log, streams};
use shippy_kit::{consumer::HandleError, events::Event, inbox, outbox};
use uuid::Uuid;

use crate::{
    NAME, State,
    consumers::GROUP,
    domain::{ConsignmentWeight, Containers, Description, Status},
    entity::{self, Column, Entity as Consignments},
};

/// A validated new consignment.
#[derive(Debug, Clone)]
pub struct NewConsignment {
    /// What is shipped.
    pub description: Description,
    /// Total weight in kilograms.
    pub weight: ConsignmentWeight,
    /// The containers.
    pub containers: Containers,
}

/// Now, at the precision PostgreSQL keeps, so a row read back equals the one written (and the snapshot in
/// its event).
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The consignment as it is after a change: the `consignment.*` event for subscribers and the vessel
/// subgraph.
pub(crate) fn snapshot(kind: &str, row: &entity::Model, message: String) -> Result<Event, DbErr> {
    shippy_contracts::event(
        streams::CONSIGNMENT,
        NAME,
        kind,
        Some(row.owner_id.to_string()),
        message,
        &contract::Snapshot::from(row.clone()),
    )
    .map_err(|e| DbErr::Custom(e.to_string()))
}

/// The same change, for the activity log of `user`.
fn log_entry(kind: &str, user: Uuid, row: &entity::Model, message: String) -> Event {
    log::event(
        NAME,
        kind,
        Some(user.to_string()),
        message,
        json!({
            "consignment_id": row.id,
            "status": row.status,
            "vessel_id": row.vessel_id,
            "container_count": row.container_count,
            "weight": row.weight,
        }),
    )
}

pub(crate) async fn reload<C: ConnectionTrait>(conn: &C, id: Uuid) -> Result<entity::Model, DbErr> {
    Consignments::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(id.to_string()))
}

/// Stores a `PENDING` consignment owned by `owner` and records `consignment.created`, which the vessel
/// subgraph answers with an assignment.
pub async fn create(
    state: &State,
    owner: Uuid,
    new: NewConsignment,
) -> Result<entity::Model, DbErr> {
    let id = Uuid::now_v7();
    let at = now();
    let containers = serde_json::to_value(new.containers.as_slice())
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    let row = entity::Model {
        id,
        owner_id: owner,
        description: new.description.as_str().to_owned(),
        weight: new.weight.get(),
        containers,
        container_count: new.containers.count(),
        status: Status::Pending.as_str().to_owned(),
        vessel_id: None,
        vessel_owner_id: None,
        created_at: at,
        updated_at: at,
        unassignable_reason: None,
        assignment_round: 0,
        pending_since: Some(at),
        requested_at: Some(at),
    };
    // The events describe the row as it is about to be stored (`at` is already in the database's
    // precision), so the row and its events go to the database in one statement where it can.
    let summary = format!(
        "consignment {id} created: containers {}, weight {} kg",
        row.container_count, row.weight
    );
    let events = [
        snapshot(contract::CREATED, &row, summary.clone())?,
        log_entry(contract::CREATED, owner, &row, summary),
    ];
    // Every column set (`reset_all`: a model converts to unchanged values, which an insert skips).
    let insert = entity::ActiveModel::from(row).reset_all();
    let stored = outbox::insert_recording(&state.db, insert, &events).await?;
    state.outbox.wake();
    Ok(stored)
}

/// The vessel subgraph's answer to `consignment.created`.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Booked on a vessel.
    Assigned {
        /// The vessel.
        vessel_id: Uuid,
        /// Its owner.
        vessel_owner_id: Uuid,
        /// Its name, for the log.
        vessel_name: String,
        /// The assignment round the booking answered.
        round: i32,
    },
    /// No vessel has room.
    Unassignable {
        /// Why, in words for the owner (stored and shown as `unassignableReason`).
        reason: String,
        /// The assignment round it answered: an answer to an older round is ignored.
        round: i32,
    },
}

/// Why an answer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// Database failure; worth retrying.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// The answer is about a consignment this subgraph never stored.
    #[error("unknown consignment {0}")]
    UnknownConsignment(Uuid),
}

impl From<AnswerError> for HandleError {
    fn from(err: AnswerError) -> Self {
        match err {
            AnswerError::Db(err) => err.into(),
            unknown @ AnswerError::UnknownConsignment(_) => {
                HandleError::Reject(unknown.to_string())
            }
        }
    }
}

/// Applies the vessel subgraph's answer (from event `event_id`) to a `PENDING` consignment, if it answers
/// the consignment's current assignment round. `None` when it changes nothing: the event was handled
/// before, the consignment is no longer pending, or the answer is to another round.
///
/// A booking that is not applied and is not the one the consignment has (it expired into `UNASSIGNABLE`,
/// was cancelled, was retried since, or is carried by another vessel) is refused:
/// `consignment.booking_refused` asks the vessel subgraph to give exactly that booking (vessel and round)
/// back, so no capacity stays booked for nothing. Matching rounds strictly keeps both sides consistent in
/// any order of events: a booking of an older round is either given back (and the current round books
/// afresh) or was already adopted by the current round on the vessel side (and the refusal, naming the
/// older round, matches nothing).
pub async fn apply_answer(
    state: &State,
    event_id: Uuid,
    consignment: Uuid,
    answer: &Answer,
) -> Result<Option<entity::Model>, AnswerError> {
    let txn = state.db.begin().await?;
    if !inbox::first_time(&txn, GROUP, event_id).await? {
        return Ok(None);
    }
    let mut events = Vec::new();
    let applied = apply_answer_in(&txn, consignment, answer, &mut events).await?;
    outbox::record_all(&txn, &events).await?;
    txn.commit().await?;
    state.outbox.wake();
    Ok(applied)
}

/// [`apply_answer`]'s work inside `txn`, the caller's transaction (which has recorded the event in the
/// inbox and commits, so that a consumer can apply several answers in one transaction). The events to
/// publish are added to `events`, for the caller to record in `txn` (all of a transaction's in one
/// statement). Nothing is committed here: an error leaves `txn` to be rolled back.
pub(crate) async fn apply_answer_in(
    txn: &DatabaseTransaction,
    consignment: Uuid,
    answer: &Answer,
    events: &mut Vec<Event>,
) -> Result<Option<entity::Model>, AnswerError> {
    let Some(mut row) = Consignments::find_by_id(consignment).one(txn).await? else {
        return Err(AnswerError::UnknownConsignment(consignment));
    };
    let applies = match answer {
        Answer::Assigned { round, .. } | Answer::Unassignable { round, .. } => {
            *round == row.assignment_round
        }
    };
    if row.status == Status::Pending.as_str() && applies {
        let (status, vessel_id, vessel_owner_id, reason, kind, message) = match answer {
            Answer::Assigned {
                vessel_id,
                vessel_owner_id,
                vessel_name,
                ..
            } => (
                Status::Assigned,
                Some(*vessel_id),
                Some(*vessel_owner_id),
                None,
                contract::ASSIGNED,
                format!("consignment {consignment} assigned to vessel {vessel_name}"),
            ),
            Answer::Unassignable { reason, .. } => (
                Status::Unassignable,
                None,
                None,
                Some(reason.clone()),
                contract::UNASSIGNABLE,
                format!("consignment {consignment} could not be assigned: {reason}"),
            ),
        };
        // The row as the change leaves it comes back with the update (`RETURNING`).
        let changed = Consignments::update_many()
            .col_expr(Column::Status, Expr::value(status.as_str()))
            .col_expr(Column::VesselId, Expr::value(vessel_id))
            .col_expr(Column::VesselOwnerId, Expr::value(vessel_owner_id))
            .col_expr(Column::UnassignableReason, Expr::value(reason))
            .col_expr(Column::UpdatedAt, Expr::value(later_than(row.updated_at)))
            .filter(Column::Id.eq(consignment))
            .filter(Column::Status.eq(Status::Pending.as_str()))
            .filter(Column::AssignmentRound.eq(row.assignment_round))
            .exec_with_returning(txn)
            .await?
            .pop();
        if let Some(row) = changed {
            events.extend(change_events(kind, &row, message, &[row.owner_id])?);
            return Ok(Some(row));
        }
        // Changed meanwhile (it expired, was cancelled or retried): judge the answer against that.
        row = reload(txn, consignment).await?;
    }
    if let Answer::Assigned {
        vessel_id, round, ..
    } = answer
        && row.vessel_id != Some(*vessel_id)
    {
        events.push(refusal(&row, *vessel_id, *round)?);
        return Ok(None);
    }
    // Answered before (a repeated answer, or the first answer stands).
    Ok(None)
}

/// `consignment.booking_refused` for a booking of `row` on `vessel_id` that came too late.
fn refusal(row: &entity::Model, vessel_id: Uuid, round: i32) -> Result<Event, DbErr> {
    tracing::warn!(consignment = %row.id, %vessel_id, round, status = %row.status,
        "a vessel booked a consignment that no longer waits for one; asking the vessel subgraph to give the booking back");
    metrics::counter!(shippy_telemetry::metrics::names::ASSIGNMENT_LATE_BOOKINGS).increment(1);
    shippy_contracts::event(
        streams::CONSIGNMENT,
        NAME,
        contract::BOOKING_REFUSED,
        Some(row.owner_id.to_string()),
        format!(
            "booking of consignment {} on vessel {vessel_id} refused: it is {}",
            row.id, row.status
        ),
        &contract::BookingRefused {
            consignment_id: row.id,
            vessel_id,
            round,
        },
    )
    .map_err(|e| DbErr::Custom(e.to_string()))
}

/// A timestamp after `previous`: now, or a microsecond later when the clock has not moved on (or went
/// back), so `updated_at` strictly increases and subscribers can drop stale snapshots.
pub(crate) fn later_than(previous: DateTime<Utc>) -> DateTime<Utc> {
    let at = now();
    if at > previous {
        at
    } else {
        previous + chrono::Duration::microseconds(1)
    }
}

pub(crate) async fn record_change(
    txn: &DatabaseTransaction,
    kind: &str,
    row: &entity::Model,
    message: String,
    log_for: &[Uuid],
) -> Result<(), DbErr> {
    outbox::record_all(txn, &change_events(kind, row, message, log_for)?).await
}

/// The events of a change of `row`: its snapshot on the `consignment` stream, and an entry in the log of
/// each of `log_for`.
fn change_events(
    kind: &str,
    row: &entity::Model,
    message: String,
    log_for: &[Uuid],
) -> Result<Vec<Event>, DbErr> {
    let mut events = Vec::with_capacity(1 + log_for.len());
    events.push(snapshot(kind, row, message.clone())?);
    for user in log_for {
        events.push(log_entry(kind, *user, row, message.clone()));
    }
    Ok(events)
}

/// The update moving `row` from `current` (the status read) to `next`. Conditional on the status read,
/// so two concurrent changes cannot both apply: the loser's update matches no row.
fn move_status(
    row: &entity::Model,
    current: Status,
    next: Status,
) -> sea_orm::UpdateMany<Consignments> {
    Consignments::update_many()
        .col_expr(Column::Status, Expr::value(next.as_str()))
        .col_expr(Column::UpdatedAt, Expr::value(later_than(row.updated_at)))
        .filter(Column::Id.eq(row.id))
        .filter(Column::Status.eq(current.as_str()))
}

/// Why a status change was refused.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No such consignment, or the caller does not own the vessel carrying it (the same answer, so ids
    /// of other people's consignments cannot be probed).
    #[error("no consignment on a vessel you own has this id")]
    NotCarrier,
    /// The life cycle does not allow this step.
    #[error(
        "a consignment cannot go from {from} to {to}; allowed: ASSIGNED -> IN_TRANSIT -> DELIVERED"
    )]
    Transition {
        /// Its status now.
        from: &'static str,
        /// The status asked for.
        to: &'static str,
    },
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Moves consignment `id` to `next` on the word of `caller`, who must own the vessel carrying it.
pub async fn update_status(
    state: &State,
    caller: Uuid,
    id: Uuid,
    next: Status,
) -> Result<entity::Model, StatusError> {
    let txn = state.db.begin().await?;
    let row = Consignments::find_by_id(id)
        .one(&txn)
        .await?
        .filter(|row| row.vessel_owner_id == Some(caller))
        .ok_or(StatusError::NotCarrier)?;
    let current = Status::parse(&row.status)
        .ok_or_else(|| DbErr::Custom(format!("stored status {:?} is unknown", row.status)))?;
    if !current.carrier_may_move_to(next) {
        return Err(StatusError::Transition {
            from: current.as_str(),
            to: next.as_str(),
        });
    }
    let changed = move_status(&row, current, next).exec(&txn).await?;
    if changed.rows_affected == 0 {
        return Err(StatusError::Transition {
            from: status_now(&txn, id).await?,
            to: next.as_str(),
        });
    }
    let row = reload(&txn, id).await?;
    let message = format!("consignment {id} is now {}", next.as_str());
    let mut log_for = vec![row.owner_id];
    if caller != row.owner_id {
        log_for.push(caller);
    }
    record_change(&txn, contract::STATUS_CHANGED, &row, message, &log_for).await?;
    txn.commit().await?;
    state.outbox.wake();
    Ok(row)
}

/// Why the owner's retry or cancel was refused.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    /// No such consignment, or someone else's (the same answer, so ids of other people's consignments
    /// cannot be probed).
    #[error("no consignment of yours has this id")]
    NotYours,
    /// Only an `UNASSIGNABLE` consignment can be retried.
    #[error("only an UNASSIGNABLE consignment can be retried; this one is {0}")]
    NotRetryable(&'static str),
    /// Only a `PENDING` or `UNASSIGNABLE` consignment can be cancelled.
    #[error("only a PENDING or UNASSIGNABLE consignment can be cancelled; this one is {0}")]
    NotCancellable(&'static str),
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The caller's consignment `id` and its status, read in `txn`.
async fn owned(
    txn: &DatabaseTransaction,
    caller: Uuid,
    id: Uuid,
) -> Result<(entity::Model, Status), OwnerError> {
    let row = Consignments::find_by_id(id)
        .one(txn)
        .await?
        .filter(|row| row.owner_id == caller)
        .ok_or(OwnerError::NotYours)?;
    let status = Status::parse(&row.status)
        .ok_or_else(|| DbErr::Custom(format!("stored status {:?} is unknown", row.status)))?;
    Ok((row, status))
}

/// The status of consignment `id` now, for the error after a conditional update lost a race.
async fn status_now(txn: &DatabaseTransaction, id: Uuid) -> Result<&'static str, DbErr> {
    let now = reload(txn, id).await?.status;
    Ok(Status::parse(&now).map_or("UNKNOWN", Status::as_str))
}

/// Asks again for a vessel for the caller's `UNASSIGNABLE` consignment `id`: `PENDING` again, in a new
/// assignment round (its deadline counts from now), and `consignment.retried`, which the vessel subgraph
/// answers like a new consignment.
pub async fn retry(state: &State, caller: Uuid, id: Uuid) -> Result<entity::Model, OwnerError> {
    let txn = state.db.begin().await?;
    let (row, current) = owned(&txn, caller, id).await?;
    if !current.owner_may_retry() {
        return Err(OwnerError::NotRetryable(current.as_str()));
    }
    let at = later_than(row.updated_at);
    // Conditional on the status and round read, so two concurrent retries make one round.
    let changed = Consignments::update_many()
        .col_expr(Column::Status, Expr::value(Status::Pending.as_str()))
        .col_expr(
            Column::UnassignableReason,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            Column::AssignmentRound,
            Expr::value(row.assignment_round + 1),
        )
        .col_expr(Column::PendingSince, Expr::value(at))
        .col_expr(Column::RequestedAt, Expr::value(at))
        .col_expr(Column::UpdatedAt, Expr::value(at))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(current.as_str()))
        .filter(Column::AssignmentRound.eq(row.assignment_round))
        .exec(&txn)
        .await?;
    if changed.rows_affected == 0 {
        return Err(OwnerError::NotRetryable(status_now(&txn, id).await?));
    }
    let row = reload(&txn, id).await?;
    let message = format!(
        "consignment {id} is waiting for a vessel again (attempt {})",
        row.assignment_round + 1
    );
    record_change(&txn, contract::RETRIED, &row, message, &[caller]).await?;
    txn.commit().await?;
    state.outbox.wake();
    tracing::info!(consignment = %id, round = row.assignment_round, "consignment retried by its owner");
    Ok(row)
}

/// Cancels the caller's `PENDING` or `UNASSIGNABLE` consignment `id` for good: `CANCELLED`, and
/// `consignment.cancelled`, on which the vessel subgraph gives back any booking made for it (a booking
/// that arrives later is refused, see [`apply_answer`]).
pub async fn cancel(state: &State, caller: Uuid, id: Uuid) -> Result<entity::Model, OwnerError> {
    let txn = state.db.begin().await?;
    let (row, current) = owned(&txn, caller, id).await?;
    if !current.owner_may_cancel() {
        return Err(OwnerError::NotCancellable(current.as_str()));
    }
    let changed = move_status(&row, current, Status::Cancelled)
        .col_expr(
            Column::UnassignableReason,
            Expr::value(Option::<String>::None),
        )
        .exec(&txn)
        .await?;
    if changed.rows_affected == 0 {
        return Err(OwnerError::NotCancellable(status_now(&txn, id).await?));
    }
    let row = reload(&txn, id).await?;
    let message = format!("consignment {id} cancelled");
    record_change(&txn, contract::CANCELLED, &row, message, &[caller]).await?;
    txn.commit().await?;
    state.outbox.wake();
    tracing::info!(consignment = %id, "consignment cancelled by its owner");
    Ok(row)
}
