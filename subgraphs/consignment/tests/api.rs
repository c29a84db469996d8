//! The consignment subgraph over HTTP and WebSocket on 127.0.0.1:0, with the vessel subgraph beside it on
//! the same in-process bus (as `shippy up` runs them), each scenario on SQLite and on PostgreSQL.

use shippy_contracts::{streams, user};
use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use shippy_consignment::{
    commands::{self, Answer, AnswerError, NewConsignment},
    consumers,
    domain::{ConsignmentWeight, Container, Containers, Description},
    entity,
};
use shippy_kit::{
    CancellationToken,
    events::{Event, EventBus},
    live::Live,
    testing::{self, Backend, GraphQLClient, TestDb, TestServer, WsClient},
};
use shippy_user::tokens::TokenIssuer;
use uuid::Uuid;

/// The consignment and vessel subgraphs on one in-process bus; servers stop before their databases go.
struct Harness {
    consignment: TestServer,
    /// The consignment subgraph's state, for its live feed.
    state: shippy_consignment::State,
    vessel: TestServer,
    bus: Arc<dyn EventBus>,
    _dbs: (TestDb, TestDb),
}

async fn start(backend: Backend) -> Harness {
    testing::init();
    let (cdb, vdb) = (TestDb::create(backend).await, TestDb::create(backend).await);
    let bus = testing::bus();
    let (config, run_bus) = (testing::subgraph_config(&cdb.url), bus.clone());
    let (consignment, state) =
        TestServer::subgraph::<shippy_consignment::Consignment>(config, run_bus).await;
    let (config, run_bus) = (testing::subgraph_config(&vdb.url), bus.clone());
    let vessel = TestServer::spawn(move |listener, shutdown| {
        shippy_kit::subgraph::run::<shippy_vessel::Vessel>(listener, config, run_bus, shutdown)
    })
    .await;
    Harness {
        consignment,
        state,
        vessel,
        bus,
        _dbs: (cdb, vdb),
    }
}

/// A fresh user who registered (their `user.registered` is on the bus, so the vessel subgraph knows them
/// as a possible vessel owner) and a token for them as the user subgraph issues it.
async fn user(bus: &Arc<dyn EventBus>) -> (String, String) {
    let id = Uuid::now_v7();
    let registered = user::Registered {
        user_id: id,
        name: "Uma".into(),
        company: None,
    };
    bus.publish(&registered.event("user").unwrap())
        .await
        .unwrap();
    let token = TokenIssuer::from_config(&testing::auth_config())
        .unwrap()
        .issue(&id.to_string(), "u@example.com", vec![])
        .unwrap()
        .token;
    (token, id.to_string())
}

const CREATE: &str = "mutation($input: CreateConsignmentInput!) {
    createConsignment(input: $input) {
        id description weight status containers { customerId origin } vessel { id } owner { id }
        createdAt updatedAt
    }
}";
const ONE: &str = "query($id: ID!) { consignment(id: $id) { id status vessel { id } } }";
const UPDATE: &str = "mutation($id: ID!, $s: ConsignmentStatus!) {
    updateConsignmentStatus(id: $id, status: $s) {
        id status weight containers { customerId origin } description owner { id }
    }
}";
const WATCH: &str =
    "subscription($id: ID) { consignmentUpdated(id: $id) { id status vessel { id } } }";

fn input(containers: usize, weight: i32) -> Value {
    let containers: Vec<Value> = (0..containers)
        .map(|i| json!({ "customerId": format!("c{i}"), "origin": "Rotterdam" }))
        .collect();
    json!({ "input": { "description": "Tea", "weight": weight, "containers": containers } })
}

impl Harness {
    fn client(&self) -> GraphQLClient {
        self.consignment.client()
    }

