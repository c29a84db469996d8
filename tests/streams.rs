//! Separate `shippy subgraph` processes sharing PostgreSQL and Redis, as production runs them: two
//! consignment replicas and one each of user, vessel and log.
//!
//! - The flow: a consignment created on one replica is pushed `ASSIGNED` to a subscriber of the other;
//!   one that fits no vessel becomes `UNASSIGNABLE`; many created at once across both replicas never
//!   overbook the vessel; the carrier moves it along; the activity log holds every event once; nobody
//!   reads, moves or hears about another user's consignments.
//! - No loss: with the consignment subgraph's Redis connection cut (a proxy taken down), consignments are
//!   still created, their events wait in the outbox, and once Redis is reachable again every event reaches
//!   the log store exactly once.

mod support;

use std::{collections::HashSet, time::Duration};

use futures::future::join_all;
use redis::AsyncCommands;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use shippy_kit::testing::{
    Backend, GraphQLClient, RedisNamespace, TcpProxy, TestDb, WsClient, test_redis_url,
};
use support::{Running, config_file, subgraph};

const REGISTER: &str =
    "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }";
const VESSEL: &str = "mutation($c: Int!, $w: Int!) { createVessel(input: {name: \"Maersk\", capacity: $c, maxWeight: $w}) { id } }";
const ONE: &str = "query($id: ID!) { consignment(id: $id) { id status vessel { id } } }";
const WATCH: &str = "subscription($id: ID) { consignmentUpdated(id: $id) { id status } }";
const UPDATE: &str = "mutation($id: ID!, $s: ConsignmentStatus!) { updateConsignmentStatus(id: $id, status: $s) { status } }";

async fn register(users: &GraphQLClient, name: &str) -> (String, String) {
    let input = json!({ "input": {
        "name": name,
        "email": format!("{}-{}@example.com", name.to_lowercase(), uuid::Uuid::new_v4().simple()),
        "password": "correct horse",
    } });
    let resp = users.query(REGISTER, input, None).await;
    let data = &resp.data()["register"];
    (
        data["token"].as_str().unwrap().to_owned(),
        data["user"]["id"].as_str().unwrap().to_owned(),
    )
}

/// `containers` containers weighing `weight` in all.
fn ship_vars(containers: usize, weight: i32) -> (String, Value) {
    let list: Vec<String> = (0..containers)
        .map(|i| format!("{{customerId: \"c{i}\", origin: \"Rotterdam\"}}"))
        .collect();
    let query = format!(
        "mutation($w: Int!) {{ createConsignment(input: {{description: \"Tea\", weight: $w, containers: [{}]}}) {{ id }} }}",
        list.join(", ")
    );
    (query, json!({ "w": weight }))
}

