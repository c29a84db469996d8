//! The vessel subgraph over HTTP on 127.0.0.1:0, each scenario on SQLite and on a fresh PostgreSQL database.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use shippy_contracts::{streams, user};
use shippy_kit::{
    config::EventsConfig,
    events::{Event, EventBus},
    testing::{self, Backend, GraphQLClient, TestDb, TestServer},
};
use shippy_user::tokens::TokenIssuer;
use uuid::Uuid;

/// A running vessel subgraph; the server is dropped (stopped) before its database.
struct Harness {
    _server: TestServer,
    client: GraphQLClient,
    bus: Arc<dyn EventBus>,
    db: TestDb,
}

async fn start(backend: Backend) -> Harness {
    start_waiting(backend, EventsConfig::default().projection_wait).await
}

/// A vessel subgraph that waits `owner_wait` for an owner it does not know yet.
async fn start_waiting(backend: Backend, owner_wait: Duration) -> Harness {
    let db = TestDb::create(backend).await;
    let bus = testing::bus();
    let mut config = testing::subgraph_config(&db.url);
    config.events.projection_wait = owner_wait;
    let run_bus = bus.clone();
    let server = TestServer::spawn(move |listener, shutdown| {
        shippy_kit::subgraph::run::<shippy_vessel::Vessel>(listener, config, run_bus, shutdown)
    })
    .await;
    let client = server.client();
    Harness {
        _server: server,
        client,
        bus,
        db,
    }
}

/// A token for a fresh user id, as the user subgraph issues it at registration.
fn token_for(id: &str) -> String {
    TokenIssuer::from_config(&testing::auth_config())
        .unwrap()
        .issue(id, "o@example.com", vec![])
        .unwrap()
        .token
}

/// The `user.registered` event the user subgraph records for `id`.
fn registration(id: &str) -> Event {
    user::Registered {
        user_id: id.parse().unwrap(),
        name: "Olive".into(),
        company: None,
    }
    .event("user")
    .unwrap()
}

const CREATE: &str = "mutation($input: CreateVesselInput!) {
    createVessel(input: $input) { id name capacity maxWeight available owner { id } createdAt }
}";
const FIND: &str =
    "query($c: Int!, $w: Int!) { findAvailableVessel(capacity: $c, maxWeight: $w) { id name } }";

impl Harness {
    /// A fresh user who registered (their `user.registered` is on the bus) and their token.
    async fn user_token(&self) -> (String, String) {
        let id = Uuid::now_v7().to_string();
        self.bus.publish(&registration(&id)).await.unwrap();
        (token_for(&id), id)
    }

    /// How many vessels the database holds.
    async fn stored_vessels(&self) -> u64 {
        let db = sea_orm::Database::connect(&self.db.url).await.unwrap();
        let n = shippy_vessel::entity::Entity::find()
            .count(&db)
            .await
            .unwrap();
        db.close().await.unwrap();
        n
    }

