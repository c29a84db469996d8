//! Booking consignments on vessels, on SQLite and PostgreSQL: many bookings at once never exceed a
//! vessel's capacity or max weight, a redelivered request books once, the best-fitting vessel is chosen,
//! delivery gives the capacity back once (also when duplicated deliveries race), a re-driven request
//! never books twice (also when copies race), late and cancelled bookings are given back once, and the
//! running subgraph answers `consignment.created` events on the bus in words an owner understands; a
//! read of several events is handled in one transaction, all or nothing.

use shippy_contracts::{streams, user};
use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use shippy_kit::{
    consumer::{HandleError, Handler},
    events::{Event, EventBus},
    testing::{self, Backend, TestDb, TestServer},
};
use shippy_user::tokens::TokenIssuer;
use shippy_vessel::{
    State,
    commands::{self, Booking, BookingRequest, GiveBack, NewVessel},
    consumers::Assigner,
    domain::{Capacity, VesselName, Weight},
    entity::{self, reservation},
};
use uuid::Uuid;

struct Harness {
    service: shippy_vessel::VesselService,
    _db: TestDb,
}

impl Harness {
    async fn start(backend: Backend) -> Self {
        testing::init();
        let db = TestDb::create(backend).await;
        let service =
            shippy_vessel::VesselService::start(testing::subgraph_config(&db.url), testing::bus())
                .await
                .unwrap();
        Self { service, _db: db }
    }

    fn state(&self) -> &State {
        self.service.state()
    }

    async fn vessel(&self, name: &str, capacity: i32, max_weight: i64) -> entity::Model {
        // Owned by a user the subgraph knows, as the `user.registered` consumer records them.
        let owner = Uuid::now_v7();
        commands::remember_user(&self.state().db, owner)
            .await
            .unwrap();
        commands::create(
            self.state(),
            owner,
            NewVessel {
                name: VesselName::parse(name).unwrap(),
                capacity: Capacity::parse(capacity).unwrap(),
                max_weight: Weight::parse(max_weight).unwrap(),
            },
        )
        .await
        .unwrap()
    }

    async fn reload(&self, id: Uuid) -> entity::Model {
        entity::Entity::find_by_id(id)
            .one(&self.state().db)
            .await
            .unwrap()
            .unwrap()
    }
}

fn request(containers: i32, weight: i64) -> BookingRequest {
    BookingRequest {
        id: Uuid::now_v7(),
        owner_id: Uuid::now_v7(),
        weight,
        container_count: containers,
        round: 0,
    }
}

/// Books every request at once, each on its own task; returns how many were assigned and unassignable.
async fn book_all(state: &State, requests: Vec<BookingRequest>) -> (usize, usize) {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|r| {
            let state = state.clone();
            tokio::spawn(async move { commands::book(&state, Uuid::now_v7(), &r).await })
        })
        .collect();
    let (mut assigned, mut unassignable) = (0, 0);
    for task in tasks {
        match task.await.unwrap().expect("booking") {
            Booking::Assigned(_) => assigned += 1,
            Booking::Unassignable => unassignable += 1,
            other => panic!("every request is new, got {other:?}"),
        }
    }
    (assigned, unassignable)
}

async fn concurrent_bookings_never_overbook(backend: Backend) {
    let h = Harness::start(backend).await;
    let vessel = h.vessel("Small", 10, 1_000).await;
    let (assigned, unassignable) =
        book_all(h.state(), (0..30).map(|_| request(1, 10)).collect()).await;
    assert_eq!((assigned, unassignable), (10, 20));
    let after = h.reload(vessel.id).await;
    assert_eq!(after.reserved_containers, 10);
    assert_eq!(after.remaining_capacity(), 0);
    assert_eq!(
        reservation::Entity::find()
            .count(&h.state().db)
            .await
            .unwrap(),
        10
    );

    // Weight binds as well: 10 more containers of room, but only 25 of weight.
    let heavy = h.vessel("Heavy", 100, 25).await;
    let (assigned, unassignable) =
        book_all(h.state(), (0..12).map(|_| request(2, 5)).collect()).await;
    assert_eq!((assigned, unassignable), (5, 7));
    let after = h.reload(heavy.id).await;
    assert_eq!((after.reserved_containers, after.reserved_weight), (10, 25));
}

