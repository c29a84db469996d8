//! Events the consignment subgraph records on the [`crate::streams::CONSIGNMENT`] stream: every one carries
//! the consignment as it is after the change (a [`Snapshot`]). The vessel subgraph books on [`CREATED`]
//! and releases on [`STATUS_CHANGED`] to [`status::DELIVERED`]; live subscriptions read all of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What every kind below starts with (the vessel subgraph's answers on the same stream do not).
pub const KIND_PREFIX: &str = "consignment.";
/// A consignment was created `PENDING`; the vessel subgraph answers it.
pub const CREATED: &str = "consignment.created";
/// The vessel subgraph's `vessel.assigned` was applied.
pub const ASSIGNED: &str = "consignment.assigned";
/// The vessel subgraph's `vessel.unassignable` was applied.
pub const UNASSIGNABLE: &str = "consignment.unassignable";
/// The vessel's owner moved it along.
pub const STATUS_CHANGED: &str = "consignment.status_changed";

/// A consignment's status, as stored and sent in [`Snapshot::status`].
pub mod status {
    /// Waiting for a vessel.
    pub const PENDING: &str = "PENDING";
    /// Booked on a vessel.
    pub const ASSIGNED: &str = "ASSIGNED";
    /// No vessel had room when it was created.
    pub const UNASSIGNABLE: &str = "UNASSIGNABLE";
    /// On its way.
    pub const IN_TRANSIT: &str = "IN_TRANSIT";
    /// Arrived: the vessel gives its capacity back.
    pub const DELIVERED: &str = "DELIVERED";
}

/// The consignment after a change: the payload of every `consignment.*` event on the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The consignment's id.
    pub id: Uuid,
    /// The user who created it.
    pub owner_id: Uuid,
    /// What is shipped.
    pub description: String,
    /// Total weight (what a vessel books).
    pub weight: f64,
    /// The containers, as a JSON list of `{customer_id, origin}`.
    pub containers: serde_json::Value,
    /// How many containers (what a vessel books).
    pub container_count: i32,
    /// One of [`status`].
    pub status: String,
    /// The vessel carrying it, once assigned.
    pub vessel_id: Option<Uuid>,
    /// That vessel's owner.
    pub vessel_owner_id: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Time of the change; strictly increases with every change of one consignment.
    pub updated_at: DateTime<Utc>,
}
