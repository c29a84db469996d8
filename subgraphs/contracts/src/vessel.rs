//! The vessel subgraph's answers to [`crate::consignment::CREATED`], on the same stream; the consignment
//! subgraph applies them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The consignment was booked on a vessel ([`Assigned`]).
pub const ASSIGNED: &str = "vessel.assigned";
/// No available vessel has room for it ([`Unassignable`]).
pub const UNASSIGNABLE: &str = "vessel.unassignable";

/// Payload of [`ASSIGNED`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assigned {
    /// The consignment booked.
    pub consignment_id: Uuid,
    /// The vessel carrying it.
    pub vessel_id: Uuid,
    /// That vessel's owner: the one user who moves the consignment along.
    pub vessel_owner_id: Uuid,
    /// The vessel's name, for messages.
    #[serde(default)]
    pub vessel_name: String,
    /// The request's `assignment_round` (see [`crate::consignment::Snapshot`]); 0 when absent.
    #[serde(default, skip_serializing_if = "crate::consignment::is_zero")]
    pub round: i32,
}

/// Payload of [`UNASSIGNABLE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unassignable {
    /// The consignment refused.
    pub consignment_id: Uuid,
    /// Why, in words the consignment's owner understands (shown to them).
    #[serde(default)]
    pub reason: String,
    /// Its number of containers, as asked.
    pub container_count: i32,
    /// Its weight in kilograms, as asked (a fractional one from the floating-point version is read
    /// rounded up).
    #[serde(deserialize_with = "crate::weight::deserialize_kilograms")]
    pub weight: i64,
    /// The request's `assignment_round` (see [`crate::consignment::Snapshot`]); 0 when absent.
    #[serde(default, skip_serializing_if = "crate::consignment::is_zero")]
    pub round: i32,
}
