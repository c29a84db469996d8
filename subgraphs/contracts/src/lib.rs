//! What Shippy subgraphs say to each other, in one place: the streams, the event kinds and the payloads
//! that cross from one subgraph to another. The emitting and the consuming subgraph both import these, so
//! renaming a kind or a payload field changes both sides at once instead of silently breaking the saga.
//!
//! The saga on the [`streams::CONSIGNMENT`] stream:
//! 1. the consignment subgraph records [`consignment::CREATED`] with a [`consignment::Snapshot`];
//! 2. the vessel subgraph books it and answers [`vessel::ASSIGNED`] ([`vessel::Assigned`]) or
//!    [`vessel::UNASSIGNABLE`] ([`vessel::Unassignable`]), which the consignment subgraph applies;
//! 3. [`consignment::STATUS_CHANGED`] to [`consignment::status::DELIVERED`] gives the vessel's capacity back.
//!
//! Every subgraph also records activity on the [`streams::LOG`] stream ([`log::event`]), which the log
//! subgraph stores whatever its kind.
//!
//! The JSON of every payload is what the events carried before these types existed (field names, value
//! types), so entries already in outboxes and streams still decode.

pub mod consignment;
pub mod log;
pub mod streams;
pub mod vessel;

use serde::Serialize;
use shippy_kit::events::Event;

/// An event on `stream` carrying `payload` (one of this crate's payload types) as JSON.
pub fn event<P: Serialize>(
    stream: &str,
    service: &str,
    kind: &str,
    user_id: Option<String>,
    message: impl Into<String>,
    payload: &P,
) -> Result<Event, serde_json::Error> {
    Ok(Event::new(
        stream,
        service,
        kind,
        user_id,
        message,
        serde_json::to_value(payload)?,
    ))
}