async fn a_redelivered_request_books_once(backend: Backend) {
    let h = Harness::start(backend).await;
    let vessel = h.vessel("Once", 10, 100).await;
    let event_id = Uuid::now_v7();
    let req = request(3, 30);
    let first = commands::book(h.state(), event_id, &req).await.unwrap();
    assert!(matches!(first, Booking::Assigned(v) if v.id == vessel.id));
    let again = commands::book(h.state(), event_id, &req).await.unwrap();
    assert_eq!(again, Booking::AlreadyHandled);
    assert_eq!(h.reload(vessel.id).await.reserved_containers, 3);
}

async fn pick(state: &State, containers: i32) -> Option<Uuid> {
    match commands::book(state, Uuid::now_v7(), &request(containers, 1))
        .await
        .unwrap()
    {
        Booking::Assigned(v) => Some(v.id),
        _ => None,
    }
}

async fn the_best_fitting_vessel_is_chosen(backend: Backend) {
    let h = Harness::start(backend).await;
    let big = h.vessel("Big", 50, 10_000).await;
    let small = h.vessel("Small", 5, 10_000).await;
    let state = h.state();
    assert_eq!(
        pick(state, 3).await,
        Some(small.id),
        "the smallest that fits"
    );
    assert_eq!(
        pick(state, 3).await,
        Some(big.id),
        "only 2 left on the small one"
    );
    assert_eq!(pick(state, 100).await, None, "fits nowhere");
    // Out-of-range sizes fit nowhere either, without failing.
    let absurd = BookingRequest {
        container_count: 0,
        ..request(1, 1)
    };
    assert_eq!(
        commands::book(h.state(), Uuid::now_v7(), &absurd)
            .await
            .unwrap(),
        Booking::Unassignable
    );
}

async fn delivery_gives_the_capacity_back_once(backend: Backend) {
    let h = Harness::start(backend).await;
    let vessel = h.vessel("Loop", 4, 100).await;
    let req = request(4, 40);
    commands::book(h.state(), Uuid::now_v7(), &req)
        .await
        .unwrap();
    assert_eq!(h.reload(vessel.id).await.remaining_capacity(), 0);
    let delivered = Uuid::now_v7();
    assert!(
        commands::release(h.state(), delivered, req.id)
            .await
            .unwrap()
    );
    assert!(
        !commands::release(h.state(), delivered, req.id)
            .await
            .unwrap(),
        "the same event again"
    );
    assert!(
        !commands::release(h.state(), Uuid::now_v7(), req.id)
            .await
            .unwrap(),
        "already released"
    );
    let after = h.reload(vessel.id).await;
    assert_eq!((after.reserved_containers, after.reserved_weight), (0, 0));
}

/// Duplicated DELIVERED events (distinct event ids, as a re-published or replayed event has) racing each
/// other free the capacity exactly once.
async fn duplicated_deliveries_free_the_capacity_once(backend: Backend) {
    let h = Harness::start(backend).await;
    let vessel = h.vessel("Twice", 10, 1_000).await;
    let (kept, delivered) = (request(3, 30), request(4, 40));
    for req in [&kept, &delivered] {
        commands::book(h.state(), Uuid::now_v7(), req)
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let state = h.state().clone();
            let id = delivered.id;
            tokio::spawn(async move { commands::release(&state, Uuid::now_v7(), id).await })
        })
        .collect();
    let mut released = 0;
    for task in tasks {
        if task.await.unwrap().expect("release") {
            released += 1;
        }
    }
    assert_eq!(released, 1, "exactly one delivery releases");
    let after = h.reload(vessel.id).await;
    assert_eq!(
        (after.reserved_containers, after.reserved_weight),
        (3, 30),
        "only the delivered booking's capacity came back"
    );
}

