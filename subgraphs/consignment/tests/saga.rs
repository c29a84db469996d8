//! The assignment saga end to end: the consignment subgraph over HTTP and WebSocket with the vessel
//! subgraph on the same in-process bus, with short `assignment.retry_after` and `assignment.deadline`.
//! A consignment nobody answers ends `UNASSIGNABLE` with a reason only its owner sees; a booking that
//! arrives after the deadline or after a cancel is given back; the owner retries and cancels (and gets
//! the documented errors); a vessel database that fails for longer than the old dead-letter window
//! strands nothing and books nothing twice; and a read of answers applies in one transaction.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Statement};
use serde_json::{Value, json};
use shippy_consignment::{
    domain::{ConsignmentWeight, Container, Containers, Description},
    saga::Saga,
};
use shippy_contracts::{consignment as contract, streams};
use shippy_kit::{
    config::AssignmentConfig,
    events::{EventBus, EventStream, dead_letters},
    server::SubgraphConfig,
    testing::{self, Backend, GraphQLClient, TcpProxy, TestDb, TestServer, WsClient},
};
use shippy_vessel::{
    VesselService,
    commands::NewVessel,
    domain::{Capacity, VesselName, Weight},
    entity::reservation,
};
use uuid::Uuid;

const CREATE: &str =
    "mutation($input: CreateConsignmentInput!) { createConsignment(input: $input) { id status } }";
const ONE: &str =
    "query($id: ID!) { consignment(id: $id) { id status unassignableReason vessel { id } } }";
const RETRY: &str =
    "mutation($id: ID!) { retryConsignment(id: $id) { id status unassignableReason } }";
const CANCEL: &str =
    "mutation($id: ID!) { cancelConsignment(id: $id) { id status unassignableReason } }";
const ENTITY: &str = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Consignment { id unassignableReason } } }";
const WATCH: &str =
    "subscription($id: ID) { consignmentUpdated(id: $id) { id status unassignableReason } }";

fn config(url: &str, retry_after: Duration, deadline: Duration) -> SubgraphConfig {
    SubgraphConfig {
        assignment: AssignmentConfig {
            retry_after,
            deadline,
        },
        ..testing::subgraph_config(url)
    }
}

/// A token for a fresh user id, as the user subgraph issues it.
fn user() -> String {
    shippy_user::tokens::TokenIssuer::from_config(&testing::auth_config())
        .unwrap()
        .issue(&Uuid::now_v7().to_string(), "u@example.com", vec![])
        .unwrap()
        .token
}

fn input(containers: usize, weight: i32) -> Value {
    let containers: Vec<Value> = (0..containers)
        .map(|i| json!({ "customerId": format!("c{i}"), "origin": "Rotterdam" }))
        .collect();
    json!({ "input": { "description": "Tea", "weight": weight, "containers": containers } })
}

