//! The log subgraph on 127.0.0.1:0: events published on the bus are stored once each and shown only to
//! the users they concern (admins see all), over HTTP and WebSocket, on SQLite and PostgreSQL; and, on
//! real Redis, entries a crashed consumer read but never acknowledged are taken over and stored once.

use shippy_contracts::streams;
use std::{collections::HashSet, sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt};
use redis::AsyncCommands;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use shippy_kit::{
    CancellationToken,
    auth::{Caller, JwtVerifier, SCOPE_ADMIN},
    config::ServerConfig,
    events::{Event, EventBus, RedisBus},
    live::Live,
    testing::{self, Backend, GraphQLClient, RedisNamespace, TestDb, TestServer, WsClient},
};
use uuid::Uuid;

struct Harness {
    server: TestServer,
    /// The log subgraph's state, for its live feed.
    state: shippy_log::State,
    bus: Arc<dyn EventBus>,
    _db: TestDb,
}

async fn start(backend: Backend) -> Harness {
    testing::init();
    let db = TestDb::create(backend).await;
    let bus = testing::bus();
    let (config, run_bus) = (testing::subgraph_config(&db.url), bus.clone());
    let (server, state) = TestServer::subgraph::<shippy_log::Log>(config, run_bus).await;
    Harness {
        server,
        state,
        bus,
        _db: db,
    }
}

fn token(user: &str, scopes: &[&str]) -> String {
    shippy_user::tokens::TokenIssuer::from_config(&testing::auth_config())
        .unwrap()
        .issue(
            user,
            "u@example.com",
            scopes.iter().map(|s| s.to_string()).collect(),
        )
        .unwrap()
        .token
}

fn event(service: &str, kind: &str, user: Option<&str>, n: i64) -> Event {
    shippy_contracts::log::event(
        service,
        kind,
        user.map(str::to_owned),
        format!("event {n}"),
        json!({ "n": n }),
    )
}

const LOGS: &str = "query($f: LogFilter, $first: Int, $after: ID) {
    logs(filter: $f, first: $first, after: $after) { id eventId service kind userId message payload createdAt }
}";

impl Harness {
    fn client(&self) -> GraphQLClient {
        self.server.client()
    }

    async fn logs(&self, token: &str, vars: Value) -> Vec<Value> {
        let resp = self.client().query(LOGS, vars, Some(token)).await;
        resp.data()["logs"].as_array().unwrap().clone()
    }

