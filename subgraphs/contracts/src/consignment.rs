//! Events the consignment subgraph records on the [`crate::streams::CONSIGNMENT`] stream: every one carries
//! the consignment as it is after the change (a [`Snapshot`]), except [`BOOKING_REFUSED`]. The vessel
//! subgraph books on the requests ([`requests_assignment`]: [`CREATED`], [`RETRIED`], [`REDRIVEN`]) and
//! gives capacity back on [`STATUS_CHANGED`] to [`status::DELIVERED`], on [`CANCELLED`] and on
//! [`BOOKING_REFUSED`]; live subscriptions read the changes ([`is_change`]).

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
/// Its owner asked again for an `UNASSIGNABLE` one: `PENDING` again, in a new
/// [`Snapshot::assignment_round`]; the vessel subgraph answers it like [`CREATED`].
pub const RETRIED: &str = "consignment.retried";
/// Nobody answered the request within `assignment.retry_after`: the same request again (the consignment did
/// not change). The vessel subgraph answers it like [`CREATED`], without booking twice.
pub const REDRIVEN: &str = "consignment.redriven";
/// Its owner cancelled it (from `PENDING` or `UNASSIGNABLE`): any booking made for it is given back.
pub const CANCELLED: &str = "consignment.cancelled";
/// A vessel booked it too late (after the deadline made it `UNASSIGNABLE`, or after it was cancelled): the
/// booking is given back. Payload [`BookingRefused`], not a snapshot.
pub const BOOKING_REFUSED: &str = "consignment.booking_refused";

/// Whether an event of `kind` asks the vessel subgraph to book the consignment in its payload.
pub fn requests_assignment(kind: &str) -> bool {
    matches!(kind, CREATED | RETRIED | REDRIVEN)
}

/// Whether an event of `kind` (one of this module's) tells subscribers of a change: all but the repeated
/// request and the refused booking.
pub fn is_change(kind: &str) -> bool {
    kind.starts_with(KIND_PREFIX) && !matches!(kind, REDRIVEN | BOOKING_REFUSED)
}

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
    /// Cancelled by its owner before it was assigned: the vessel gives back any capacity booked for it.
    pub const CANCELLED: &str = "CANCELLED";
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
    /// Total weight in kilograms (what a vessel books); a fractional one from the floating-point version
    /// is read rounded up.
    #[serde(deserialize_with = "crate::weight::deserialize_kilograms")]
    pub weight: i64,
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
    /// Which assignment request this is: 0 at creation, one more each time its owner retries. A vessel
    /// books a consignment once per round, however often the request is repeated. Absent in events
    /// older than the field: 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub assignment_round: i32,
    /// Why it is `UNASSIGNABLE`, in words for its owner; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unassignable_reason: Option<String>,
}

/// Payload of [`BOOKING_REFUSED`]: the booking of `consignment_id` on `vessel_id` made for `round` is
/// not wanted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookingRefused {
    /// The consignment.
    pub consignment_id: Uuid,
    /// The vessel that booked it.
    pub vessel_id: Uuid,
    /// The [`Snapshot::assignment_round`] the booking answered.
    pub round: i32,
}

/// For `skip_serializing_if`: rounds are left out at 0, so events read as they did before rounds existed.
pub(crate) fn is_zero(n: &i32) -> bool {
    *n == 0
}