    async fn create(&self, token: &str, containers: usize, weight: i32) -> String {
        let resp = self
            .client()
            .query(CREATE, input(containers, weight), Some(token))
            .await;
        resp.data()["createConsignment"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn vessel(&self, token: &str, capacity: i32, max_weight: i32) -> String {
        let resp = self
            .vessel
            .client()
            .query(
                "mutation($c: Int!, $w: Int!) { createVessel(input: {name: \"Ship\", capacity: $c, maxWeight: $w}) { id } }",
                json!({ "c": capacity, "w": max_weight }),
                Some(token),
            )
            .await;
        resp.data()["createVessel"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Waits until consignment `id` has left `PENDING`; returns it.
    async fn settled(&self, token: &str, id: &str) -> Value {
        for _ in 0..300 {
            let resp = self
                .client()
                .query(ONE, json!({ "id": id }), Some(token))
                .await;
            let c = resp.data()["consignment"].clone();
            if c["status"] != "PENDING" {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("consignment {id} stayed PENDING");
    }
}

async fn create_validates_input_and_requires_a_token(backend: Backend) {
    let h = start(backend).await;
    let anon = h.client().query(CREATE, input(1, 1), None).await;
    assert_eq!(anon.code(), Some("UNAUTHENTICATED"));

    let (token, owner) = user(&h.bus).await;
    let containers = |n: usize| input(n, 1)["input"]["containers"].clone();
    let cases = [
        (
            json!({ "description": " ", "weight": 1, "containers": containers(1) }),
            "input.description",
        ),
        (
            json!({ "description": "x".repeat(501), "weight": 1, "containers": containers(1) }),
            "input.description",
        ),
        (
            json!({ "description": "Tea", "weight": 0, "containers": containers(1) }),
            "input.weight",
        ),
        (
            json!({ "description": "Tea", "weight": -5, "containers": containers(1) }),
            "input.weight",
        ),
        (
            json!({ "description": "Tea", "weight": 1_000_000_001, "containers": containers(1) }),
            "input.weight",
        ),
        (
            json!({ "description": "Tea", "weight": 1, "containers": [] }),
            "input.containers",
        ),
        (
            json!({ "description": "Tea", "weight": 1, "containers": containers(1001) }),
            "input.containers",
        ),
        (
            json!({ "description": "Tea", "weight": 1, "containers": [{ "customerId": "", "origin": "x" }] }),
            "input.containers[0].customerId",
        ),
        (
            json!({ "description": "Tea", "weight": 1, "containers": [{ "customerId": "c", "origin": "o" }, { "customerId": "c", "origin": "o".repeat(101) }] }),
            "input.containers[1].origin",
        ),
    ];
    for (bad, field) in cases {
        let resp = h
            .client()
            .query(CREATE, json!({ "input": bad }), Some(&token))
            .await;
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.code(),
            Some("BAD_USER_INPUT"),
            "{field}: {}",
            resp.body
        );
        assert_eq!(
            resp.body["errors"][0]["extensions"]["field"], field,
            "{}",
            resp.body
        );
    }

    let resp = h.client().query(CREATE, input(2, 12), Some(&token)).await;
    let c = &resp.data()["createConsignment"];
    assert_eq!(c["status"], "PENDING");
    assert_eq!(c["description"], "Tea");
    assert_eq!(c["weight"], 12);
    assert_eq!(c["vessel"], Value::Null);
    assert_eq!(c["owner"]["id"], owner.as_str());
    assert_eq!(
        c["containers"],
        json!([{ "customerId": "c0", "origin": "Rotterdam" }, { "customerId": "c1", "origin": "Rotterdam" }])
    );
}

async fn consignments_are_their_owners_only(backend: Backend) {
    let h = start(backend).await;
    let (alice, alice_id) = user(&h.bus).await;
    let (bob, _) = user(&h.bus).await;
    let ids = [
        h.create(&alice, 1, 1).await,
        h.create(&alice, 1, 1).await,
        h.create(&alice, 1, 1).await,
    ];

    let one = h
        .client()
        .query(ONE, json!({ "id": ids[0] }), Some(&alice))
        .await;
    assert_eq!(one.data()["consignment"]["id"], ids[0].as_str());
    let theirs = h
        .client()
        .query(ONE, json!({ "id": ids[0] }), Some(&bob))
        .await;
    assert_eq!(theirs.data()["consignment"], Value::Null, "never the data");
    let anon = h.client().query(ONE, json!({ "id": ids[0] }), None).await;
    assert_eq!(anon.code(), Some("UNAUTHENTICATED"));
    let bad = h
        .client()
        .query(ONE, json!({ "id": "nope" }), Some(&alice))
        .await;
    assert_eq!(bad.code(), Some("BAD_USER_INPUT"));

    let page = "query($after: ID) { consignments(first: 2, after: $after) { id } }";
    let first = h.client().query(page, json!({}), Some(&alice)).await;
    assert_eq!(
        first.data()["consignments"],
        json!([{ "id": ids[0] }, { "id": ids[1] }])
    );
    let rest = h
        .client()
        .query(page, json!({ "after": ids[1] }), Some(&alice))
        .await;
    assert_eq!(rest.data()["consignments"], json!([{ "id": ids[2] }]));
    let none = h.client().query(page, json!({}), Some(&bob)).await;
    assert_eq!(none.data()["consignments"], json!([]));
    let too_many = h
        .client()
        .query(
            "{ consignments(first: 101) { id } }",
            json!({}),
            Some(&alice),
        )
        .await;
    assert_eq!(too_many.code(), Some("BAD_USER_INPUT"));

    // Through federation: User.consignments for the user themself only, Consignment entities for the owner.
    let user_entities = "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { consignments(first: 1) { id } } } }";
    let rep = json!({ "r": [{ "__typename": "User", "id": alice_id }] });
    let own = h
        .client()
        .query(user_entities, rep.clone(), Some(&alice))
        .await;
    assert_eq!(
        own.data()["_entities"],
        json!([{ "consignments": [{ "id": ids[0] }] }])
    );
    let other = h.client().query(user_entities, rep, Some(&bob)).await;
    assert_eq!(other.code(), Some("FORBIDDEN"), "{}", other.body);
    let consignment_entities = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Consignment { id description } } }";
    let rep = json!({ "r": [{ "__typename": "Consignment", "id": ids[0] }] });
    let own = h
        .client()
        .query(consignment_entities, rep.clone(), Some(&alice))
        .await;
    assert_eq!(own.data()["_entities"][0]["description"], "Tea");
    for token in [Some(bob.as_str()), None] {
        let other = h
            .client()
            .query(consignment_entities, rep.clone(), token)
            .await;
        assert_eq!(other.data()["_entities"], json!([null]));
    }

    let sdl = h
        .client()
        .query("{ _service { sdl } }", json!({}), None)
        .await;
    assert_eq!(
        sdl.data()["_service"]["sdl"].as_str().unwrap().trim(),
        shippy_kit::subgraph::sdl::<shippy_consignment::Consignment>().trim()
    );
}

async fn vessels_are_assigned_and_moved_along_by_their_owner(backend: Backend) {
    let h = start(backend).await;
    let (alice, _) = user(&h.bus).await;
    let (carrier, _) = user(&h.bus).await;
    let (mallory, _) = user(&h.bus).await;
    let vessel = h.vessel(&carrier, 3, 100).await;

    // Alice watches all her consignments; Mallory tries to watch one of Alice's and everything of hers.
    let (mut alice_ws, ack) = WsClient::connect(&h.consignment.url("/graphql"), Some(&alice)).await;
    assert_eq!(ack["type"], "connection_ack");
    alice_ws.subscribe("all", WATCH, json!({})).await;
    let (mut mallory_ws, _) =
        WsClient::connect(&h.consignment.url("/graphql"), Some(&mallory)).await;
    mallory_ws.subscribe("mine", WATCH, json!({})).await;
    // Both subscriptions are registered with the live feed before anything changes.
    testing::wait_live(&h.state.live, 2).await;

    let fits = h.create(&alice, 2, 50).await;
    let assigned = h.settled(&alice, &fits).await;
    assert_eq!(assigned["status"], "ASSIGNED");
    assert_eq!(assigned["vessel"]["id"], vessel.as_str());
    let too_big = h.create(&alice, 2, 10).await;
    assert_eq!(h.settled(&alice, &too_big).await["status"], "UNASSIGNABLE");

    // Pushed: PENDING then ASSIGNED for the first, PENDING then UNASSIGNABLE for the second.
    let mut pushed = Vec::new();
    for _ in 0..4 {
        let payload = alice_ws.next_payload("all", Duration::from_secs(10)).await;
        let c = &payload["data"]["consignmentUpdated"];
        pushed.push((
            c["id"].as_str().unwrap().to_owned(),
            c["status"].as_str().unwrap().to_owned(),
        ));
    }
    let of = |id: &str| -> Vec<String> {
        pushed
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, s)| s.clone())
            .collect()
    };
    assert_eq!(of(&fits), ["PENDING", "ASSIGNED"]);
    assert_eq!(of(&too_big), ["PENDING", "UNASSIGNABLE"]);

    let (mut probe, _) = WsClient::connect(&h.consignment.url("/graphql"), Some(&mallory)).await;
    probe
        .subscribe("theirs", WATCH, json!({ "id": fits }))
        .await;
    // async-graphql answers a subscription that fails to start with one `next` carrying the error.
    let refused = probe.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(refused["payload"]["data"], Value::Null, "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"],
        "FORBIDDEN"
    );