    /// Waits until the admin view holds `n` entries.
    async fn stored(&self, n: usize) {
        let admin = token(&Uuid::now_v7().to_string(), &[SCOPE_ADMIN]);
        for _ in 0..300 {
            if self.logs(&admin, json!({ "first": 100 })).await.len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        panic!("fewer than {n} entries were stored");
    }
}

async fn entries_are_stored_once_and_shown_to_their_user(backend: Backend) {
    let h = start(backend).await;
    let (u1, u2) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let events = [
        event("user", "user.registered", Some(&u1), 0),
        event("vessel", "vessel.created", Some(&u1), 1),
        event("vessel", "vessel.created", Some(&u2), 2),
        event("consignment", "consignment.created", Some(&u1), 3),
        event("user", "system.started", None, 4),
    ];
    for e in &events {
        h.bus.publish(e).await.unwrap();
    }
    // Delivered twice: stored once. The consumer handles the stream in order, so once the marker
    // published after the duplicate is stored, the duplicate has been handled too.
    h.bus.publish(&events[1]).await.unwrap();
    let marker = event("test", "test.marker", None, 5);
    h.bus.publish(&marker).await.unwrap();
    h.stored(6).await;
    let admin = token(&Uuid::now_v7().to_string(), &[SCOPE_ADMIN]);
    let all = h.logs(&admin, json!({})).await;
    assert_eq!(all.len(), 6, "the five events and the marker: {all:?}");
    assert_eq!(all[5]["id"], marker.event_id.to_string());

    let mine = h.logs(&token(&u1, &[]), json!({})).await;
    let ns: Vec<i64> = mine
        .iter()
        .map(|e| e["payload"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, vec![0, 1, 3], "own entries, in the order they happened");
    let first = &mine[0];
    assert_eq!(first["id"], events[0].event_id.to_string());
    assert_eq!(first["eventId"], first["id"]);
    assert_eq!(
        (
            first["service"].as_str(),
            first["kind"].as_str(),
            first["userId"].as_str()
        ),
        (Some("user"), Some("user.registered"), Some(u1.as_str()))
    );
    assert_eq!(first["message"], "event 0");
    assert_eq!(h.logs(&token(&u2, &[]), json!({})).await.len(), 1);

    // Filters and pages.
    let u1_token = token(&u1, &[]);
    let vessel_only = h
        .logs(&u1_token, json!({ "f": { "service": "vessel" } }))
        .await;
    assert_eq!(vessel_only.len(), 1);
    let by_kind = h
        .logs(&admin, json!({ "f": { "kind": "vessel.created" } }))
        .await;
    assert_eq!(by_kind.len(), 2);
    let cut = events[3].occurred_at.to_rfc3339();
    let before = h.logs(&u1_token, json!({ "f": { "until": cut } })).await;
    assert_eq!(before.len(), 2);
    let since = h.logs(&u1_token, json!({ "f": { "since": cut } })).await;
    assert_eq!(since.len(), 1);
    let page = h.logs(&u1_token, json!({ "first": 2 })).await;
    assert_eq!(page.len(), 2);
    let rest = h
        .logs(&u1_token, json!({ "first": 2, "after": page[1]["id"] }))
        .await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["payload"]["n"], 3);

    for (vars, field) in [
        (
            json!({ "f": { "since": cut, "until": cut } }),
            "filter.until",
        ),
        (
            json!({ "f": { "service": "s".repeat(101) } }),
            "filter.service",
        ),
        (json!({ "first": 0 }), "first"),
        (json!({ "after": "nope" }), "after"),
    ] {
        let resp = h.client().query(LOGS, vars, Some(&u1_token)).await;
        assert_eq!(resp.code(), Some("BAD_USER_INPUT"), "{}", resp.body);
        assert_eq!(resp.body["errors"][0]["extensions"]["field"], field);
    }
    let anon = h.client().query(LOGS, json!({}), None).await;
    assert_eq!(anon.code(), Some("UNAUTHENTICATED"));
}

async fn activity_is_the_users_own(backend: Backend) {
    let h = start(backend).await;
    let (u1, u2) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    for n in 0..3 {
        h.bus
            .publish(&event("user", "user.logged_in", Some(&u1), n))
            .await
            .unwrap();
    }
    h.stored(3).await;
    let query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id activity(first: 2) { payload } } } }";
    let rep = json!({ "r": [{ "__typename": "User", "id": u1 }] });
    let own = h
        .client()
        .query(query, rep.clone(), Some(&token(&u1, &[])))
        .await;
    assert_eq!(
        own.data()["_entities"][0]["activity"],
        json!([{ "payload": { "n": 2 } }, { "payload": { "n": 1 } }]),
        "latest first"
    );
    let other = h
        .client()
        .query(query, rep.clone(), Some(&token(&u2, &[])))
        .await;
    assert_eq!(other.code(), Some("FORBIDDEN"), "{}", other.body);
    let anon = h.client().query(query, rep, None).await;
    assert_eq!(anon.code(), Some("UNAUTHENTICATED"));

    let sdl = h
        .client()
        .query("{ _service { sdl } }", json!({}), None)
        .await;
    assert_eq!(
        sdl.data()["_service"]["sdl"].as_str().unwrap().trim(),
        shippy_kit::subgraph::sdl::<shippy_log::Log>().trim()
    );
}

