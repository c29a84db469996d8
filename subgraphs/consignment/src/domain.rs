//! Consignment input, parsed once into types that cannot hold invalid values, and the status life cycle.

use serde::{Deserialize, Serialize};
use shippy_contracts::consignment::status;

/// Why a value was refused (kit's, shared by every subgraph's input types).
pub use shippy_kit::error::Invalid;

/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 500;
/// Most containers in one consignment.
pub const CONTAINERS_MAX: usize = 1000;
/// Longest customer id or origin, in characters.
pub const LABEL_MAX: usize = 100;

/// What is shipped: 1 to 500 characters after trimming, no control characters except newlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    /// Checks and trims.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(Invalid("must not be empty"));
        }
        if text.chars().count() > DESCRIPTION_MAX {
            return Err(Invalid("must be at most 500 characters"));
        }
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Invalid("must not contain control characters"));
        }
        if shippy_kit::text::spoofing_char(text).is_some() {
            return Err(Invalid(
                "must not contain invisible or text-direction characters",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A consignment's total weight in whole kilograms, 1 to 1,000,000,000 (the unit every subgraph shares).
pub use shippy_contracts::weight::Kilograms as ConsignmentWeight;

/// A short label (customer id, origin): 1 to 100 characters after trimming, no control characters.
fn label(raw: &str) -> Result<String, Invalid> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(Invalid("must not be empty"));
    }
    if text.chars().count() > LABEL_MAX {
        return Err(Invalid("must be at most 100 characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(Invalid("must not contain control characters"));
    }
    if shippy_kit::text::spoofing_char(text).is_some() {
        return Err(Invalid(
            "must not contain invisible or text-direction characters",
        ));
    }
    Ok(text.to_owned())
}

/// One container, as stored (JSON in the `containers` column) and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// The customer the container belongs to.
    pub customer_id: String,
    /// Where it comes from.
    pub origin: String,
}

impl Container {
    /// Checks both labels; the error names which one failed.
    pub fn parse(customer_id: &str, origin: &str) -> Result<Self, (&'static str, Invalid)> {
        Ok(Self {
            customer_id: label(customer_id).map_err(|e| ("customerId", e))?,
            origin: label(origin).map_err(|e| ("origin", e))?,
        })
    }
}

/// One to [`CONTAINERS_MAX`] containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containers(Vec<Container>);

impl Containers {
    /// Checks the count.
    pub fn new(containers: Vec<Container>) -> Result<Self, Invalid> {
        if containers.is_empty() {
            return Err(Invalid("must list at least one container"));
        }
        if containers.len() > CONTAINERS_MAX {
            return Err(Invalid("must list at most 1000 containers"));
        }
        Ok(Self(containers))
    }

    /// The containers.
    pub fn as_slice(&self) -> &[Container] {
        &self.0
    }

    /// How many; always 1 to [`CONTAINERS_MAX`].
    pub fn count(&self) -> i32 {
        i32::try_from(self.0.len()).unwrap_or(i32::MAX)
    }
}

/// Where a consignment is in its life: `PENDING` until the vessel subgraph answers (`ASSIGNED` or
/// `UNASSIGNABLE`, also when no answer came before `assignment.deadline`), then moved by the vessel's
/// owner `ASSIGNED -> IN_TRANSIT -> DELIVERED`. Its owner may retry an `UNASSIGNABLE` one (`PENDING`
/// again) and cancel a `PENDING` or `UNASSIGNABLE` one (`CANCELLED`, for good).
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "ConsignmentStatus")]
pub enum Status {
    /// Waiting for a vessel.
    Pending,
    /// Booked on a vessel.
    Assigned,
    /// No vessel had room, or none answered in time (see `unassignableReason`); its owner may retry.
    Unassignable,
    /// On its way.
    InTransit,
    /// Arrived.
    Delivered,
    /// Cancelled by its owner before it was assigned.
    Cancelled,
}

