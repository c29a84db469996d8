//! The vessel subgraph over HTTP on 127.0.0.1:0, each scenario on SQLite and on a fresh PostgreSQL database.

use shippy_contracts::streams;
use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use serde_json::{Value, json};
use shippy_kit::{
    events::EventBus,
    testing::{self, Backend, GraphQLClient, TestDb, TestServer},
};
use uuid::Uuid;

/// A running vessel subgraph; the server is dropped (stopped) before its database.
struct Harness {
    _server: TestServer,
    client: GraphQLClient,
    bus: Arc<dyn EventBus>,
    _db: TestDb,
}

async fn start(backend: Backend) -> Harness {
    let db = TestDb::create(backend).await;
    let bus = testing::bus();
    let config = testing::subgraph_config(&db.url);
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
        _db: db,
    }
}

/// A token for a fresh user id, as the user subgraph would issue it.
fn user_token() -> (String, String) {
    let id = Uuid::now_v7().to_string();
    let token = testing::TestTokens::from_config(&testing::auth_config())
        .unwrap()
        .issue(&id, "o@example.com", vec![])
        .unwrap();
    (token.token, id)
}

const CREATE: &str = "mutation($input: CreateVesselInput!) {
    createVessel(input: $input) { id name capacity maxWeight available owner { id } createdAt }
}";
const FIND: &str =
    "query($c: Int!, $w: Float!) { findAvailableVessel(capacity: $c, maxWeight: $w) { id name } }";

impl Harness {
    async fn create(&self, token: &str, name: &str, capacity: i32, max_weight: f64) -> String {
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
    let input = json!({ "input": { "name": "Ever Given", "capacity": 500, "maxWeight": 20000.0 } });
    let anon = h.client.query(CREATE, input.clone(), None).await;
    assert_eq!(anon.code(), Some("UNAUTHENTICATED"));

    let (token, owner) = user_token();
    let resp = h.client.query(CREATE, input, Some(&token)).await;
    let vessel = &resp.data()["createVessel"];
    assert_eq!(vessel["name"], "Ever Given");
    assert_eq!(vessel["capacity"], 500);
    assert_eq!(vessel["maxWeight"], 20000.0);
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
    let (token, _) = user_token();
    let cases = [
        (
            json!({ "name": " ", "capacity": 1, "maxWeight": 1.0 }),
            "input.name",
        ),
        (
            json!({ "name": "x".repeat(101), "capacity": 1, "maxWeight": 1.0 }),
            "input.name",
        ),
        (
            json!({ "name": "A", "capacity": 0, "maxWeight": 1.0 }),
            "input.capacity",
        ),
        (
            json!({ "name": "A", "capacity": -3, "maxWeight": 1.0 }),
            "input.capacity",
        ),
        (
            json!({ "name": "A", "capacity": 2_000_000, "maxWeight": 1.0 }),
            "input.capacity",
        ),
        (
            json!({ "name": "A", "capacity": 1, "maxWeight": 0.0 }),
            "input.maxWeight",
        ),
        (
            json!({ "name": "A", "capacity": 1, "maxWeight": -1.5 }),
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
    let resp = h
        .client
        .query(FIND, json!({ "c": 0, "w": 1.0 }), None)
        .await;
    assert_eq!(resp.body["errors"][0]["extensions"]["field"], "capacity");
    let resp = h
        .client
        .query(FIND, json!({ "c": 1, "w": -1.0 }), None)
        .await;
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
    let (token, _) = user_token();
    let big = h.create(&token, "Big", 1000, 50_000.0).await;
    let small = h.create(&token, "Small", 10, 1_000.0).await;
    let heavy = h.create(&token, "Heavy", 20, 100_000.0).await;

    let fits = |c: i32, w: f64| {
        let client = h.client.clone();
        async move {
            client
                .query(FIND, json!({ "c": c, "w": w }), None)
                .await
                .data()["findAvailableVessel"]["id"]
                .clone()
        }
    };
    assert_eq!(fits(5, 500.0).await, small.as_str());
    assert_eq!(fits(10, 1_000.0).await, small.as_str(), "exact fit counts");
    assert_eq!(fits(15, 500.0).await, heavy.as_str());
    assert_eq!(fits(15, 60_000.0).await, heavy.as_str());
    assert_eq!(
        fits(500, 60_000.0).await,
        Value::Null,
        "capacity and weight must both suffice"
    );
    assert_eq!(fits(500, 1_000.0).await, big.as_str());
    assert_eq!(fits(5000, 1.0).await, Value::Null);
}

async fn vessels_page_in_creation_order(backend: Backend) {
    let h = start(backend).await;
    let (token, _) = user_token();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(h.create(&token, &format!("V{n}"), 10, 10.0).await);
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
    let (token, owner) = user_token();
    let id = h.create(&token, "Ever Given", 500, 20_000.0).await;
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
    let (token, owner) = user_token();
    let id = h.create(&token, "Ever Given", 500, 20_000.0).await;
    let event = tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .expect("event in time")
        .unwrap();
    assert_eq!(
        (event.service.as_str(), event.kind.as_str()),
        ("vessel", "vessel.created")
    );
    assert_eq!(event.user_id.as_deref(), Some(owner.as_str()));
    assert_eq!(event.payload["vessel_id"], id.as_str());
    assert_eq!(event.payload["capacity"], 500);
}

shippy_kit::backend_tests!(
    create_requires_a_token_and_sets_the_owner,
    bad_inputs_name_the_field,
    find_available_picks_the_smallest_that_fits,
    vessels_page_in_creation_order,
    vessels_resolve_as_entities,
    creations_are_published,
);