async fn log_added_pushes_what_the_caller_may_see(backend: Backend) {
    let h = start(backend).await;
    let (u1, u2) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let url = h.server.url("/graphql");
    let sub = "subscription($s: String) { logAdded(service: $s) { kind userId payload } }";
    let (mut own, _) = WsClient::connect(&url, Some(&token(&u1, &[]))).await;
    own.subscribe("own", sub, json!({})).await;
    let (mut admin, _) = WsClient::connect(&url, Some(&token(&u2, &[SCOPE_ADMIN]))).await;
    admin
        .subscribe("vessels", sub, json!({ "s": "vessel" }))
        .await;
    testing::wait_live(&h.state.live, 2).await;

    h.bus
        .publish(&event("user", "user.registered", Some(&u2), 0))
        .await
        .unwrap();
    h.bus
        .publish(&event("vessel", "vessel.created", Some(&u2), 1))
        .await
        .unwrap();
    h.bus
        .publish(&event("user", "user.logged_in", Some(&u1), 2))
        .await
        .unwrap();

    let got = own.next_payload("own", Duration::from_secs(10)).await;
    assert_eq!(
        got["data"]["logAdded"]["payload"]["n"], 2,
        "only u1's entries"
    );
    let got = admin.next_payload("vessels", Duration::from_secs(10)).await;
    assert_eq!(
        got["data"]["logAdded"]["payload"]["n"], 1,
        "only vessel entries"
    );
    // Nothing else for u1 came in between: the next entry u1 gets is the one published last.
    h.bus
        .publish(&event("user", "user.logged_in", Some(&u1), 3))
        .await
        .unwrap();
    let got = own.next_payload("own", Duration::from_secs(10)).await;
    assert_eq!(got["data"]["logAdded"]["payload"]["n"], 3, "{got}");

    let (mut anon, _) = WsClient::connect(&url, None).await;
    anon.subscribe("x", sub, json!({})).await;
    let refused = anon.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{refused}"
    );
}

async fn a_lagging_subscriber_is_told_what_it_missed(backend: Backend) {
    testing::init();
    let db = TestDb::create(backend).await;
    let bus = testing::bus();
    let mut config = testing::subgraph_config(&db.url);
    config.events.live_capacity = 2;
    let service = shippy_log::LogService::start(config, bus.clone())
        .await
        .unwrap();
    let state = service.state().clone();
    let shutdown = CancellationToken::new();
    let feed = tokio::spawn(state.live.clone().run(bus.clone(), shutdown.clone()));
    state.live.following().await;
    let live = state.live.clone();
    // Sees what the feed broadcasts, so the test knows when the subscriber has fallen behind.
    let mut probe = live.subscribe();

    let user = Uuid::now_v7().to_string();
    let claims = JwtVerifier::from_config(&testing::auth_config())
        .unwrap()
        .verify(&token(&user, &[]))
        .unwrap();
    let schema =
        shippy_kit::subgraph::schema::<shippy_log::Log>(&ServerConfig::default(), Some(state));
    let mut stream = schema.execute_stream(
        async_graphql::Request::new("subscription { logAdded { payload } }")
            .data(Caller::User(claims)),
    );
    // Polling starts the subscription; nothing is there yet.
    testing::eventually("the subscription to start", Duration::from_secs(10), || {
        assert!(
            stream.next().now_or_never().is_none(),
            "nothing published yet"
        );
        std::future::ready(live.subscribers() == 2)
    })
    .await;
    for n in 0..5 {
        bus.publish(&event("user", "user.logged_in", Some(&user), n))
            .await
            .unwrap();
    }
    // Once the probe has the last event, the feed has broadcast all five: the subscriber has lagged.
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(item) = probe.next().await {
            if matches!(&item, Live::Event(e) if e.payload["n"] == 4) {
                break;
            }
        }
    })
    .await
    .expect("the feed broadcasts every event");
    let notice = stream.next().await.unwrap();
    let error = &notice.errors[0];
    let extensions = error.extensions.as_ref().unwrap();
    assert_eq!(
        extensions.get("code"),
        Some(&async_graphql::Value::from("SUBSCRIPTION_LAGGED"))
    );
    assert_eq!(
        extensions.get("missed"),
        Some(&async_graphql::Value::from(3))
    );
    // Then the subscription goes on with what is still buffered.
    for n in [3, 4] {
        let next = stream.next().await.unwrap().into_result().unwrap();
        assert_eq!(
            next.data.into_json().unwrap()["logAdded"]["payload"]["n"],
            n
        );
    }
    shutdown.cancel();
    feed.await.unwrap().unwrap();
}