    // Only the carrier moves it, one step at a time.
    let step = |token: &str, status: &str| {
        let client = h.client();
        let (token, vars) = (token.to_owned(), json!({ "id": fits, "s": status }));
        async move { client.query(UPDATE, vars, Some(&token)).await }
    };
    assert_eq!(step(&alice, "IN_TRANSIT").await.code(), Some("FORBIDDEN"));
    assert_eq!(step(&mallory, "IN_TRANSIT").await.code(), Some("FORBIDDEN"));
    let skipped = step(&carrier, "DELIVERED").await;
    assert_eq!(skipped.code(), Some("BAD_USER_INPUT"), "{}", skipped.body);
    assert_eq!(skipped.body["errors"][0]["extensions"]["field"], "status");
    let moved = step(&carrier, "IN_TRANSIT").await;
    let seen = &moved.data()["updateConsignmentStatus"];
    assert_eq!(seen["status"], "IN_TRANSIT");
    // Least privilege: the carrier sees what it carries (weight, containers), not what is inside or
    // whose it is; no error, like User.email for others.
    assert_eq!(seen["weight"], 50);
    assert_eq!(seen["containers"].as_array().unwrap().len(), 2);
    assert_eq!(seen["description"], Value::Null, "{}", moved.body);
    assert_eq!(seen["owner"], Value::Null);
    assert!(moved.body.get("errors").is_none(), "{}", moved.body);
    // The owner still sees both.
    let own = h
        .client()
        .query(
            "query($id: ID!) { consignment(id: $id) { description owner { id } } }",
            json!({ "id": fits }),
            Some(&alice),
        )
        .await;
    assert!(
        own.data()["consignment"]["description"].is_string(),
        "{}",
        own.body
    );
    assert!(own.data()["consignment"]["owner"]["id"].is_string());
    assert_eq!(
        step(&carrier, "IN_TRANSIT").await.code(),
        Some("BAD_USER_INPUT")
    );
    let pushed = alice_ws.next_payload("all", Duration::from_secs(10)).await;
    assert_eq!(pushed["data"]["consignmentUpdated"]["status"], "IN_TRANSIT");
    let done = step(&carrier, "DELIVERED").await;
    assert_eq!(
        done.data()["updateConsignmentStatus"]["status"],
        "DELIVERED"
    );
    let nobody = h
        .client()
        .query(
            UPDATE,
            json!({ "id": Uuid::now_v7(), "s": "IN_TRANSIT" }),
            Some(&carrier),
        )
        .await;
    assert_eq!(nobody.code(), Some("FORBIDDEN"));