async fn ship(client: &GraphQLClient, token: &str, containers: usize, weight: i32) -> String {
    let (query, vars) = ship_vars(containers, weight);
    let resp = client.query(&query, vars, Some(token)).await;
    resp.data()["createConsignment"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until consignment `id` has left `PENDING`; returns its status.
async fn settled(client: &GraphQLClient, token: &str, id: &str) -> String {
    for _ in 0..400 {
        let resp = client.query(ONE, json!({ "id": id }), Some(token)).await;
        let status = resp.data()["consignment"]["status"]
            .as_str()
            .unwrap()
            .to_owned();
        if status != "PENDING" {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("consignment {id} stayed PENDING");
}

/// The statuses `ws` is pushed for subscription `sub` until `id` reaches `last`.
async fn statuses_until(ws: &mut WsClient, sub: &str, id: &str, last: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some(last) {
        let payload = ws.next_payload(sub, Duration::from_secs(20)).await;
        let c = &payload["data"]["consignmentUpdated"];
        if c["id"] == id {
            seen.push(c["status"].as_str().unwrap().to_owned());
        }
    }
    seen
}

#[tokio::test]
async fn separate_processes_run_the_flow_over_postgres_and_redis() {
    let ns = RedisNamespace::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let dbs = [
        TestDb::create(Backend::Postgres).await,
        TestDb::create(Backend::Postgres).await,
        TestDb::create(Backend::Postgres).await,
        TestDb::create(Backend::Postgres).await,
    ];
    let [user_db, vessel_db, consignment_db, log_db] = &dbs;
    let start = |name: &'static str, replica: &'static str, db: &TestDb| {
        Running::start(
            subgraph(name, replica, &db.url, &ns.url, &ns.prefix, &config),
            name,
        )
    };
    // Both consignment replicas start at once on the same database.
    let (user, vessel, cons_a, cons_b, log) = tokio::join!(
        start("user", "a", user_db),
        start("vessel", "a", vessel_db),
        start("consignment", "a", consignment_db),
        start("consignment", "b", consignment_db),
        start("log", "a", log_db),
    );
    let (a, b) = (cons_a.client("consignment"), cons_b.client("consignment"));

    let users = user.client("user");
    let (ada, ada_id) = register(&users, "Ada").await;
    let (bob, _) = register(&users, "Bob").await;
    let (carol, _) = register(&users, "Carol").await;
    let vessel_id = vessel
        .client("vessel")
        .query(VESSEL, json!({ "c": 4, "w": 100 }), Some(&carol))
        .await
        .data()["createVessel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Ada and Bob watch all their consignments on replica B.
    let (mut ada_ws, ack) = WsClient::connect(&cons_b.url("consignment"), Some(&ada)).await;
    assert_eq!(ack["type"], "connection_ack");
    ada_ws.subscribe("all", WATCH, json!({})).await;
    let (mut bob_ws, _) = WsClient::connect(&cons_b.url("consignment"), Some(&bob)).await;
    bob_ws.subscribe("all", WATCH, json!({})).await;
    cons_b.wait_for_live_subscribers("consignment", 2.0).await;

    // Created on replica A, seen assigned on replica B.
    let first = ship(&a, &ada, 2, 50).await;
    assert_eq!(
        statuses_until(&mut ada_ws, "all", &first, "ASSIGNED").await,
        ["PENDING", "ASSIGNED"]
    );
    let resp = b.query(ONE, json!({ "id": first }), Some(&ada)).await;
    assert_eq!(
        resp.data()["consignment"]["vessel"]["id"],
        vessel_id.as_str()
    );
    let too_big = ship(&a, &ada, 3, 10).await;
    assert_eq!(
        statuses_until(&mut ada_ws, "all", &too_big, "UNASSIGNABLE").await,
        ["PENDING", "UNASSIGNABLE"]
    );

    // Two containers of room left; eight single-container consignments at once, through both replicas.
    let burst: Vec<String> = join_all((0..8).map(|i| {
        let client = if i % 2 == 0 { a.clone() } else { b.clone() };
        let ada = ada.clone();
        async move { ship(&client, &ada, 1, 1).await }
    }))
    .await;
    let mut outcomes = Vec::new();
    for id in &burst {
        outcomes.push(settled(&b, &ada, id).await);
    }
    let assigned = outcomes.iter().filter(|s| *s == "ASSIGNED").count();
    assert_eq!(
        (assigned, outcomes.len() - assigned),
        (2, 6),
        "never past capacity: {outcomes:?}"
    );
    let remaining = vessel
        .client("vessel")
        .query(
            "query($id: ID!) { vessel(id: $id) { remainingCapacity } }",
            json!({ "id": vessel_id }),
            None,
        )
        .await;
    assert_eq!(remaining.data()["vessel"]["remainingCapacity"], 0);

    // Bob sees, moves and hears nothing of Ada's.
    let peek = a.query(ONE, json!({ "id": first }), Some(&bob)).await;
    assert_eq!(peek.data()["consignment"], Value::Null);
    let moved = a
        .query(
            UPDATE,
            json!({ "id": first, "s": "IN_TRANSIT" }),
            Some(&bob),
        )
        .await;
    assert_eq!(moved.code(), Some("FORBIDDEN"));
    let bobs = ship(&b, &bob, 1, 1).await;
    let heard = bob_ws.next_payload("all", Duration::from_secs(20)).await;
    assert_eq!(
        heard["data"]["consignmentUpdated"]["id"],
        bobs.as_str(),
        "the first thing Bob hears is his own"
    );

    // The carrier moves Ada's first consignment along on replica A; Ada hears it on replica B.
    let moved = a
        .query(
            UPDATE,
            json!({ "id": first, "s": "IN_TRANSIT" }),
            Some(&carol),
        )
        .await;
    assert_eq!(
        moved.data()["updateConsignmentStatus"]["status"],
        "IN_TRANSIT"
    );
    assert_eq!(
        statuses_until(&mut ada_ws, "all", &first, "IN_TRANSIT").await,
        ["IN_TRANSIT"]
    );

    // The activity log (its own process) holds each of Ada's consignment creations once.
    let logs = log.client("log");
    let query = "{ logs(filter: {kind: \"consignment.created\"}, first: 100) { eventId payload } }";
    let mut entries = Vec::new();
    for _ in 0..400 {
        entries = logs.query(query, json!({}), Some(&ada)).await.data()["logs"]
            .as_array()
            .unwrap()
            .clone();
        if entries.len() >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let consignments: HashSet<&str> = entries
        .iter()
        .map(|e| e["payload"]["consignment_id"].as_str().unwrap())
        .collect();
    assert_eq!(entries.len(), 10, "2 + 8 creations, once each");
    assert_eq!(consignments.len(), 10);
    let activity = logs
        .query(
            "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { activity(first: 1) { kind } } } }",
            json!({ "r": [{ "__typename": "User", "id": ada_id }] }),
            Some(&bob),
        )
        .await;
    assert_eq!(activity.code(), Some("FORBIDDEN"));

    for running in [user, vessel, cons_a, cons_b, log] {
        assert!(
            running.stop("-TERM").await,
            "a process did not stop cleanly"
        );
    }
}

async fn count(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

#[tokio::test]
async fn no_event_is_lost_while_redis_is_unreachable() {
    let ns = RedisNamespace::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let (consignment_db, log_db) = (
        TestDb::create(Backend::Postgres).await,
        TestDb::create(Backend::Postgres).await,
    );
    // The consignment subgraph reaches Redis only through the proxy; the log subgraph directly.
    let proxy = TcpProxy::to_test_redis().await;
    let (consignments, log) = tokio::join!(
        Running::start(
            subgraph(
                "consignment",
                "a",
                &consignment_db.url,
                &proxy.redis_url(),
                &ns.prefix,
                &config
            ),
            "consignment",
        ),
        Running::start(
            subgraph(
                "log",
                "a",
                &log_db.url,
                &test_redis_url(),
                &ns.prefix,
                &config
            ),
            "log",
        ),
    );
    let token = shippy_user::tokens::TokenIssuer::from_config(&shippy_kit::config::AuthConfig {
        secret: Some(shippy_kit::config::Secret::new(support::SECRET)),
        ..Default::default()
    })
    .unwrap()
    .issue(&uuid::Uuid::now_v7().to_string(), "ada@example.com", vec![])
    .unwrap()
    .token;
    let client = consignments.client("consignment");
    let cdb = shippy_kit::db::connect(&consignment_db.url).await.unwrap();
    let ldb = shippy_kit::db::connect(&log_db.url).await.unwrap();
    let stored = "SELECT count(*) FROM log_entries WHERE kind = 'consignment.created'";

    // One before the outage, so the path is known to work.
    ship(&client, &token, 1, 1).await;
    for _ in 0..200 {
        if count(&ldb, stored).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&ldb, stored).await, 1);

    proxy.set_up(false);
    let mut created = HashSet::new();
    for _ in 0..10 {
        created.insert(ship(&client, &token, 1, 1).await);
    }
    // Redis is out of reach: the subgraph says it is not ready, the events wait in its outbox.
    let ready = reqwest::get(
        consignments
            .url("consignment")
            .replace("/graphql", "/ready"),
    )
    .await
    .unwrap();
    assert_eq!(ready.status(), 503);
    // The relay tried (and failed) at least twice during the outage before anything is counted.
    let retried = "SELECT count(*) FROM outbox WHERE published_at IS NULL AND attempts >= 2";
    for _ in 0..300 {
        if count(&cdb, retried).await >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(count(&cdb, retried).await >= 1, "the relay keeps trying");
    assert_eq!(
        count(
            &cdb,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        .await,
        20,
        "a consignment event and a log event per creation, all waiting"
    );
    assert_eq!(count(&ldb, stored).await, 1);

    proxy.set_up(true);
    for _ in 0..400 {
        if count(&ldb, stored).await >= 11 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&ldb, stored).await, 11, "every event arrived");
    // Settled: the outbox is empty and the log's group has read and acknowledged everything, so no
    // duplicate is still on its way.
    let unsent = "SELECT count(*) FROM outbox WHERE published_at IS NULL";
    let mut redis = ns.connection().await;
    let mut settled = false;
    for _ in 0..300 {
        let groups: redis::streams::StreamInfoGroupsReply = redis
            .xinfo_groups(format!("{}log", ns.prefix))
            .await
            .unwrap();
        let log_group = groups.groups.iter().find(|g| g.name == "log");
        if count(&cdb, unsent).await == 0
            && log_group.is_some_and(|g| g.lag == Some(0) && g.pending == 0)
        {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(settled, "everything published, read and acknowledged");
    assert_eq!(count(&ldb, stored).await, 11, "and only once");
    let found: i64 = count(
        &ldb,
        &format!(
            "SELECT count(*) FROM log_entries WHERE payload->>'consignment_id' IN ({})",
            created
                .iter()
                .map(|id| format!("'{id}'"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    )
    .await;
    assert_eq!(
        found, 10,
        "the ones created during the outage are all there"
    );

    // Published once each, too: the log stream holds 11 consignment.created entries, no more.
    let entries: redis::streams::StreamRangeReply =
        redis.xrange_all(format!("{}log", ns.prefix)).await.unwrap();
    let kinds: Vec<String> = entries
        .ids
        .iter()
        .filter_map(|e| e.get::<String>("kind"))
        .filter(|k| k == "consignment.created")
        .collect();
    assert_eq!(kinds.len(), 11);

    cdb.close().await.unwrap();
    ldb.close().await.unwrap();
    assert!(consignments.stop("-TERM").await);
    assert!(log.stop("-TERM").await);
}
