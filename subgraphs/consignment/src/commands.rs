//! The consignment subgraph's commands, independent of GraphQL: creating consignments, applying the
//! vessel subgraph's answers (which [`crate::consumers`] decode from the `consignment` stream), and moving
//! a consignment along on its carrier's word.
//!
//! Every change commits together with its events: a `consignment.*` event on the `consignment` stream
//! whose payload is the consignment after the change (read by the vessel subgraph and by live
//! subscriptions) and a `consignment.*` entry for the activity log.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
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
    /// Total weight.
    pub weight: ConsignmentWeight,
    /// The containers.
    pub containers: Containers,
}

/// Now, at the precision PostgreSQL keeps, so a row read back equals the one written (and the snapshot in
/// its event).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The consignment as it is after a change: the `consignment.*` event for subscribers and the vessel
/// subgraph.
fn snapshot(kind: &str, row: &entity::Model, message: String) -> Result<Event, DbErr> {
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

async fn reload<C: ConnectionTrait>(conn: &C, id: Uuid) -> Result<entity::Model, DbErr> {
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
    let row = entity::ActiveModel {
        id: Set(id),
        owner_id: Set(owner),
        description: Set(new.description.as_str().to_owned()),
        weight: Set(new.weight.get()),
        containers: Set(containers),
        container_count: Set(new.containers.count()),
        status: Set(Status::Pending.as_str().to_owned()),
        vessel_id: Set(None),
        vessel_owner_id: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    };
    let txn = state.db.begin().await?;
    Consignments::insert(row)
        .exec_without_returning(&txn)
        .await?;
    let row = reload(&txn, id).await?;
    let summary = format!(
        "consignment {id} created: containers {}, weight {}",
        row.container_count, row.weight
    );
    outbox::record(&txn, &snapshot(contract::CREATED, &row, summary.clone())?).await?;
    outbox::record(&txn, &log_entry(contract::CREATED, owner, &row, summary)).await?;
    txn.commit().await?;
    state.outbox.wake();
    Ok(row)
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
    },
    /// No vessel has room.
    Unassignable {
        /// Why, for the log.
        reason: String,
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

/// Applies the vessel subgraph's answer (from event `event_id`) to a `PENDING` consignment. `None` when it
/// changes nothing: the event was handled before, or the consignment is no longer pending.
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
    let Some(row) = Consignments::find_by_id(consignment).one(&txn).await? else {
        return Err(AnswerError::UnknownConsignment(consignment));
    };
    if row.status != Status::Pending.as_str() {
        // Answered before under another event id: keep the first answer.
        txn.commit().await?;
        return Ok(None);
    }
    let (status, vessel_id, vessel_owner_id, kind, message) = match answer {
        Answer::Assigned {
            vessel_id,
            vessel_owner_id,
            vessel_name,
        } => (
            Status::Assigned,
            Some(*vessel_id),
            Some(*vessel_owner_id),
            contract::ASSIGNED,
            format!("consignment {consignment} assigned to vessel {vessel_name}"),
        ),
        Answer::Unassignable { reason } => (
            Status::Unassignable,
            None,
            None,
            contract::UNASSIGNABLE,
            format!("consignment {consignment} could not be assigned: {reason}"),
        ),
    };
    let changed = Consignments::update_many()
        .col_expr(Column::Status, Expr::value(status.as_str()))
        .col_expr(Column::VesselId, Expr::value(vessel_id))
        .col_expr(Column::VesselOwnerId, Expr::value(vessel_owner_id))
        .col_expr(Column::UpdatedAt, Expr::value(later_than(row.updated_at)))
        .filter(Column::Id.eq(consignment))
        .filter(Column::Status.eq(Status::Pending.as_str()))
        .exec(&txn)
        .await?;
    if changed.rows_affected == 0 {
        txn.commit().await?;
        return Ok(None);
    }
    let row = reload(&txn, consignment).await?;
    record_change(&txn, kind, &row, message, &[row.owner_id]).await?;
    txn.commit().await?;
    state.outbox.wake();
    Ok(Some(row))
}

/// A timestamp after `previous`: now, or a microsecond later when the clock has not moved on (or went
/// back), so `updated_at` strictly increases and subscribers can drop stale snapshots.
fn later_than(previous: DateTime<Utc>) -> DateTime<Utc> {
    let at = now();
    if at > previous {
        at
    } else {
        previous + chrono::Duration::microseconds(1)
    }
}

async fn record_change(
    txn: &DatabaseTransaction,
    kind: &str,
    row: &entity::Model,
    message: String,
    log_for: &[Uuid],
) -> Result<(), DbErr> {
    outbox::record(txn, &snapshot(kind, row, message.clone())?).await?;
    for user in log_for {
        outbox::record(txn, &log_entry(kind, *user, row, message.clone())).await?;
    }
    Ok(())
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
    // Conditional on the status read, so two concurrent updates cannot both apply.
    let changed = Consignments::update_many()
        .col_expr(Column::Status, Expr::value(next.as_str()))
        .col_expr(Column::UpdatedAt, Expr::value(later_than(row.updated_at)))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(current.as_str()))
        .exec(&txn)
        .await?;
    if changed.rows_affected == 0 {
        let now_status = reload(&txn, id).await?.status;
        return Err(StatusError::Transition {
            from: Status::parse(&now_status).map_or("UNKNOWN", Status::as_str),
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