async fn create(client: &GraphQLClient, token: &str, containers: usize, weight: i32) -> String {
    let resp = client
        .query(CREATE, input(containers, weight), Some(token))
        .await;
    resp.data()["createConsignment"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until consignment `id` is in `status`; returns it.
async fn reaches(client: &GraphQLClient, token: &str, id: &str, status: &str) -> Value {
    for _ in 0..600 {
        let resp = client.query(ONE, json!({ "id": id }), Some(token)).await;
        let c = resp.data()["consignment"].clone();
        if c["status"] == status {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("consignment {id} never became {status}");
}

/// The vessel subgraph on `bus`, with one vessel of `capacity` containers created before it consumes
/// anything (so that it books the requests already on the stream).
async fn vessel_subgraph(
    config: SubgraphConfig,
    bus: Arc<dyn EventBus>,
    capacity: i32,
) -> (TestServer, shippy_vessel::State, Uuid) {
    let service = VesselService::start(config, bus).await.unwrap();
    let state = service.state().clone();
    // Owned by a user the vessel subgraph knows (as its `user.registered` consumer records them).
    let owner = Uuid::now_v7();
    shippy_vessel::commands::remember_user(&state.db, owner)
        .await
        .unwrap();
    let vessel = shippy_vessel::commands::create(
        &state,
        owner,
        NewVessel {
            name: VesselName::parse("Saga").unwrap(),
            capacity: Capacity::parse(capacity).unwrap(),
            max_weight: Weight::parse(1_000_000).unwrap(),
        },
    )
    .await
    .unwrap();
    let server =
        TestServer::spawn(move |listener, shutdown| service.serve(listener, shutdown)).await;
    (server, state, vessel.id)
}

async fn reserved(state: &shippy_vessel::State, vessel: Uuid) -> i32 {
    shippy_vessel::entity::Entity::find_by_id(vessel)
        .one(&state.db)
        .await
        .unwrap()
        .unwrap()
        .reserved_containers
}

/// Every event of `kind` about consignment `id` seen on `events` so far (waits `settle` for more).
async fn count_kind(events: &mut EventStream, kind: &str, settle: Duration) -> Vec<Value> {
    let mut seen = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(settle, events.next()).await {
        if event.kind == kind {
            seen.push(event.payload);
        }
    }
    seen
}

/// No vessel subgraph runs: the request is re-driven every `retry_after`, and at the deadline the
/// consignment becomes `UNASSIGNABLE` with a reason that its owner sees and nobody else does.
async fn an_unanswered_consignment_expires_with_a_reason_for_its_owner(backend: Backend) {
    testing::init();
    let db = TestDb::create(backend).await;
    let bus = testing::bus();
    let mut events = bus.subscribe(streams::CONSIGNMENT).await.unwrap();
    let (server, state) = TestServer::subgraph::<shippy_consignment::Consignment>(
        config(
            &db.url,
            Duration::from_millis(150),
            Duration::from_millis(900),
        ),
        bus.clone(),
    )
    .await;
    let client = server.client();
    let (owner, stranger) = (user(), user());
    let id = create(&client, &owner, 2, 10).await;
    let pending = client.query(ONE, json!({ "id": id }), Some(&owner)).await;
    assert_eq!(
        pending.data()["consignment"]["unassignableReason"],
        Value::Null
    );

    let expired = reaches(&client, &owner, &id, "UNASSIGNABLE").await;
    assert_eq!(
        expired["unassignableReason"],
        "No vessel answered within 0.9 seconds"
    );
    assert_eq!(expired["vessel"], Value::Null);
    // Nobody else sees it, by id or as an entity.
    let theirs = client
        .query(ONE, json!({ "id": id }), Some(&stranger))
        .await;
    assert_eq!(theirs.data()["consignment"], Value::Null);
    let entity = client
        .query(
            ENTITY,
            json!({ "r": [{ "__typename": "Consignment", "id": id }] }),
            Some(&stranger),
        )
        .await;
    assert_eq!(entity.data()["_entities"], json!([null]));
    let own_entity = client
        .query(
            ENTITY,
            json!({ "r": [{ "__typename": "Consignment", "id": id }] }),
            Some(&owner),
        )
        .await;
    assert_eq!(
        own_entity.data()["_entities"][0]["unassignableReason"],
        "No vessel answered within 0.9 seconds"
    );

    // Re-driven at least twice before the deadline (every 150 ms for 900 ms), expired exactly once,
    // and nothing is left PENDING.
    let redriven = count_kind(&mut events, contract::REDRIVEN, Duration::from_millis(500)).await;
    assert!(redriven.len() >= 2, "re-driven {} times", redriven.len());
    eprintln!("re-driven {} times before the deadline", redriven.len());
    assert!(redriven.iter().all(|p| p["id"] == id.as_str()));
    let mut events = bus.subscribe(streams::CONSIGNMENT).await.unwrap();
    assert!(
        count_kind(&mut events, contract::REDRIVEN, Duration::from_millis(400))
            .await
            .is_empty(),
        "an UNASSIGNABLE consignment is not re-driven"
    );
    let pending = shippy_consignment::entity::Entity::find()
        .filter(shippy_consignment::entity::Column::Status.eq("PENDING"))
        .count(&state.db)
        .await
        .unwrap();
    assert_eq!(pending, 0);
    server.stop().await.unwrap();
}

/// The vessel subgraph starts only after the deadline: it books the waiting request, the consignment
/// (expired) refuses the booking and the capacity comes back; the same for a consignment cancelled
/// before any vessel answered. A retry then books afresh, once.
async fn bookings_after_the_deadline_or_a_cancel_are_given_back(backend: Backend) {
    testing::init();
    let (cdb, vdb) = (TestDb::create(backend).await, TestDb::create(backend).await);
    let bus = testing::bus();
    let (server, _state) = TestServer::subgraph::<shippy_consignment::Consignment>(
        config(
            &cdb.url,
            Duration::from_millis(300),
            Duration::from_millis(1500),
        ),
        bus.clone(),
    )
    .await;
    let client = server.client();
    let owner = user();
    let late = create(&client, &owner, 3, 30).await;
    let cancelled = create(&client, &owner, 4, 40).await;
    let resp = client
        .query(CANCEL, json!({ "id": cancelled }), Some(&owner))
        .await;
    assert_eq!(resp.data()["cancelConsignment"]["status"], "CANCELLED");
    reaches(&client, &owner, &late, "UNASSIGNABLE").await;

    let (vessel_server, vstate, vessel) =
        vessel_subgraph(testing::subgraph_config(&vdb.url), bus.clone(), 10).await;
    // Both were booked (the vessel reads the stream from its start), then given back.
    testing::eventually(
        "both late bookings given back",
        Duration::from_secs(20),
        || async {
            let released = reservation::Entity::find()
                .filter(reservation::Column::ReleasedAt.is_not_null())
                .count(&vstate.db)
                .await
                .unwrap();
            released == 2 && reserved(&vstate, vessel).await == 0
        },
    )
    .await;
    let still = client.query(ONE, json!({ "id": late }), Some(&owner)).await;
    assert_eq!(still.data()["consignment"]["status"], "UNASSIGNABLE");
    let still = client
        .query(ONE, json!({ "id": cancelled }), Some(&owner))
        .await;
    assert_eq!(still.data()["consignment"]["status"], "CANCELLED");

    // The owner retries: a new round books again, once.
    let retried = client
        .query(RETRY, json!({ "id": late }), Some(&owner))
        .await;
    assert_eq!(retried.data()["retryConsignment"]["status"], "PENDING");
    assert_eq!(
        retried.data()["retryConsignment"]["unassignableReason"],
        Value::Null
    );
    let assigned = reaches(&client, &owner, &late, "ASSIGNED").await;
    assert_eq!(assigned["vessel"]["id"], vessel.to_string());
    assert_eq!(assigned["unassignableReason"], Value::Null);
    // Re-drives or duplicates of the retry change nothing: still 3 containers booked once.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(reserved(&vstate, vessel).await, 3);
    vessel_server.stop().await.unwrap();
    server.stop().await.unwrap();
}

/// `retryConsignment` and `cancelConsignment`: the owner's only, in the statuses they allow, pushed to
/// subscribers and recorded in the activity log; anything else gets a stable error code.
async fn the_owner_retries_and_cancels(backend: Backend) {
    testing::init();
    let (cdb, vdb) = (TestDb::create(backend).await, TestDb::create(backend).await);
    let bus = testing::bus();
    let mut log = bus.subscribe(streams::LOG).await.unwrap();
    let (server, state) = TestServer::subgraph::<shippy_consignment::Consignment>(
        config(&cdb.url, Duration::from_secs(1), Duration::from_secs(60)),
        bus.clone(),
    )
    .await;
    let (vessel_server, vstate, vessel) =
        vessel_subgraph(testing::subgraph_config(&vdb.url), bus.clone(), 5).await;
    let client = server.client();
    let (owner, stranger) = (user(), user());

    // Too big for the only vessel: the vessel subgraph's reason, in the owner's words.
    let big = create(&client, &owner, 12, 40000).await;
    let refused = reaches(&client, &owner, &big, "UNASSIGNABLE").await;
    assert_eq!(
        refused["unassignableReason"],
        "No vessel has room for 12 containers and 40,000 kg"
    );

    // Errors: someone else's or unknown is FORBIDDEN (the same answer), no token UNAUTHENTICATED,
    // a malformed id BAD_USER_INPUT.
    for mutation in [RETRY, CANCEL] {
        let theirs = client
            .query(mutation, json!({ "id": big }), Some(&stranger))
            .await;
        assert_eq!(theirs.code(), Some("FORBIDDEN"), "{mutation}");
        let unknown = client
            .query(
                mutation,
                json!({ "id": Uuid::now_v7().to_string() }),
                Some(&owner),
            )
            .await;
        assert_eq!(unknown.code(), Some("FORBIDDEN"));
        assert_eq!(theirs.message(), unknown.message());
        let anon = client.query(mutation, json!({ "id": big }), None).await;
        assert_eq!(anon.code(), Some("UNAUTHENTICATED"));
        let bad = client
            .query(mutation, json!({ "id": "not-an-id" }), Some(&owner))
            .await;
        assert_eq!(bad.code(), Some("BAD_USER_INPUT"));
    }

    // Retried while still too big: UNASSIGNABLE again, in round 1.
    let (mut ws, _) = WsClient::connect(&server.url("/graphql"), Some(&owner)).await;
    ws.subscribe("big", WATCH, json!({ "id": big })).await;
    testing::wait_live(&state.live, 1).await;
    let retried = client
        .query(RETRY, json!({ "id": big }), Some(&owner))
        .await;
    assert_eq!(retried.data()["retryConsignment"]["status"], "PENDING");
    // Pushes are the snapshots the events carry, in stream order. The round-0 refusal was read from
    // the database above, so its event may still be on its way when the subscription starts and
    // come first (an UNASSIGNABLE before the retry's PENDING); the retry's own answer is the
    // UNASSIGNABLE after its PENDING.
    let mut retried_pushed = false;
    let pushed = loop {
        let pushed = ws.next_payload("big", Duration::from_secs(10)).await;
        match pushed["data"]["consignmentUpdated"]["status"].as_str() {
            Some("PENDING") => retried_pushed = true,
            Some("UNASSIGNABLE") if retried_pushed => break pushed,
            Some("UNASSIGNABLE") => {}
            _ => panic!("unexpected push before the retry's answer: {pushed}"),
        }
    };
    assert_eq!(
        pushed["data"]["consignmentUpdated"]["unassignableReason"],
        "No vessel has room for 12 containers and 40,000 kg"
    );
    let row = shippy_consignment::entity::Entity::find_by_id(Uuid::parse_str(&big).unwrap())
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.assignment_round, 1);

    // Cancelled: for good.
    let cancelled = client
        .query(CANCEL, json!({ "id": big }), Some(&owner))
        .await;
    assert_eq!(cancelled.data()["cancelConsignment"]["status"], "CANCELLED");
    assert_eq!(
        cancelled.data()["cancelConsignment"]["unassignableReason"],
        Value::Null
    );
    let pushed = ws.next_payload("big", Duration::from_secs(10)).await;
    assert_eq!(pushed["data"]["consignmentUpdated"]["status"], "CANCELLED");
    for mutation in [RETRY, CANCEL] {
        let again = client
            .query(mutation, json!({ "id": big }), Some(&owner))
            .await;
        assert_eq!(again.code(), Some("BAD_USER_INPUT"), "{mutation}");
    }

    // An assigned one can be neither retried nor cancelled.
    let fits = create(&client, &owner, 2, 20).await;
    reaches(&client, &owner, &fits, "ASSIGNED").await;
    let retry = client
        .query(RETRY, json!({ "id": fits }), Some(&owner))
        .await;
    assert_eq!(retry.code(), Some("BAD_USER_INPUT"));
    assert!(
        retry.message().unwrap().contains("this one is ASSIGNED"),
        "{:?}",
        retry.message()
    );
    let cancel = client
        .query(CANCEL, json!({ "id": fits }), Some(&owner))
        .await;
    assert_eq!(cancel.code(), Some("BAD_USER_INPUT"));
    assert_eq!(reserved(&vstate, vessel).await, 2);

    // The activity log got both.
    let mut kinds = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(500), log.next()).await {
        if event.payload["consignment_id"] == big.as_str() {
            kinds.push(event.kind);
        }
    }
    assert_eq!(
        kinds,
        [
            "consignment.created",
            "consignment.unassignable",
            "consignment.retried",
            "consignment.unassignable",
            "consignment.cancelled"
        ]
    );
    vessel_server.stop().await.unwrap();
    server.stop().await.unwrap();
}

/// The consignment subgraph started (database migrated) but not serving: no relay, no consumer, no
/// saga of its own, so a test drives them.
async fn service(backend: Backend) -> (shippy_consignment::ConsignmentService, TestDb) {
    testing::init();
    let db = TestDb::create(backend).await;
    let service = shippy_consignment::ConsignmentService::start(
        config(&db.url, Duration::from_secs(60), Duration::from_secs(120)),
        testing::bus(),
    )
    .await
    .unwrap();
    (service, db)
}

fn new_consignment() -> shippy_consignment::commands::NewConsignment {
    shippy_consignment::commands::NewConsignment {
        description: Description::parse("Tea").unwrap(),
        weight: ConsignmentWeight::parse(1).unwrap(),
        containers: Containers::new(vec![Container::parse("c", "o").unwrap()]).unwrap(),
    }
}

/// Two replicas' sagas passing over the same due rows at once: each row is re-driven once, and expired
/// once, in all.
async fn two_replicas_never_drive_one_row_twice(backend: Backend) {
    let (service, _db) = service(backend).await;
    let state = service.state();
    for _ in 0..30 {
        shippy_consignment::commands::create(state, Uuid::now_v7(), new_consignment())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    let both = |retry_after: u64, deadline: u64| {
        let timing = AssignmentConfig {
            retry_after: Duration::from_millis(retry_after),
            deadline: Duration::from_millis(deadline),
        };
        let (a, b) = (
            Saga::new(state.clone(), timing.clone()),
            Saga::new(state.clone(), timing),
        );
        async move {
            let (x, y) = tokio::join!(a.pass(), b.pass());
            let (x, y) = (x.unwrap(), y.unwrap());
            (x.redriven + y.redriven, x.expired + y.expired)
        }
    };
    // Due for a re-drive, not yet for the deadline.
    assert_eq!(both(10, 60_000).await, (30, 0));
    assert_eq!(both(5_000, 60_000).await, (0, 0), "just re-driven: not due");
    tokio::time::sleep(Duration::from_millis(60)).await;
    // Past the deadline: expired once each, and (no longer PENDING) not re-driven.
    assert_eq!(both(10, 50).await, (0, 30));
    let count = |kind: &'static str| async move {
        state
            .db
            .query_one_raw(Statement::from_sql_and_values(
                state.db.get_database_backend(),
                match backend {
                    Backend::Sqlite => "SELECT count(*) AS n FROM outbox WHERE kind = ?",
                    Backend::Postgres => "SELECT count(*) AS n FROM outbox WHERE kind = $1",
                },
                [kind.into()],
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap()
    };
    assert_eq!(count(contract::REDRIVEN).await, 30);
    // One `consignment.unassignable` on the stream and one in the owner's log, per consignment.
    assert_eq!(count(contract::UNASSIGNABLE).await, 60);
}

/// Answers are applied only to the round they answer; a booking not applied and not the consignment's
/// own is refused (one `consignment.booking_refused` each), the consignment's own is left alone.
async fn answers_of_another_round_are_refused(backend: Backend) {
    use shippy_consignment::commands::{self, Answer};
    let (service, _db) = service(backend).await;
    let state = service.state();
    let owner = Uuid::now_v7();
    let row = commands::create(state, owner, new_consignment())
        .await
        .unwrap();
    let (x, y) = (Uuid::now_v7(), Uuid::now_v7());
    let booked = |vessel_id, round| Answer::Assigned {
        vessel_id,
        vessel_owner_id: Uuid::nil(),
        vessel_name: "Ship".into(),
        round,
    };
    let apply = |answer: Answer| async move {
        commands::apply_answer(state, Uuid::now_v7(), row.id, &answer)
            .await
            .unwrap()
    };
    let refusals = || refusals(state);
    assert!(apply(booked(x, 1)).await.is_none(), "a round not yet asked");
    assert_eq!(refusals().await, 1);
    let other_round = Answer::Unassignable {
        reason: "no room".into(),
        round: 1,
    };
    assert!(apply(other_round).await.is_none());
    let assigned = apply(booked(x, 0)).await.expect("its own round applies");
    assert_eq!(
        (assigned.status.as_str(), assigned.vessel_id),
        ("ASSIGNED", Some(x))
    );
    assert!(apply(booked(x, 0)).await.is_none(), "its booking, repeated");
    assert_eq!(refusals().await, 1, "its own booking is not refused");
    assert!(apply(booked(y, 0)).await.is_none(), "booked elsewhere too");
    assert_eq!(refusals().await, 2);

    let cancelled = commands::create(state, owner, new_consignment())
        .await
        .unwrap();
    commands::cancel(state, owner, cancelled.id).await.unwrap();
    assert!(
        commands::apply_answer(state, Uuid::now_v7(), cancelled.id, &booked(x, 0))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(refusals().await, 3, "a booking after a cancel is refused");
}

/// The vessel subgraph's answers in one read are applied in one transaction, skipping those applied
/// before; and all or nothing: a read with an answer that cannot be applied (about a consignment never
/// stored) applies none of it, so the consumer can hand its events over one by one.
async fn the_answers_of_a_read_apply_in_one_transaction(backend: Backend) {
    use shippy_consignment::{commands, consumers::VesselAnswers};
    use shippy_contracts::vessel;
    use shippy_kit::consumer::{HandleError, Handler};
    let (service, _db) = service(backend).await;
    let state = service.state();
    let owner = Uuid::now_v7();
    let mut rows = Vec::new();
    for _ in 0..4 {
        rows.push(
            commands::create(state, owner, new_consignment())
                .await
                .unwrap(),
        );
    }
    let ship = Uuid::now_v7();
    let assigned = |consignment_id| {
        let payload = vessel::Assigned {
            consignment_id,
            vessel_id: ship,
            vessel_owner_id: Uuid::nil(),
            vessel_name: "Ship".into(),
            round: 0,
        };
        shippy_contracts::event(
            streams::CONSIGNMENT,
            "vessel",
            vessel::ASSIGNED,
            None,
            "booked",
            &payload,
        )
        .unwrap()
    };
    let unassignable = shippy_contracts::event(
        streams::CONSIGNMENT,
        "vessel",
        vessel::UNASSIGNABLE,
        None,
        "no room",
        &vessel::Unassignable {
            consignment_id: rows[2].id,
            reason: "No vessel has room".into(),
            container_count: 1,
            weight: 1,
            round: 0,
        },
    )
    .unwrap();
    let ignored = shippy_contracts::event(
        streams::CONSIGNMENT,
        "consignment",
        contract::CANCELLED,
        Some(owner.to_string()),
        "someone else's",
        &json!({}),
    )
    .unwrap();
    let read = [
        assigned(rows[0].id),
        ignored,
        assigned(rows[1].id),
        unassignable,
    ];
    let events: Vec<_> = read.iter().collect();
    let answers = VesselAnswers::new(state.clone());
    assert_eq!(answers.handle_batch(&events).await, Some(Ok(())));
    let status = |id| async move { status_of(state, id).await };
    assert_eq!(status(rows[0].id).await, "ASSIGNED");
    assert_eq!(status(rows[1].id).await, "ASSIGNED");
    assert_eq!(status(rows[2].id).await, "UNASSIGNABLE");
    // Redelivered: nothing applies twice (a second application would refuse the booking).
    assert_eq!(answers.handle_batch(&events).await, Some(Ok(())));

    let bad_read = [assigned(rows[3].id), assigned(Uuid::now_v7())];
    let events: Vec<_> = bad_read.iter().collect();
    assert!(matches!(
        answers.handle_batch(&events).await,
        Some(Err(HandleError::Reject(_)))
    ));
    assert_eq!(
        status(rows[3].id).await,
        "PENDING",
        "none of the read applied"
    );
    answers.handle(&bad_read[0]).await.unwrap();
    assert_eq!(status(rows[3].id).await, "ASSIGNED");
    assert_eq!(refusals(state).await, 0, "every answer applied once");
}

/// How many `consignment.booking_refused` events `state`'s subgraph recorded.
async fn refusals(state: &shippy_consignment::State) -> i64 {
    state
        .db
        .query_one_raw(Statement::from_string(
            state.db.get_database_backend(),
            "SELECT count(*) AS n FROM outbox WHERE kind = 'consignment.booking_refused'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap()
}

/// Consignment `id`'s status in `state`'s database.
async fn status_of(state: &shippy_consignment::State, id: Uuid) -> String {
    shippy_consignment::entity::Entity::find_by_id(id)
        .one(&state.db)
        .await
        .unwrap()
        .expect("stored")
        .status
}

shippy_kit::backend_tests!(
    the_answers_of_a_read_apply_in_one_transaction,
    two_replicas_never_drive_one_row_twice,
    answers_of_another_round_are_refused,
    an_unanswered_consignment_expires_with_a_reason_for_its_owner,
    bookings_after_the_deadline_or_a_cancel_are_given_back,
    the_owner_retries_and_cancels,
);

/// `url` with its `host:port` replaced by `addr`.
fn through(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let credentials = authority
        .rsplit_once('@')
        .map(|(c, _)| format!("{c}@"))
        .unwrap_or_default();
    format!("{scheme}://{credentials}{addr}/{path}")
}

/// The vessel database (PostgreSQL, reached through a proxy the test cuts) fails for 8 s, more than twice
/// the window in which every request used to be dead-lettered: the vessel's consumer takes a failed entry
/// back after `claim_idle` (200 ms here) and pauses at most `retry_max` (500 ms) between failures, so
/// `max_deliveries` (5 here) deliveries take at most 3.5 s. 20 consignments are created during the
/// outage. Afterwards every one is ASSIGNED, none PENDING, nothing dead-lettered, and
/// every one booked exactly once although their requests were re-driven during the outage.
#[tokio::test]
async fn a_vessel_database_outage_strands_nothing() {
    testing::init();
    let (cdb, vdb) = (
        TestDb::create(Backend::Postgres).await,
        TestDb::create(Backend::Postgres).await,
    );
    let target = tokio::net::lookup_host(
        vdb.url
            .split_once("://")
            .unwrap()
            .1
            .split('/')
            .next()
            .unwrap()
            .rsplit('@')
            .next()
            .unwrap(),
    )
    .await
    .unwrap()
    .next()
    .unwrap();
    let proxy = TcpProxy::start(target).await;
    let bus = testing::bus();
    let mut events = bus.subscribe(streams::CONSIGNMENT).await.unwrap();
    let (server, state) = TestServer::subgraph::<shippy_consignment::Consignment>(
        config(&cdb.url, Duration::from_secs(1), Duration::from_secs(120)),
        bus.clone(),
    )
    .await;
    let mut vessel_config = testing::subgraph_config(&through(&vdb.url, proxy.addr));
    vessel_config.events.consumer.claim_idle = Duration::from_millis(200);
    vessel_config.events.consumer.max_deliveries = 5;
    let (vessel_server, vstate, vessel) = vessel_subgraph(vessel_config, bus.clone(), 1000).await;
    let client = server.client();
    let owner = user();

    proxy.set_up(false);
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(create(&client, &owner, 1 + i % 3, 10).await);
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    proxy.set_up(true);
    let back = std::time::Instant::now();

    for id in &ids {
        reaches(&client, &owner, id, "ASSIGNED").await;
    }
    eprintln!(
        "all 20 ASSIGNED {:?} after the vessel database came back",
        back.elapsed()
    );
    let by_status = |status: &'static str| {
        shippy_consignment::entity::Entity::find()
            .filter(shippy_consignment::entity::Column::Status.eq(status))
            .count(&state.db)
    };
    assert_eq!(by_status("ASSIGNED").await.unwrap(), 20);
    assert_eq!(by_status("PENDING").await.unwrap(), 0);
    assert_eq!(by_status("UNASSIGNABLE").await.unwrap(), 0);
    let expected: i32 = (0..20).map(|i| 1 + i % 3).sum();
    assert_eq!(
        reserved(&vstate, vessel).await,
        expected,
        "each consignment booked once"
    );
    assert_eq!(
        reservation::Entity::find().count(&vstate.db).await.unwrap(),
        20
    );
    let mut dead = bus
        .join_group(&dead_letters(streams::CONSIGNMENT), "test", "t")
        .await
        .unwrap();
    assert_eq!(
        dead.read_new(100, Duration::ZERO).await.unwrap().len(),
        0,
        "no dead letters"
    );
    let redriven = count_kind(&mut events, contract::REDRIVEN, Duration::from_millis(300)).await;
    assert!(
        !redriven.is_empty(),
        "requests were re-driven during the outage"
    );
    eprintln!("{} requests re-driven during the outage", redriven.len());
    vessel_server.stop().await.unwrap();
    server.stop().await.unwrap();
}