fn created(consignment: Uuid, owner: Uuid, containers: i32, weight: i64) -> Event {
    snapshot_event(
        "consignment.created",
        consignment,
        owner,
        containers,
        weight,
    )
}

/// A `consignment.*` event of `kind` carrying the consignment's snapshot.
fn snapshot_event(
    kind: &str,
    consignment: Uuid,
    owner: Uuid,
    containers: i32,
    weight: i64,
) -> Event {
    Event::new(
        streams::CONSIGNMENT,
        "consignment",
        kind,
        Some(owner.to_string()),
        "created",
        json!({
            "id": consignment,
            "owner_id": owner,
            "description": "crates",
            "weight": weight,
            "containers": [],
            "container_count": containers,
            "status": "PENDING",
            "vessel_id": null,
            "vessel_owner_id": null,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }),
    )
}

async fn the_running_subgraph_answers_on_the_bus(backend: Backend) {
    testing::init();
    let db = TestDb::create(backend).await;
    let bus = testing::bus();
    let config = testing::subgraph_config(&db.url);
    let run_bus = bus.clone();
    let server = TestServer::spawn(move |listener, shutdown| {
        shippy_kit::subgraph::run::<shippy_vessel::Vessel>(listener, config, run_bus, shutdown)
    })
    .await;
    let vessel_owner = Uuid::now_v7();
    let registered = user::Registered {
        user_id: vessel_owner,
        name: "Olive".into(),
        company: None,
    };
    bus.publish(&registered.event("user").unwrap())
        .await
        .unwrap();
    let token = TokenIssuer::from_config(&testing::auth_config())
        .unwrap()
        .issue(&vessel_owner.to_string(), "o@example.com", vec![])
        .unwrap()
        .token;
    server
        .client()
        .query(
            "mutation { createVessel(input: {name: \"Bus\", capacity: 5, maxWeight: 50}) { id } }",
            json!({}),
            Some(&token),
        )
        .await
        .data();

    let mut answers = bus.subscribe(streams::CONSIGNMENT).await.unwrap();
    let owner = Uuid::now_v7();
    let (fits, too_big) = (Uuid::now_v7(), Uuid::now_v7());
    bus.publish(&created(fits, owner, 2, 10)).await.unwrap();
    bus.publish(&created(too_big, owner, 6, 10)).await.unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), async {
        while seen.len() < 2 {
            let event = answers.next().await.unwrap();
            if event.kind.starts_with("vessel.") {
                seen.push(event);
            }
        }
    })
    .await
    .expect("both answered");
    let assigned = seen.iter().find(|e| e.kind == "vessel.assigned").unwrap();
    assert_eq!(assigned.payload["consignment_id"], fits.to_string());
    assert_eq!(
        assigned.user_id.as_deref(),
        Some(owner.to_string().as_str())
    );
    let refused = seen
        .iter()
        .find(|e| e.kind == "vessel.unassignable")
        .unwrap();
    assert_eq!(refused.payload["consignment_id"], too_big.to_string());
    assert_eq!(
        refused.payload["reason"], "No vessel has room for 6 containers and 10 kg",
        "the reason is shown to the consignment's owner as is"
    );

    let vessels = server
        .client()
        .query(
            "{ vessels { remainingCapacity remainingWeight } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(
        vessels.data()["vessels"],
        json!([{ "remainingCapacity": 3, "remainingWeight": 40 }])
    );
    let _keep: Arc<dyn EventBus> = bus;
}