/// A read's entries are stored in one statement that skips what is there already, and copies
/// within the batch itself (an event published twice).
async fn a_batch_is_stored_at_once_skipping_copies(backend: Backend) {
    testing::init();
    let test_db = TestDb::create(backend).await;
    let db = shippy_kit::db::connect_and_migrate::<shippy_migrations::log::Migrator>(&test_db.url)
        .await
        .expect("migrate");
    let (a, b, c) = (
        event("user", "user.registered", Some("u1"), 1),
        event("vessel", "vessel.created", None, 2),
        event("user", "user.registered", Some("u2"), 3),
    );
    let store_all = shippy_log::consumers::store_all;
    assert_eq!(store_all(&db, &[&a, &b, &a]).await.unwrap(), 2);
    assert_eq!(store_all(&db, &[&a, &c]).await.unwrap(), 1);
    assert_eq!(store_all(&db, &[&b]).await.unwrap(), 0);
    assert_eq!(store_all(&db, &[]).await.unwrap(), 0);
    let stored = shippy_log::entity::Entity::find().all(&db).await.unwrap();
    let mut ids: Vec<Uuid> = stored.iter().map(|row| row.event_id).collect();
    ids.sort();
    let mut expected = vec![a.event_id, b.event_id, c.event_id];
    expected.sort();
    assert_eq!(ids, expected);
    let first = stored
        .iter()
        .find(|row| row.event_id == a.event_id)
        .unwrap();
    assert_eq!(
        (first.kind.as_str(), first.user_id.as_deref()),
        ("user.registered", Some("u1"))
    );
    assert_eq!(first.created_at, a.occurred_at);
}

shippy_kit::backend_tests!(
    a_batch_is_stored_at_once_skipping_copies,
    entries_are_stored_once_and_shown_to_their_user,
    activity_is_the_users_own,
    log_added_pushes_what_the_caller_may_see,
    a_lagging_subscriber_is_told_what_it_missed,
);

/// A consumer that read entries and died before acknowledging them: the running log subgraph takes them
/// over after `claim_idle` and stores each once, even those delivered again.
#[tokio::test]
async fn entries_a_crashed_consumer_left_pending_are_stored_once() {
    testing::init();
    let ns = RedisNamespace::new();
    let db = TestDb::create(Backend::Postgres).await;
    let bus = ns.bus();
    let events: Vec<Event> = (0..10)
        .map(|n| event("user", "user.logged_in", Some("u1"), n))
        .collect();
    for e in &events {
        bus.publish(e).await.unwrap();
    }
    let mut crashed = bus
        .join_group(streams::LOG, "log", "crashed")
        .await
        .unwrap();
    let read = crashed
        .read_new(100, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(read.len(), 10);
    drop(crashed);

    let mut config = testing::subgraph_config(&db.url);
    config.events = ns.events();
    config.events.consumer.name = Some("rescuer".into());
    let run_bus: Arc<dyn EventBus> =
        Arc::new(RedisBus::open(&ns.url, config.events.clone()).unwrap());
    let _server = TestServer::spawn(move |listener, shutdown| {
        shippy_kit::subgraph::run::<shippy_log::Log>(listener, config, run_bus, shutdown)
    })
    .await;
    let conn = shippy_kit::db::connect(&db.url).await.unwrap();
    let count = || async {
        shippy_log::entity::Entity::find()
            .count(&conn)
            .await
            .unwrap()
    };
    let mut stored = 0;
    for _ in 0..300 {
        stored = count().await;
        if stored == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored, 10, "every entry taken over and stored");

    // Redelivered (a publish retried with the dedupe marker gone): still stored once.
    let mut redis = ns.connection().await;
    let _: () = redis
        .del(format!(
            "{{{}log}}:published:{}",
            ns.prefix, events[3].event_id
        ))
        .await
        .unwrap();
    bus.publish(&events[3]).await.unwrap();
    // Wait until the group has read the duplicate (lag 0) and acknowledged everything (nothing pending).
    let mut settled = false;
    for _ in 0..100 {
        let groups: redis::streams::StreamInfoGroupsReply = redis
            .xinfo_groups(format!("{}log", ns.prefix))
            .await
            .unwrap();
        let group = groups.groups.iter().find(|g| g.name == "log").unwrap();
        if group.lag == Some(0) && group.pending == 0 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        settled,
        "the duplicate was read and everything acknowledged"
    );
    // Acknowledged means handled: the log stores an entry before it acknowledges it.
    assert_eq!(count().await, 10);
    let ids: HashSet<Uuid> = shippy_log::entity::Entity::find()
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, events.iter().map(|e| e.event_id).collect());
}
