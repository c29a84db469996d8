//! The assignment saga's deadline: a supervised task that keeps every `PENDING` consignment moving.
//!
//! A consignment waits for the vessel subgraph's answer to its assignment request. When none came within
//! `assignment.retry_after` of the last request (the event was lost with an empty Redis, dead-lettered
//! during a database outage, or is still being retried), the request is sent again as
//! `consignment.redriven`; the vessel subgraph answers a repeated request with the booking it already made,
//! never booking twice. When none came within `assignment.deadline` of the consignment becoming `PENDING`,
//! it becomes `UNASSIGNABLE` with a reason its owner sees ("No vessel answered within 10 minutes"); a
//! booking that still arrives later is refused and given back (see [`crate::commands::apply_answer`]).
//!
//! Safe with any number of replicas: every replica scans, but each row is claimed by a conditional update
//! (still `PENDING`, last requested before the cutoff; for expiry, also the same round) in the transaction
//! that records its event, so exactly one replica re-drives or expires a given row per period; the others'
//! updates match nothing (on PostgreSQL they wait for the winner's row lock and re-check the condition).
//! Each pass handles at most [`BATCH`] rows of each kind and goes on at once when it found a full batch.

use std::{convert::Infallible, time::Duration};

use chrono::Utc;
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
    sea_query::Expr,
};
use shippy_contracts::consignment as contract;
use shippy_kit::{config::AssignmentConfig, shutdown::CancellationToken};
use shippy_telemetry::metrics::names;

use crate::{
    State,
    commands::{later_than, now, record_change, reload, snapshot},
    domain::Status,
    entity::{self, Column, Entity as Consignments},
};

/// Most consignments re-driven, and most expired, in one pass.
pub const BATCH: u64 = 100;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Requests sent again.
    pub redriven: usize,
    /// Consignments given up as `UNASSIGNABLE`.
    pub expired: usize,
}

/// The saga's task over one subgraph's state.
pub struct Saga {
    state: State,
    config: AssignmentConfig,
}

impl Saga {
    /// A saga over `state`'s database with `config`'s timing (already validated).
    pub fn new(state: State, config: AssignmentConfig) -> Self {
        Self { state, config }
    }

    /// How often it looks: a quarter of `retry_after` (so a request is re-sent at most a quarter late),
    /// between 10 ms and 5 s.
    pub fn interval(&self) -> Duration {
        (self.config.retry_after / 4).clamp(Duration::from_millis(10), Duration::from_secs(5))
    }