impl Status {
    /// As stored and sent in events (`shippy_contracts::consignment::status`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => status::PENDING,
            Status::Assigned => status::ASSIGNED,
            Status::Unassignable => status::UNASSIGNABLE,
            Status::InTransit => status::IN_TRANSIT,
            Status::Delivered => status::DELIVERED,
            Status::Cancelled => status::CANCELLED,
        }
    }

    /// Reads a stored status.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            status::PENDING => Status::Pending,
            status::ASSIGNED => Status::Assigned,
            status::UNASSIGNABLE => Status::Unassignable,
            status::IN_TRANSIT => Status::InTransit,
            status::DELIVERED => Status::Delivered,
            status::CANCELLED => Status::Cancelled,
            _ => return None,
        })
    }

    /// Whether the vessel's owner may move a consignment from `self` to `next`.
    pub fn carrier_may_move_to(self, next: Status) -> bool {
        matches!(
            (self, next),
            (Status::Assigned, Status::InTransit) | (Status::InTransit, Status::Delivered)
        )
    }

    /// Whether the owner may ask again for a vessel: only when none was found.
    pub fn owner_may_retry(self) -> bool {
        self == Status::Unassignable
    }

    /// Whether the owner may cancel: only before a vessel carries it.
    pub fn owner_may_cancel(self) -> bool {
        matches!(self, Status::Pending | Status::Unassignable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions() {
        assert_eq!(
            Description::parse("  Crates of tea\nfragile ")
                .unwrap()
                .as_str(),
            "Crates of tea\nfragile"
        );
        assert!(Description::parse("   ").is_err());
        assert!(Description::parse(&"x".repeat(501)).is_err());
        assert!(Description::parse(&"x".repeat(500)).is_ok());
        assert!(Description::parse("bell\u{7}").is_err());
        assert_eq!(
            Description::parse("Tea\u{2066}x"),
            Err(Invalid(
                "must not contain invisible or text-direction characters"
            ))
        );
    }

    #[test]
    fn weights() {
        for bad in [0, -1, 1_000_000_001, i64::MAX] {
            assert!(ConsignmentWeight::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ConsignmentWeight::parse(1).unwrap().get(), 1);
    }

    #[test]
    fn containers() {
        assert_eq!(
            Container::parse(" c1 ", "Rotterdam").unwrap(),
            Container {
                customer_id: "c1".into(),
                origin: "Rotterdam".into()
            }
        );
        assert_eq!(Container::parse("", "x").unwrap_err().0, "customerId");
        assert_eq!(
            Container::parse("c", &"o".repeat(101)).unwrap_err().0,
            "origin"
        );
        assert_eq!(
            Container::parse("c\u{FEFF}", "o").unwrap_err(),
            (
                "customerId",
                Invalid("must not contain invisible or text-direction characters")
            )
        );
        assert_eq!(
            Container::parse("c", "Rotter\u{202D}dam").unwrap_err().0,
            "origin"
        );
        let one = Container::parse("c", "o").unwrap();
        assert!(Containers::new(vec![]).is_err());
        assert_eq!(Containers::new(vec![one.clone(); 3]).unwrap().count(), 3);
        assert!(Containers::new(vec![one; 1001]).is_err());
    }

    #[test]
    fn statuses() {
        for status in [
            Status::Pending,
            Status::Assigned,
            Status::Unassignable,
            Status::InTransit,
            Status::Delivered,
            Status::Cancelled,
        ] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(status.owner_may_retry(), status == Status::Unassignable);
            assert_eq!(
                status.owner_may_cancel(),
                matches!(status, Status::Pending | Status::Unassignable)
            );
        }
        assert_eq!(Status::parse("LOST"), None);
        assert!(Status::Assigned.carrier_may_move_to(Status::InTransit));
        assert!(Status::InTransit.carrier_may_move_to(Status::Delivered));
        assert!(!Status::Assigned.carrier_may_move_to(Status::Delivered));
        assert!(!Status::Pending.carrier_may_move_to(Status::Assigned));
        assert!(!Status::Delivered.carrier_may_move_to(Status::InTransit));
        assert!(!Status::Unassignable.carrier_may_move_to(Status::InTransit));
        assert!(!Status::Cancelled.carrier_may_move_to(Status::InTransit));
    }
}