/// A request sent again (re-driven: a new event id, the same consignment and round) is answered with the
/// booking already made, and copies racing each other book once.
async fn a_redriven_request_never_books_twice(backend: Backend) {
    let h = Harness::start(backend).await;
    let vessel = h.vessel("Redriven", 100, 1_000).await;
    let req = request(3, 30);
    let first = commands::book(h.state(), Uuid::now_v7(), &req)
        .await
        .unwrap();
    assert!(matches!(first, Booking::Assigned(ref v) if v.id == vessel.id));
    for _ in 0..3 {
        let again = commands::book(h.state(), Uuid::now_v7(), &req)
            .await
            .unwrap();
        assert!(
            matches!(again, Booking::AlreadyBooked(ref v) if v.id == vessel.id),
            "{again:?}"
        );
    }
    assert_eq!(h.reload(vessel.id).await.reserved_containers, 3);

    // Eight copies of one request at once (the original and re-drives handled by several replicas).
    let raced = request(5, 50);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (state, r) = (h.state().clone(), raced.clone());
            tokio::spawn(async move { commands::book(&state, Uuid::now_v7(), &r).await })
        })
        .collect();
    let (mut assigned, mut answered_again, mut refused_by_key) = (0, 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(Booking::Assigned(_)) => assigned += 1,
            Ok(Booking::AlreadyBooked(_)) => answered_again += 1,
            // The reservation's primary key refused a copy that raced past the check; its retry
            // (the consumer's) finds the booking.
            Err(_) => refused_by_key += 1,
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(assigned, 1, "one copy books");
    assert_eq!(assigned + answered_again + refused_by_key, 8);
    for _ in 0..refused_by_key {
        let retried = commands::book(h.state(), Uuid::now_v7(), &raced)
            .await
            .unwrap();
        assert!(matches!(retried, Booking::AlreadyBooked(_)), "{retried:?}");
    }
    let after = h.reload(vessel.id).await;
    assert_eq!(
        (after.reserved_containers, after.reserved_weight),
        (8, 80),
        "3 + 5 containers, each booked once"
    );
    assert_eq!(
        reservation::Entity::find()
            .count(&h.state().db)
            .await
            .unwrap(),
        2
    );
}

/// A booking that came too late is given back once, and only the booking refused: a stale request of
/// that round books nothing, a retry (next round) books afresh, and refusing the old round again leaves
/// the new booking alone; cancelling gives back whatever booking there is.
async fn late_and_cancelled_bookings_are_given_back_once(backend: Backend) {
    let h = Harness::start(backend).await;
    let vessel = h.vessel("Late", 10, 1_000).await;
    let state = h.state();
    let req = request(4, 40);
    assert!(matches!(
        commands::book(state, Uuid::now_v7(), &req).await.unwrap(),
        Booking::Assigned(_)
    ));
    let refused = GiveBack::Refused {
        vessel_id: vessel.id,
        round: 0,
    };
    let other_vessel = GiveBack::Refused {
        vessel_id: Uuid::now_v7(),
        round: 0,
    };
    assert!(
        !commands::give_back(state, Uuid::now_v7(), req.id, other_vessel)
            .await
            .unwrap(),
        "a refusal names the booking it refuses"
    );
    assert_eq!(h.reload(vessel.id).await.reserved_containers, 4);
    assert!(
        commands::give_back(state, Uuid::now_v7(), req.id, refused)
            .await
            .unwrap()
    );
    assert!(
        !commands::give_back(state, Uuid::now_v7(), req.id, refused)
            .await
            .unwrap(),
        "given back once"
    );
    assert_eq!(h.reload(vessel.id).await.reserved_containers, 0);

    let stale = commands::book(state, Uuid::now_v7(), &req).await.unwrap();
    assert_eq!(stale, Booking::Stale, "a late copy of the refused round");
    assert_eq!(h.reload(vessel.id).await.reserved_containers, 0);

    let retried = BookingRequest { round: 1, ..req };
    assert!(matches!(
        commands::book(state, Uuid::now_v7(), &retried)
            .await
            .unwrap(),
        Booking::Assigned(_)
    ));
    assert!(
        !commands::give_back(state, Uuid::now_v7(), req.id, refused)
            .await
            .unwrap(),
        "refusing round 0 again leaves round 1's booking"
    );
    assert_eq!(h.reload(vessel.id).await.reserved_containers, 4);

    assert!(
        commands::give_back(state, Uuid::now_v7(), req.id, GiveBack::Cancelled)
            .await
            .unwrap()
    );
    assert!(
        !commands::give_back(state, Uuid::now_v7(), req.id, GiveBack::Cancelled)
            .await
            .unwrap()
    );
    let after = h.reload(vessel.id).await;
    assert_eq!((after.reserved_containers, after.reserved_weight), (0, 0));
    let never_booked = request(1, 1);
    assert!(
        !commands::give_back(state, Uuid::now_v7(), never_booked.id, GiveBack::Cancelled)
            .await
            .unwrap()
    );
}