    async fn create(&self, token: &str, name: &str, capacity: i32, max_weight: i32) -> String {
        let input =
            json!({ "input": { "name": name, "capacity": capacity, "maxWeight": max_weight } });
        let resp = self.client.query(CREATE, input, Some(token)).await;
        resp.data()["createVessel"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

async fn create_requires_a_token_and_sets_the_owner(backend: Backend) {
    let h = start(backend).await;
    let input = json!({ "input": { "name": "Ever Given", "capacity": 500, "maxWeight": 20000 } });
    let anon = h.client.query(CREATE, input.clone(), None).await;
    assert_eq!(anon.code(), Some("UNAUTHENTICATED"));

    let (token, owner) = h.user_token().await;
    let resp = h.client.query(CREATE, input, Some(&token)).await;
    let vessel = &resp.data()["createVessel"];
    assert_eq!(vessel["name"], "Ever Given");
    assert_eq!(vessel["capacity"], 500);
    assert_eq!(vessel["maxWeight"], 20000);
    assert_eq!(vessel["available"], true);
    assert_eq!(vessel["owner"]["id"], owner.as_str());

    let id = vessel["id"].as_str().unwrap();
    let one = h
        .client
        .query(
            "query($id: ID!) { vessel(id: $id) { name owner { id } } }",
            json!({ "id": id }),
            None,
        )
        .await;
    assert_eq!(
        one.data()["vessel"],
        json!({ "name": "Ever Given", "owner": { "id": owner } })
    );
}

async fn bad_inputs_name_the_field(backend: Backend) {
    let h = start(backend).await;
    let (token, _) = h.user_token().await;
    let cases = [
        (
            json!({ "name": " ", "capacity": 1, "maxWeight": 1 }),
            "input.name",
        ),
        (
            json!({ "name": "x".repeat(101), "capacity": 1, "maxWeight": 1 }),
            "input.name",
        ),
        (
            json!({ "name": "A", "capacity": 0, "maxWeight": 1 }),
            "input.capacity",
        ),
        (
            json!({ "name": "A", "capacity": -3, "maxWeight": 1 }),
            "input.capacity",
        ),
        (
            json!({ "name": "A", "capacity": 2_000_000, "maxWeight": 1 }),
            "input.capacity",
        ),
        (
            json!({ "name": "A", "capacity": 1, "maxWeight": 0 }),
            "input.maxWeight",
        ),
        (
            json!({ "name": "A", "capacity": 1, "maxWeight": -1 }),
            "input.maxWeight",
        ),
        (
            json!({ "name": "A", "capacity": 1, "maxWeight": 1_000_000_001 }),
            "input.maxWeight",
        ),
    ];
    for (input, field) in cases {
        let resp = h
            .client
            .query(CREATE, json!({ "input": input }), Some(&token))
            .await;
        assert_eq!(
            resp.code(),
            Some("BAD_USER_INPUT"),
            "{input}: {:?}",
            resp.body
        );
        assert_eq!(
            resp.body["errors"][0]["extensions"]["field"], field,
            "{input}"
        );
    }
    let resp = h.client.query(FIND, json!({ "c": 0, "w": 1 }), None).await;
    assert_eq!(resp.body["errors"][0]["extensions"]["field"], "capacity");
    let resp = h.client.query(FIND, json!({ "c": 1, "w": -1 }), None).await;
    assert_eq!(resp.body["errors"][0]["extensions"]["field"], "maxWeight");
    let resp = h
        .client
        .query("{ vessel(id: \"nope\") { id } }", json!({}), None)
        .await;
    assert_eq!(resp.code(), Some("BAD_USER_INPUT"));
    let resp = h.client.query("{ vessels { id } }", json!({}), None).await;
    assert_eq!(
        resp.data()["vessels"],
        json!([]),
        "nothing was created by the refused inputs"
    );
}

async fn find_available_picks_the_smallest_that_fits(backend: Backend) {
    let h = start(backend).await;
    let (token, _) = h.user_token().await;
    let big = h.create(&token, "Big", 1000, 50_000).await;
    let small = h.create(&token, "Small", 10, 1_000).await;
    let heavy = h.create(&token, "Heavy", 20, 100_000).await;

    let fits = |c: i32, w: i32| {
        let client = h.client.clone();
        async move {
            client
                .query(FIND, json!({ "c": c, "w": w }), None)
                .await
                .data()["findAvailableVessel"]["id"]
                .clone()
        }
    };
    assert_eq!(fits(5, 500).await, small.as_str());
    assert_eq!(fits(10, 1_000).await, small.as_str(), "exact fit counts");
    assert_eq!(fits(15, 500).await, heavy.as_str());
    assert_eq!(fits(15, 60_000).await, heavy.as_str());
    assert_eq!(
        fits(500, 60_000).await,
        Value::Null,
        "capacity and weight must both suffice"
    );
    assert_eq!(fits(500, 1_000).await, big.as_str());
    assert_eq!(fits(5000, 1).await, Value::Null);
}

async fn vessels_page_in_creation_order(backend: Backend) {
    let h = start(backend).await;
    let (token, _) = h.user_token().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(h.create(&token, &format!("V{n}"), 10, 10).await);
    }
    let query = "query($first: Int, $after: ID) { vessels(first: $first, after: $after) { id } }";
    let page1 = h.client.query(query, json!({ "first": 2 }), None).await;
    assert_eq!(
        page1.data()["vessels"],
        json!([{ "id": ids[0] }, { "id": ids[1] }])
    );
    let page2 = h
        .client
        .query(query, json!({ "first": 2, "after": ids[1] }), None)
        .await;
    assert_eq!(page2.data()["vessels"], json!([{ "id": ids[2] }]));
    let bad = h.client.query(query, json!({ "first": 0 }), None).await;
    assert_eq!(bad.body["errors"][0]["extensions"]["field"], "first");
}

async fn vessels_resolve_as_entities(backend: Backend) {
    let h = start(backend).await;
    let (token, owner) = h.user_token().await;
    let id = h.create(&token, "Ever Given", 500, 20_000).await;
    let query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Vessel { id name owner { id } } } }";
    let reps = json!({ "r": [{ "__typename": "Vessel", "id": id }, { "__typename": "Vessel", "id": Uuid::now_v7() }] });
    let resp = h.client.query(query, reps, None).await;
    assert_eq!(
        resp.data()["_entities"],
        json!([{ "id": id, "name": "Ever Given", "owner": { "id": owner } }, null])
    );
    let sdl = h
        .client
        .query("{ _service { sdl } }", json!({}), None)
        .await;
    let sdl = sdl.data()["_service"]["sdl"].as_str().unwrap().to_owned();
    assert!(
        sdl.contains("type User @key(fields: \"id\", resolvable: false)"),
        "{sdl}"
    );
    assert_eq!(
        sdl.trim(),
        shippy_kit::subgraph::sdl::<shippy_vessel::Vessel>().trim()
    );
}

