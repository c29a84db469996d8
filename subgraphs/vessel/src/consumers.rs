//! The vessel subgraph's consumer (group [`GROUP`]) of the `consignment` stream: books created
//! consignments and gives the capacity of delivered ones back ([`crate::commands`]), ignores the rest.

use shippy_contracts::consignment;
use shippy_kit::{
    consumer::{self, HandleError, Handler},
    events::Event,
};

use crate::{
    State,
    commands::{book, release},
};

/// The vessel subgraph's consumer group on the `consignment` stream (also its inbox's key).
pub const GROUP: &str = "vessel";

/// The consumer's handler: books created consignments, releases delivered ones, ignores the rest.
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
        match event.kind.as_str() {
            consignment::CREATED => {
                let created: consignment::Snapshot = consumer::payload(event)?;
                book(&self.state, event.event_id, &created.into()).await?;
            }
            consignment::STATUS_CHANGED => {
                let change: consignment::Snapshot = consumer::payload(event)?;
                if change.status == consignment::status::DELIVERED {
                    release(&self.state, event.event_id, change.id).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
