//! The vessel subgraph's consumers (group [`GROUP`] on each stream):
//! - [`Assigner`], on the `consignment` stream: books consignments on their assignment requests and gives
//!   the capacity back when they are delivered or cancelled or their booking came too late
//!   ([`crate::commands`]); ignores the rest;
//! - [`Registrations`], on the `log` stream: records every `user.registered` in `known_users`, the
//!   users a vessel may belong to ([`crate::commands::remember_user`]), ignores the rest.
//!
//! A new group reads its stream from the start, so on the first start after the upgrade
//! [`Registrations`] learns every user whose registration is still on the log stream (it is trimmed to
//! `events.max_len` entries; see the README for what that means for older users).

use sea_orm::DatabaseTransaction;
use shippy_contracts::{consignment, user};
use shippy_kit::{
    consumer::{self, HandleError, Handler},
    events::Event,
    inbox,
};
use uuid::Uuid;

use crate::{
    State,
    commands::{BookingRequest, GiveBack, book, book_in, give_back, give_back_in, remember_user},
};

/// The vessel subgraph's consumer group on the `consignment` and `log` streams (also its inbox's key).
pub const GROUP: &str = "vessel";

/// The consumer's handler: books requested consignments, gives back what is no longer wanted, ignores
/// the rest. A read of several events is handled in one transaction ([`Handler::handle_batch`]): one
/// commit, and one wait for the disk, for up to a read's worth of bookings instead of one each.
pub struct Assigner {
    state: State,
}

impl Assigner {
    /// A handler working on `state`'s database.
    pub fn new(state: State) -> Self {
        Self { state }
    }

    /// Does the work of every event of `events` that asks for some, in stream order, in one transaction;
    /// all or nothing ([`inbox::apply_together`]). (Two replicas' reads may lock the same vessels in
    /// different orders; PostgreSQL then aborts one of them as a deadlock, a transient error, and the
    /// consumer hands that read over one event at a time.)
    async fn handle_together(&self, events: &[&Event]) -> Result<(), HandleError> {
        let mut work = Vec::with_capacity(events.len());
        for event in events {
            if let Some(todo) = Work::of(event)? {
                work.push((event.event_id, todo));
            }
        }
        inbox::apply_together(&self.state.db, &self.state.outbox, GROUP, &work).await
    }
}

/// What one event of the `consignment` stream asks of this subgraph.
enum Work {
    /// Book a consignment (an assignment request).
    Book(BookingRequest),
    /// Give a consignment's booking back.
    GiveBack(Uuid, GiveBack),
}

impl Work {
    /// The work `event` asks for; `None` for the events this group ignores.
    fn of(event: &Event) -> Result<Option<Self>, HandleError> {
        Ok(Some(match event.kind.as_str() {
            kind if consignment::requests_assignment(kind) => {
                let request: consignment::Snapshot = consumer::payload(event)?;
                Work::Book(request.into())
            }
            consignment::STATUS_CHANGED => {
                let change: consignment::Snapshot = consumer::payload(event)?;
                if change.status != consignment::status::DELIVERED {
                    return Ok(None);
                }
                Work::GiveBack(change.id, GiveBack::Delivered)
            }
            consignment::CANCELLED => {
                let cancelled: consignment::Snapshot = consumer::payload(event)?;
                Work::GiveBack(cancelled.id, GiveBack::Cancelled)
            }
            consignment::BOOKING_REFUSED => {
                let refused: consignment::BookingRefused = consumer::payload(event)?;
                let why = GiveBack::Refused {
                    vessel_id: refused.vessel_id,
                    round: refused.round,
                };
                Work::GiveBack(refused.consignment_id, why)
            }
            _ => return Ok(None),
        }))
    }

    /// Does it in a transaction of its own, recording `event_id` in the inbox.
    async fn run(&self, state: &State, event_id: Uuid) -> Result<(), HandleError> {
        match self {
            Work::Book(request) => {
                book(state, event_id, request).await?;
            }
            Work::GiveBack(consignment, why) => {
                give_back(state, event_id, *consignment, *why).await?;
            }
        }
        Ok(())
    }
}

/// Inside a read's transaction, whose inbox rows [`inbox::apply_together`] records.
#[async_trait::async_trait]
impl inbox::InTransaction for Work {
    async fn run_in(
        &self,
        txn: &DatabaseTransaction,
        events: &mut Vec<Event>,
    ) -> Result<(), HandleError> {
        match self {
            Work::Book(request) => {
                book_in(txn, request, events).await?;
            }
            Work::GiveBack(consignment, why) => {
                give_back_in(txn, *consignment, *why, events).await?;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Handler for Assigner {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        match Work::of(event)? {
            Some(work) => work.run(&self.state, event.event_id).await,
            None => Ok(()),
        }
    }

    async fn handle_batch(&self, events: &[&Event]) -> Option<Result<(), HandleError>> {
        Some(self.handle_together(events).await)
    }
}

/// The handler that learns of new users: `user.registered` becomes a `known_users` row.
pub struct Registrations {
    state: State,
}

impl Registrations {
    /// A handler working on `state`'s database.
    pub fn new(state: State) -> Self {
        Self { state }
    }
}

#[async_trait::async_trait]
impl Handler for Registrations {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        if event.kind == user::REGISTERED && event.service != user::PUBLISHER {
            // Any service may write to the log stream; only the user subgraph registers users.
            tracing::warn!(
                service = %event.service,
                event_id = %event.event_id,
                "ignored a user.registered not recorded by the user subgraph"
            );
            metrics::counter!("shippy_vessel_foreign_registrations_total").increment(1);
        } else if event.kind == user::REGISTERED {
            let registered: user::Registered = consumer::payload(event)?;
            remember_user(&self.state.db, registered.user_id).await?;
            self.state.users_learned.notify_waiters();
        }
        Ok(())
    }
}