async fn creations_are_published(backend: Backend) {
    let h = start(backend).await;
    let mut feed = h.bus.subscribe(streams::LOG).await.unwrap();
    let (token, owner) = h.user_token().await;
    let id = h.create(&token, "Ever Given", 500, 20_000).await;
    // The owner's registration is on the log stream too; the creation comes after it.
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = feed.next().await.unwrap();
            if event.kind != user::REGISTERED {
                return event;
            }
        }
    })
    .await
    .expect("event in time");
    assert_eq!(
        (event.service.as_str(), event.kind.as_str()),
        ("vessel", "vessel.created")
    );
    assert_eq!(event.user_id.as_deref(), Some(owner.as_str()));
    assert_eq!(event.payload["vessel_id"], id.as_str());
    assert_eq!(event.payload["capacity"], 500);
}

async fn an_unknown_owner_is_refused_and_nothing_stored(backend: Backend) {
    let wait = Duration::from_millis(300);
    let h = start_waiting(backend, wait).await;
    // A well-signed token for a user who never registered (a forged or stale subject).
    let stranger_id = Uuid::now_v7().to_string();
    let stranger = token_for(&stranger_id);
    let ghost = json!({ "input": { "name": "Ghost", "capacity": 5, "maxWeight": 100 } });
    let began = std::time::Instant::now();
    let resp = h.client.query(CREATE, ghost.clone(), Some(&stranger)).await;
    assert_eq!(resp.code(), Some("UNKNOWN_USER"), "{}", resp.body);
    assert_eq!(resp.body["data"], Value::Null, "{}", resp.body);
    assert!(
        began.elapsed() >= wait,
        "it waited for the registration before refusing"
    );
    assert_eq!(h.stored_vessels().await, 0, "nothing was stored");

    // A registration of the stranger by another service than the user subgraph is ignored.
    let mut forged = registration(&stranger_id);
    forged.service = "log".into();
    h.bus.publish(&forged).await.unwrap();

    // Registered users are still accepted (so the forged event, published before, was seen),
    // and the refused one is not remembered as known.
    let (token, _) = h.user_token().await;
    h.create(&token, "Real", 5, 100).await;
    assert_eq!(h.stored_vessels().await, 1);
    let again = h.client.query(CREATE, ghost, Some(&stranger)).await;
    assert_eq!(again.code(), Some("UNKNOWN_USER"));
    assert_eq!(h.stored_vessels().await, 1);
}

