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

use shippy_contracts::{consignment, user};
use shippy_kit::{
    consumer::{self, HandleError, Handler},
    events::Event,
};

use crate::{
    State,
    commands::{GiveBack, book, give_back, remember_user},
};

/// The vessel subgraph's consumer group on the `consignment` and `log` streams (also its inbox's key).
pub const GROUP: &str = "vessel";

/// The consumer's handler: books requested consignments, gives back what is no longer wanted, ignores
/// the rest.
pub struct Assigner {
    state: State,
}

impl Assigner {
    /// A handler working on `state`'s database.
    pub fn new(state: State) -> Self {
        Self { state }
    }
}

#[async_trait::async_trait]
impl Handler for Assigner {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        let id = event.event_id;
        match event.kind.as_str() {
            kind if consignment::requests_assignment(kind) => {
                let request: consignment::Snapshot = consumer::payload(event)?;
                book(&self.state, id, &request.into()).await?;
            }
            consignment::STATUS_CHANGED => {
                let change: consignment::Snapshot = consumer::payload(event)?;
                if change.status == consignment::status::DELIVERED {
                    give_back(&self.state, id, change.id, GiveBack::Delivered).await?;
                }
            }
            consignment::CANCELLED => {
                let cancelled: consignment::Snapshot = consumer::payload(event)?;
                give_back(&self.state, id, cancelled.id, GiveBack::Cancelled).await?;
            }
            consignment::BOOKING_REFUSED => {
                let refused: consignment::BookingRefused = consumer::payload(event)?;
                let why = GiveBack::Refused {
                    vessel_id: refused.vessel_id,
                    round: refused.round,
                };
                give_back(&self.state, id, refused.consignment_id, why).await?;
            }
            _ => {}
        }
        Ok(())
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
