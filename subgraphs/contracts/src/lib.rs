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
//! A request nobody answers is repeated ([`consignment::REDRIVEN`]) and, past its deadline, the consignment
//! becomes `UNASSIGNABLE`; its owner may ask again ([`consignment::RETRIED`]) or cancel
//! ([`consignment::CANCELLED`]). A booking that arrives when it is no longer wanted is given back
//! ([`consignment::BOOKING_REFUSED`]).
//!
//! Every subgraph also records activity on the [`streams::LOG`] stream ([`log::event`]), which the log
//! subgraph stores whatever its kind. One of those crosses subgraphs: [`user::REGISTERED`], from which the
//! vessel subgraph learns which users exist (a vessel's owner must be one).
//!
//! The JSON of every payload is what the events carried before these types existed (field names, value
//! types), so entries already in outboxes and streams still decode. Weights are whole kilograms
//! ([`weight`]); payloads from the version that sent them as floating-point numbers are read rounded up.

pub mod consignment;
pub mod log;
pub mod streams;
pub mod user;
pub mod vessel;
pub mod weight;

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

#[cfg(test)]
mod tests {
    //! The payloads as the subgraphs wrote them with `json!` before these types existed: entries already
    //! in outboxes and streams must still decode, and new ones must read the same.

    use chrono::{TimeZone, Utc};
    use serde_json::json;
    use uuid::Uuid;

    use crate::{consignment, user, vessel};

    #[test]
    fn registrations_keep_their_json() {
        let id = Uuid::now_v7();
        let old = json!({ "user_id": id, "name": "Ada", "company": null });
        let registered: user::Registered = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(registered.user_id, id);
        assert_eq!(serde_json::to_value(&registered).unwrap(), old);
        assert!(serde_json::from_value::<user::Registered>(json!({ "name": "Ada" })).is_err());
    }

    #[test]
    fn answers_keep_their_json() {
        let (c, v, o) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let old = json!({
            "consignment_id": c, "vessel_id": v, "vessel_owner_id": o, "vessel_name": "Ever Given",
        });
        let assigned = vessel::Assigned {
            consignment_id: c,
            vessel_id: v,
            vessel_owner_id: o,
            vessel_name: "Ever Given".into(),
            round: 0,
        };
        assert_eq!(serde_json::to_value(&assigned).unwrap(), old);
        assert_eq!(
            serde_json::from_value::<vessel::Assigned>(old).unwrap(),
            assigned
        );

        let now = json!({
            "consignment_id": c, "reason": "no room", "container_count": 3, "weight": 3,
        });
        let refused = vessel::Unassignable {
            consignment_id: c,
            reason: "no room".into(),
            container_count: 3,
            weight: 3,
            round: 0,
        };
        assert_eq!(serde_json::to_value(&refused).unwrap(), now);
        assert_eq!(
            serde_json::from_value::<vessel::Unassignable>(now).unwrap(),
            refused
        );
        // Sent by the version with floating-point weights: rounded up to whole kilograms.
        let old = json!({
            "consignment_id": c, "reason": "no room", "container_count": 3, "weight": 2.5,
        });
        assert_eq!(
            serde_json::from_value::<vessel::Unassignable>(old).unwrap(),
            refused
        );
    }

    #[test]
    fn a_snapshot_is_the_consignment_row() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let (id, owner) = (Uuid::now_v7(), Uuid::now_v7());
        let now = json!({
            "id": id, "owner_id": owner, "description": "Tea", "weight": 10,
            "containers": [{ "customer_id": "c1", "origin": "Rotterdam" }], "container_count": 1,
            "status": "PENDING", "vessel_id": null, "vessel_owner_id": null,
            "created_at": at, "updated_at": at,
        });
        let snapshot: consignment::Snapshot = serde_json::from_value(now.clone()).unwrap();
        assert_eq!(snapshot.status, consignment::status::PENDING);
        assert_eq!(snapshot.weight, 10);
        assert_eq!(serde_json::to_value(&snapshot).unwrap(), now);
        // A `consignment.created` still in flight from the version with floating-point weights (as it
        // wrote them): read rounded up, so it never books less than it weighs.
        let mut old = now.clone();
        old["weight"] = json!(9.25);
        let snapshot: consignment::Snapshot = serde_json::from_value(old).unwrap();
        assert_eq!(snapshot.weight, 10);
        let missing_id = json!({ "owner_id": owner });
        assert!(serde_json::from_value::<consignment::Snapshot>(missing_id).is_err());
    }

    #[test]
    fn rounds_and_reasons_travel_and_default_for_old_events() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let old = json!({
            "id": Uuid::nil(), "owner_id": Uuid::nil(), "description": "Tea", "weight": 1.0,
            "containers": [], "container_count": 1, "status": "PENDING", "vessel_id": null,
            "vessel_owner_id": null, "created_at": at, "updated_at": at,
        });
        let mut snapshot: consignment::Snapshot = serde_json::from_value(old).unwrap();
        assert_eq!(
            (
                snapshot.assignment_round,
                snapshot.unassignable_reason.as_deref()
            ),
            (0, None)
        );
        snapshot.assignment_round = 2;
        snapshot.unassignable_reason = Some("No vessel answered within 10 minutes".into());
        let sent = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(sent["assignment_round"], 2);
        assert_eq!(
            serde_json::from_value::<consignment::Snapshot>(sent).unwrap(),
            snapshot
        );
        let assigned: vessel::Assigned = serde_json::from_value(json!({
            "consignment_id": Uuid::nil(), "vessel_id": Uuid::nil(), "vessel_owner_id": Uuid::nil(),
            "round": 3,
        }))
        .unwrap();
        assert_eq!(assigned.round, 3);

        for kind in [
            consignment::CREATED,
            consignment::RETRIED,
            consignment::REDRIVEN,
        ] {
            assert!(consignment::requests_assignment(kind), "{kind}");
        }
        assert!(!consignment::requests_assignment(consignment::CANCELLED));
        assert!(consignment::is_change(consignment::CANCELLED));
        assert!(consignment::is_change(consignment::RETRIED));
        assert!(!consignment::is_change(consignment::REDRIVEN));
        assert!(!consignment::is_change(consignment::BOOKING_REFUSED));
        assert!(!consignment::is_change(vessel::ASSIGNED));
    }
}