    /// Runs passes until `shutdown`. A failed pass (the database is down) is logged and counted, and
    /// the next one comes after the usual interval: the saga never gives up.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Infallible> {
        let interval = self.interval();
        tracing::info!(
            retry_after = ?self.config.retry_after,
            deadline = ?self.config.deadline,
            "assignment saga started"
        );
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
            loop {
                match self.pass().await {
                    Ok(pass) if pass.redriven as u64 == BATCH || pass.expired as u64 == BATCH => {}
                    Ok(_) => break,
                    Err(err) => {
                        metrics::counter!(names::ASSIGNMENT_SAGA_FAILURES).increment(1);
                        tracing::warn!(error = %err,
                            "assignment saga could not check pending consignments (is the consignment database up?); trying again");
                        break;
                    }
                }
                if shutdown.is_cancelled() {
                    return Ok(());
                }
            }
        }
    }

    /// One pass: expires what is past the deadline, then re-drives what waited past `retry_after`.
    pub async fn pass(&self) -> Result<Pass, DbErr> {
        let expired = self.expire().await?;
        let redriven = self.redrive().await?;
        Ok(Pass { redriven, expired })
    }

    fn cutoff(&self, age: Duration) -> chrono::DateTime<Utc> {
        now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX)
    }

    async fn pending_due(
        &self,
        column: Column,
        cutoff: chrono::DateTime<Utc>,
    ) -> Result<Vec<entity::Model>, DbErr> {
        Consignments::find()
            .filter(Column::Status.eq(Status::Pending.as_str()))
            .filter(column.lte(cutoff))
            .order_by_asc(column)
            .limit(BATCH)
            .all(&self.state.db)
            .await
    }

    /// Makes consignments `PENDING` since before the deadline `UNASSIGNABLE`.
    async fn expire(&self) -> Result<usize, DbErr> {
        let cutoff = self.cutoff(self.config.deadline);
        let reason = format!(
            "No vessel answered within {}",
            in_words(self.config.deadline)
        );
        let mut expired = 0;
        for row in self.pending_due(Column::PendingSince, cutoff).await? {
            let txn = self.state.db.begin().await?;
            let claimed = Consignments::update_many()
                .col_expr(Column::Status, Expr::value(Status::Unassignable.as_str()))
                .col_expr(Column::UnassignableReason, Expr::value(reason.clone()))
                .col_expr(Column::UpdatedAt, Expr::value(later_than(row.updated_at)))
                .filter(Column::Id.eq(row.id))
                .filter(Column::Status.eq(Status::Pending.as_str()))
                .filter(Column::AssignmentRound.eq(row.assignment_round))
                .filter(Column::PendingSince.lte(cutoff))
                .exec(&txn)
                .await?;
            if claimed.rows_affected == 0 {
                // Answered, cancelled, or expired by another replica meanwhile.
                continue;
            }
            let row = reload(&txn, row.id).await?;
            let message = format!("consignment {} could not be assigned: {reason}", row.id);
            record_change(&txn, contract::UNASSIGNABLE, &row, message, &[row.owner_id]).await?;
            txn.commit().await?;
            expired += 1;
            metrics::counter!(names::ASSIGNMENT_EXPIRED).increment(1);
            tracing::warn!(consignment = %row.id, round = row.assignment_round, deadline = ?self.config.deadline,
                "no vessel answered a consignment in time; it is now UNASSIGNABLE (is the vessel subgraph consuming `consignment`?)");
        }
        if expired > 0 {
            self.state.outbox.wake();
        }
        Ok(expired)
    }

    /// Sends the request again for consignments whose last request is older than `retry_after`.
    async fn redrive(&self) -> Result<usize, DbErr> {
        let cutoff = self.cutoff(self.config.retry_after);
        let mut redriven = 0;
        for row in self.pending_due(Column::RequestedAt, cutoff).await? {
            let txn = self.state.db.begin().await?;
            let at = now();
            let claimed = Consignments::update_many()
                .col_expr(Column::RequestedAt, Expr::value(at))
                .filter(Column::Id.eq(row.id))
                .filter(Column::Status.eq(Status::Pending.as_str()))
                .filter(Column::RequestedAt.lte(cutoff))
                .exec(&txn)
                .await?;
            if claimed.rows_affected == 0 {
                // Answered, or re-driven by another replica meanwhile.
                continue;
            }
            let row = reload(&txn, row.id).await?;
            let message = format!(
                "no answer yet for consignment {}: assignment request sent again",
                row.id
            );
            shippy_kit::outbox::record(&txn, &snapshot(contract::REDRIVEN, &row, message)?).await?;
            txn.commit().await?;
            redriven += 1;
            metrics::counter!(names::ASSIGNMENT_REDRIVEN).increment(1);
            tracing::info!(consignment = %row.id, round = row.assignment_round,
                "no vessel answered the assignment request in time; sent it again");
        }
        if redriven > 0 {
            self.state.outbox.wake();
        }
        Ok(redriven)
    }
}

/// A duration as its owner would say it: "10 minutes", "1 hour", "90 seconds", "1.5 seconds".
pub fn in_words(d: Duration) -> String {
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 {
        return format!("{} seconds", d.as_secs_f64());
    }
    match secs {
        s if s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words() {
        assert_eq!(in_words(Duration::from_secs(600)), "10 minutes");
        assert_eq!(in_words(Duration::from_secs(60)), "1 minute");
        assert_eq!(in_words(Duration::from_secs(7200)), "2 hours");
        assert_eq!(in_words(Duration::from_secs(90)), "90 seconds");
        assert_eq!(in_words(Duration::from_secs(1)), "1 second");
        assert_eq!(in_words(Duration::from_millis(1500)), "1.5 seconds");
        assert_eq!(in_words(Duration::from_millis(400)), "0.4 seconds");
    }
}