/// A read of several events is handled in one transaction, in stream order (a booking and its cancel in
/// one read leave nothing booked), skipping the events handled before; and all or nothing: a read with
/// an event that cannot be handled changes nothing, so the consumer can hand its events over one by one.
async fn a_read_is_handled_in_one_transaction(backend: Backend) {
    let h = Harness::start(backend).await;
    let vessel = h.vessel("Batch", 10, 1_000).await;
    let assigner = Assigner::new(h.state().clone());
    let owner = Uuid::now_v7();
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let b_created = created(b, owner, 3, 30);
    let read = [
        created(a, owner, 4, 40),
        snapshot_event("consignment.assigned", b, owner, 3, 30),
        b_created.clone(),
        snapshot_event("consignment.cancelled", a, owner, 4, 40),
        // The same event twice in one read (the relay published it twice): handled once.
        b_created,
    ];
    let events: Vec<&Event> = read.iter().collect();
    assert_eq!(assigner.handle_batch(&events).await, Some(Ok(())));
    let answers = shippy_kit::outbox::entity::Entity::find()
        .filter(shippy_kit::outbox::entity::Column::Kind.eq("vessel.assigned"))
        .count(&h.state().db)
        .await
        .unwrap();
    assert_eq!(answers, 2, "one answer for a, one for b");
    let booked = h.reload(vessel.id).await;
    assert_eq!(
        (booked.reserved_containers, booked.reserved_weight),
        (3, 30),
        "b stays booked; a was booked and given back"
    );
    let db = &h.state().db;
    let booking = |id| async move {
        reservation::Entity::find_by_id(id)
            .one(db)
            .await
            .unwrap()
            .expect("a booking")
    };
    assert!(booking(a).await.released_at.is_some());
    assert!(booking(b).await.released_at.is_none());

    // The same read again (redelivered after a crash before the acknowledgement): nothing changes.
    assert_eq!(assigner.handle_batch(&events).await, Some(Ok(())));
    assert_eq!(h.reload(vessel.id).await.reserved_containers, 3);

    let undecodable = Event::new(
        streams::CONSIGNMENT,
        "consignment",
        "consignment.created",
        Some(owner.to_string()),
        "created",
        json!({ "id": "not a consignment" }),
    );
    let bad_read = [created(c, owner, 2, 20), undecodable];
    let events: Vec<&Event> = bad_read.iter().collect();
    assert!(matches!(
        assigner.handle_batch(&events).await,
        Some(Err(HandleError::Reject(_)))
    ));
    assert_eq!(
        h.reload(vessel.id).await.reserved_containers,
        3,
        "nothing of it booked"
    );
    assert!(
        reservation::Entity::find_by_id(c)
            .one(&h.state().db)
            .await
            .unwrap()
            .is_none()
    );
    // One by one, as the consumer goes on: the good event books, the bad one is rejected.
    assigner.handle(&bad_read[0]).await.unwrap();
    assert!(matches!(
        assigner.handle(&bad_read[1]).await,
        Err(HandleError::Reject(_))
    ));
    assert_eq!(h.reload(vessel.id).await.reserved_containers, 5);
}

shippy_kit::backend_tests!(
    a_read_is_handled_in_one_transaction,
    a_redriven_request_never_books_twice,
    late_and_cancelled_bookings_are_given_back_once,
    concurrent_bookings_never_overbook,
    a_redelivered_request_books_once,
    the_best_fitting_vessel_is_chosen,
    delivery_gives_the_capacity_back_once,
    duplicated_deliveries_free_the_capacity_once,
    the_running_subgraph_answers_on_the_bus,
);