async fn a_just_registered_owner_is_waited_for(backend: Backend) {
    // The default wait (5s): a registration still on its way when createVessel arrives.
    let h = start(backend).await;
    let id = Uuid::now_v7().to_string();
    let token = token_for(&id);
    let create = {
        let client = h.client.clone();
        tokio::spawn(async move {
            client
                .query(
                    CREATE,
                    json!({ "input": { "name": "Fresh", "capacity": 5, "maxWeight": 100 } }),
                    Some(&token),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!create.is_finished(), "createVessel waits for the owner");
    h.bus.publish(&registration(&id)).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), create)
        .await
        .expect("answered once the registration arrived")
        .unwrap();
    assert_eq!(
        resp.data()["createVessel"]["owner"]["id"],
        id.as_str(),
        "{}",
        resp.body
    );
    assert_eq!(h.stored_vessels().await, 1);
}

async fn owners_of_vessels_from_before_the_upgrade_stay_known(backend: Backend) {
    use sea_orm::{
        ConnectionTrait, Database,
        sea_query::{Alias, Query},
    };
    use shippy_migrations::{MigratorTrait, vessel::Migrator};
    let db = TestDb::create(backend).await;
    let conn = Database::connect(&db.url).await.unwrap();
    // The schema as it was before `known_users` (and weights in kilograms), with a vessel in it.
    let before = u32::try_from(Migrator::migrations().len() - 2).unwrap();
    Migrator::up(&conn, Some(before)).await.unwrap();
    let owner = Uuid::now_v7();
    let insert = Query::insert()
        .into_table(Alias::new("vessels"))
        .columns(
            [
                "id",
                "name",
                "capacity",
                "max_weight",
                "available",
                "owner_id",
                "created_at",
            ]
            .map(Alias::new),
        )
        .values_panic([
            Uuid::now_v7().into(),
            "Old Faithful".into(),
            5.into(),
            100.0.into(),
            true.into(),
            owner.into(),
            chrono::Utc::now().into(),
        ])
        .to_owned();
    conn.execute(&insert).await.unwrap();
    conn.close().await.unwrap();

    // The upgrade (the subgraph migrates on start) knows the owner without any event, and waits not at all.
    let bus = testing::bus();
    let mut config = testing::subgraph_config(&db.url);
    config.events.projection_wait = Duration::ZERO;
    let run_bus = bus.clone();
    let server = TestServer::spawn(move |listener, shutdown| {
        shippy_kit::subgraph::run::<shippy_vessel::Vessel>(listener, config, run_bus, shutdown)
    })
    .await;
    let input = json!({ "input": { "name": "New", "capacity": 5, "maxWeight": 100 } });
    let resp = server
        .client()
        .query(CREATE, input.clone(), Some(&token_for(&owner.to_string())))
        .await;
    assert_eq!(
        resp.data()["createVessel"]["owner"]["id"],
        owner.to_string()
    );
    let stranger = server
        .client()
        .query(CREATE, input, Some(&token_for(&Uuid::now_v7().to_string())))
        .await;
    assert_eq!(stranger.code(), Some("UNKNOWN_USER"));
}

shippy_kit::backend_tests!(
    owners_of_vessels_from_before_the_upgrade_stay_known,
    an_unknown_owner_is_refused_and_nothing_stored,
    a_just_registered_owner_is_waited_for,
    create_requires_a_token_and_sets_the_owner,
    bad_inputs_name_the_field,
    find_available_picks_the_smallest_that_fits,
    vessels_page_in_creation_order,
    vessels_resolve_as_entities,
    creations_are_published,
);