    // Delivery gives the vessel's capacity back.
    let remaining = "query($id: ID!) { vessel(id: $id) { remainingCapacity } }";
    let mut freed = false;
    for _ in 0..200 {
        let resp = h
            .vessel
            .client()
            .query(remaining, json!({ "id": vessel }), None)
            .await;
        if resp.data()["vessel"]["remainingCapacity"] == 3 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the vessel's capacity was not released");

    // Mallory saw none of it; her own consignment is the first thing she gets.
    let hers = h.create(&mallory, 1, 1).await;
    let first = mallory_ws
        .next_payload("mine", Duration::from_secs(10))
        .await;
    assert_eq!(first["data"]["consignmentUpdated"]["id"], hers.as_str());

    let anon = {
        let (mut ws, _) = WsClient::connect(&h.consignment.url("/graphql"), None).await;
        ws.subscribe("x", WATCH, json!({})).await;
        ws.next(Duration::from_secs(10)).await.unwrap()
    };
    assert_eq!(
        anon["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{anon}"
    );
    let _ = &h.bus;
}

fn new_consignment() -> NewConsignment {
    NewConsignment {
        description: Description::parse("Tea").unwrap(),
        weight: ConsignmentWeight::parse(1).unwrap(),
        containers: Containers::new(vec![Container::parse("c", "o").unwrap()]).unwrap(),
    }
}

async fn answers_apply_once(backend: Backend) {
    testing::init();
    let db = TestDb::create(backend).await;
    let service = shippy_consignment::ConsignmentService::start(
        testing::subgraph_config(&db.url),
        testing::bus(),
    )
    .await
    .unwrap();
    let state = service.state();
    let row = commands::create(state, Uuid::now_v7(), new_consignment())
        .await
        .unwrap();
    let assigned = Answer::Assigned {
        vessel_id: Uuid::now_v7(),
        vessel_owner_id: Uuid::now_v7(),
        vessel_name: "Ship".into(),
        round: 0,
    };
    let event = Uuid::now_v7();
    let applied = commands::apply_answer(state, event, row.id, &assigned)
        .await
        .unwrap()
        .expect("applied");
    assert_eq!(applied.status, "ASSIGNED");
    assert!(applied.updated_at > row.updated_at);
    assert!(
        commands::apply_answer(state, event, row.id, &assigned)
            .await
            .unwrap()
            .is_none(),
        "the same event again"
    );
    let late = Answer::Unassignable {
        reason: "late".into(),
        round: 0,
    };
    assert!(
        commands::apply_answer(state, Uuid::now_v7(), row.id, &late)
            .await
            .unwrap()
            .is_none(),
        "a second answer does not undo the first"
    );
    let stored = entity::Entity::find_by_id(row.id)
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, "ASSIGNED");
    assert!(matches!(
        commands::apply_answer(state, Uuid::now_v7(), Uuid::now_v7(), &late).await,
        Err(AnswerError::UnknownConsignment(_))
    ));
}

async fn a_lagging_subscriber_catches_up_from_the_database(backend: Backend) {
    testing::init();
    let db = TestDb::create(backend).await;
    let bus = testing::bus();
    let mut config = testing::subgraph_config(&db.url);
    // One event of room: the second event in a row makes a subscriber lag.
    config.events.live_capacity = 1;
    let service = shippy_consignment::ConsignmentService::start(config, bus.clone())
        .await
        .unwrap();
    let state = service.state().clone();
    let shutdown = CancellationToken::new();
    let feed_task = tokio::spawn(state.live.clone().run(bus.clone(), shutdown.clone()));
    state.live.following().await;
    // Sees what the feed broadcasts, so the test knows when the subscriber below has fallen behind.
    let mut probe = state.live.subscribe();

    let owner = Uuid::now_v7();
    let mut watch = consumers::watch(state.clone(), state.live.subscribe(), owner, None);
    let mut created = Vec::new();
    for _ in 0..3 {
        created.push(
            commands::create(&state, owner, new_consignment())
                .await
                .unwrap(),
        );
    }
    // The relay is not running: publish what it would, all at once, before the subscriber reads.
    let created_event = |row: &shippy_consignment::entity::Model| {
        Event::new(
            streams::CONSIGNMENT,
            "consignment",
            "consignment.created",
            Some(owner.to_string()),
            "created",
            serde_json::to_value(row).unwrap(),
        )
    };
    for row in &created {
        bus.publish(&created_event(row)).await.unwrap();
    }
    // Once the probe has the last event, the feed has broadcast all three: the subscriber has lagged.
    let last = created[2].id.to_string();
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(item) = probe.next().await {
            if matches!(&item, Live::Event(e) if e.payload["id"] == last.as_str()) {
                break;
            }
        }
    })
    .await
    .expect("the feed broadcasts every event");
    let mut got = Vec::new();
    for _ in 0..3 {
        let row = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("caught up in time")
            .unwrap()
            .unwrap();
        got.push(row.id);
    }
    assert_eq!(got, created.iter().map(|r| r.id).collect::<Vec<_>>());
    // The event still buffered repeats one of them: dropped as not newer. A later change proves it: it
    // is the next thing the subscriber gets.
    let fourth = commands::create(&state, owner, new_consignment())
        .await
        .unwrap();
    bus.publish(&created_event(&fourth)).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("the later change arrives")
        .unwrap()
        .unwrap();
    assert_eq!(next.id, fourth.id, "a stale update was pushed");
    shutdown.cancel();
    feed_task.await.unwrap().unwrap();
}

shippy_kit::backend_tests!(
    create_validates_input_and_requires_a_token,
    consignments_are_their_owners_only,
    vessels_are_assigned_and_moved_along_by_their_owner,
    answers_apply_once,
    a_lagging_subscriber_catches_up_from_the_database,
);
