//! The Redis-streams bus against the real test Redis, each test under its own key prefix: live feeds,
//! publishing once, consumer groups (ack, take-over of abandoned entries, dead letters, a group that
//! vanished), stream bounds, dead letters left under their pre-hash-tag key, and an outage: the bus reports
//! it quickly, and the outbox relay keeps events until Redis is back and then publishes each exactly once.
//!
//! The suite runs twice: each test on the shared test Redis, and all of them in one go on a Redis Cluster
//! of six `redis-server`s of this binary's own ([`RedisCluster`]), where a script or `MULTI` whose keys
//! left their stream's slot would fail with `CROSSSLOT`. (The outage tests cut a TCP proxy in front of one
//! server, which has no cluster counterpart; `redis_faults` kills a cluster primary instead.)

use std::{collections::HashSet, sync::Arc, time::Duration};

use futures::StreamExt;
use redis::AsyncCommands;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use shippy_kit::{
    CancellationToken,
    config::{EventsConfig, RelayConfig},
    consumer::{Consumer, HandleError, Handler},
    db,
    events::{BusError, Event, EventBus, RedisBus},
    outbox::{self, Outbox, entity},
    testing::{self, Backend, RedisCluster, RedisNamespace, TcpProxy, TestDb},
};
use shippy_migrations::MigratorTrait;
use tokio::time::Instant;

/// Each suite test on the shared test Redis (one `#[tokio::test]` each), and all of them, one after the
/// other, on one Redis Cluster started for the purpose (stopped at the end, also when a test fails).
macro_rules! on_single_server_and_cluster {
    ($($name:ident),* $(,)?) => {
        mod single_server {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::RedisNamespace::new()).await
                }
            )*
        }

        #[tokio::test]
        async fn the_suite_on_a_redis_cluster() {
            testing::init();
            let cluster = RedisCluster::start().await;
            $(
                println!("on the cluster: {}", stringify!($name));
                $name(cluster.namespace()).await;
            )*
        }
    };
}

on_single_server_and_cluster!(
    the_live_feed_follows_from_now_on,
    a_retried_publish_adds_the_event_once,
    streams_are_trimmed_to_about_max_len,
    abandoned_entries_are_taken_over_with_their_delivery_count,
    failing_and_undecodable_entries_end_in_the_dead_letter_stream,
    a_consumer_group_that_vanished_is_created_again,
    entries_carry_the_traceparent_and_groups_report_their_backlog,
    dead_letters_under_the_old_key_name_are_moved_and_listed,
    a_batch_keeps_each_stream_in_order_past_a_failed_event,
);

fn event(n: i64) -> Event {
    Event::new(
        "log",
        "test",
        "test.happened",
        Some("u1".into()),
        format!("event {n}"),
        serde_json::json!({ "n": n }),
    )
}

fn number(event: &Event) -> i64 {
    event.payload["n"].as_i64().unwrap()
}

async fn xlen(ns: &RedisNamespace, stream: &str) -> u64 {
    let mut conn = ns.connection().await;
    conn.xlen(format!("{}{stream}", ns.prefix)).await.unwrap()
}

async fn pending_count(ns: &RedisNamespace, stream: &str, group: &str) -> u64 {
    let mut conn = ns.connection().await;
    let reply: redis::streams::StreamPendingReply = conn
        .xpending(format!("{}{stream}", ns.prefix), group)
        .await
        .unwrap();
    reply.count() as u64
}

async fn the_live_feed_follows_from_now_on(ns: RedisNamespace) {
    testing::init();
    let bus = ns.bus();
    bus.publish(&event(0)).await.unwrap();
    let mut feed = bus.subscribe("log").await.unwrap();
    for n in 1..=3 {
        bus.publish(&event(n)).await.unwrap();
    }
    for n in 1..=3 {
        let got = tokio::time::timeout(Duration::from_secs(5), feed.next())
            .await
            .expect("event in time")
            .unwrap();
        assert_eq!(
            number(&got),
            n,
            "events before the subscription are not replayed"
        );
    }
    // Another stream is not mixed in.
    bus.publish(&Event::new(
        "consignment",
        "test",
        "x",
        None,
        "",
        serde_json::json!({ "n": 99 }),
    ))
    .await
    .unwrap();
    bus.publish(&event(4)).await.unwrap();
    assert_eq!(number(&feed.next().await.unwrap()), 4);
}

async fn a_retried_publish_adds_the_event_once(ns: RedisNamespace) {
    testing::init();
    let bus = ns.bus();
    let e = event(1);
    bus.publish(&e).await.unwrap();
    bus.publish(&e).await.unwrap();
    assert_eq!(xlen(&ns, "log").await, 1);
    // The marker shares the stream's slot (a hash tag on the stream's own name).
    let mut conn = ns.connection().await;
    let marker = format!("{{{}log}}:published:{}", ns.prefix, e.event_id);
    assert!(conn.exists::<_, bool>(&marker).await.unwrap(), "{marker}");

    // With the window off, the marker is not kept and a retry adds the event again (consumers still ignore
    // it by event id).
    let no_dedupe = RedisBus::open(
        &ns.url,
        EventsConfig {
            dedupe_window: Duration::ZERO,
            ..ns.events()
        },
    )
    .unwrap();
    let e = event(2);
    no_dedupe.publish(&e).await.unwrap();
    no_dedupe.publish(&e).await.unwrap();
    assert_eq!(xlen(&ns, "log").await, 3);
}

/// The numbers of the events in `stream`, oldest first.
async fn numbers_in(ns: &RedisNamespace, stream: &str) -> Vec<i64> {
    let mut conn = ns.connection().await;
    let entries: redis::streams::StreamRangeReply = conn.xrange_all(ns.key(stream)).await.unwrap();
    entries
        .ids
        .iter()
        .map(|entry| {
            let json: String = entry.get("event").unwrap();
            number(&serde_json::from_str(&json).unwrap())
        })
        .collect()
}

/// A batch goes in one pipeline per stream: an event that fails (here its dedupe marker is a key of
/// the wrong type) is reported as failed, the events after it in its stream refuse rather than enter
/// the stream ahead of it, and another stream's events are not held up. Published again, the batch
/// completes in order, and what was added before is not added twice.
async fn a_batch_keeps_each_stream_in_order_past_a_failed_event(ns: RedisNamespace) {
    testing::init();
    let bus = ns.bus();
    let other = |n| {
        Event::new(
            "consignment",
            "test",
            "test.happened",
            None,
            "n",
            serde_json::json!({ "n": n }),
        )
    };
    let batch = [event(1), event(2), event(3), other(4)];
    let marker = format!("{{{}log}}:published:{}", ns.prefix, batch[1].event_id);
    let mut conn = ns.connection().await;
    conn.hset::<_, _, _, ()>(&marker, "not", "a marker")
        .await
        .unwrap();

    let results = bus.publish_batch(&batch).await;
    let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(ok, [true, false, false, true], "{results:?}");
    assert!(
        matches!(&results[2], Err(BusError::Command(m)) if m.contains("UNORDERED")),
        "{results:?}"
    );
    assert_eq!(numbers_in(&ns, "log").await, [1]);
    assert_eq!(numbers_in(&ns, "consignment").await, [4]);

    conn.del::<_, ()>(&marker).await.unwrap();
    let results = bus.publish_batch(&batch).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(results.len(), 4);
    assert_eq!(numbers_in(&ns, "log").await, [1, 2, 3]);
    assert_eq!(numbers_in(&ns, "consignment").await, [4]);
}

async fn streams_are_trimmed_to_about_max_len(ns: RedisNamespace) {
    testing::init();
    let bus = RedisBus::open(
        &ns.url,
        EventsConfig {
            max_len: 10,
            dedupe_window: Duration::ZERO,
            ..ns.events()
        },
    )
    .unwrap();
    for n in 0..600 {
        bus.publish(&event(n)).await.unwrap();
    }
    // `MAXLEN ~` trims whole radix-tree nodes (100 entries by default), so the bound is approximate.
    let len = xlen(&ns, "log").await;
    assert!((10..=200).contains(&len), "stream holds {len} entries");
}

async fn abandoned_entries_are_taken_over_with_their_delivery_count(ns: RedisNamespace) {
    testing::init();
    let bus = ns.bus();
    for n in 0..3 {
        bus.publish(&event(n)).await.unwrap();
    }
    // A consumer reads everything and dies before acknowledging.
    let mut crashed = bus.join_group("log", "g", "crashed").await.unwrap();
    let read = crashed
        .read_new(10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(read.len(), 3);
    assert!(read.iter().all(|d| d.deliveries == 1));
    drop(crashed);

    let mut rescuer = bus.join_group("log", "g", "rescuer").await.unwrap();
    assert!(
        rescuer
            .read_new(10, Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty(),
        "delivered entries are not new to the group"
    );
    let idle = Duration::from_millis(300);
    assert!(rescuer.claim_idle(idle, 10).await.unwrap().is_empty());
    // Redis counts the idle time on its own clock: ask until it lets the entries go.
    let deadline = Instant::now() + Duration::from_secs(10);
    let claimed = loop {
        let claimed = rescuer.claim_idle(idle, 10).await.unwrap();
        if !claimed.is_empty() {
            break claimed;
        }
        assert!(
            Instant::now() < deadline,
            "the entries were never claimable"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let numbers: Vec<i64> = claimed
        .iter()
        .map(|d| number(d.event.as_ref().unwrap()))
        .collect();
    assert_eq!(numbers, vec![0, 1, 2]);
    assert!(
        claimed.iter().all(|d| d.deliveries == 2),
        "{:?}",
        claimed.iter().map(|d| d.deliveries).collect::<Vec<_>>()
    );
    rescuer
        .ack(&claimed.iter().map(|d| d.id.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(pending_count(&ns, "log", "g").await, 0);
}

/// Counts what it handled; fails every event whose `n` is negative.
#[derive(Default)]
struct Recorder {
    seen: std::sync::Mutex<Vec<i64>>,
}

#[async_trait::async_trait]
impl Handler for Recorder {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        let n = number(event);
        if n < 0 {
            return Err(HandleError::Retry(format!("cannot handle {n} yet")));
        }
        self.seen.lock().unwrap().push(n);
        Ok(())
    }
}

async fn dead_entries(ns: &RedisNamespace) -> Vec<redis::streams::StreamId> {
    let mut conn = ns.connection().await;
    let reply: redis::streams::StreamRangeReply = conn
        .xrange_all(format!("{{{}log}}:dead", ns.prefix))
        .await
        .unwrap();
    reply.ids
}

async fn failing_and_undecodable_entries_end_in_the_dead_letter_stream(ns: RedisNamespace) {
    testing::init();
    let bus = ns.bus();
    let mut config = ns.events().consumer;
    config.claim_idle = Duration::from_millis(200);
    config.max_deliveries = 2;
    config.name = Some("c1".into());
    let recorder = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        Consumer::new(bus.clone(), "log", "g", recorder.clone(), config).run(shutdown.clone()),
    );

    bus.publish(&event(-1)).await.unwrap();
    bus.publish(&event(1)).await.unwrap();
    let mut conn = ns.connection().await;
    let _: String = conn
        .xadd(format!("{}log", ns.prefix), "*", &[("garbage", "1")])
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(15);
    let dead = loop {
        let dead = dead_entries(&ns).await;
        if dead.len() >= 2 || Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 2, "{dead:?}");
    let reasons: Vec<String> = dead.iter().map(|d| d.get("reason").unwrap()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("undecodable")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("not handled after 2 deliveries")),
        "{reasons:?}"
    );
    let failed = dead
        .iter()
        .find(|d| d.contains_key("event"))
        .expect("the failing event is kept");
    let kept: Event = serde_json::from_str(&failed.get::<String>("event").unwrap()).unwrap();
    assert_eq!(number(&kept), -1);
    assert_eq!(failed.get::<u64>("deliveries"), Some(3));
    assert_eq!(failed.get::<String>("group").as_deref(), Some("g"));
    assert_eq!(*recorder.seen.lock().unwrap(), vec![1]);
    assert_eq!(pending_count(&ns, "log", "g").await, 0);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the consumer stops on shutdown")
        .unwrap();
}

async fn a_consumer_group_that_vanished_is_created_again(ns: RedisNamespace) {
    testing::init();
    let bus = ns.bus();
    let recorder = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    let mut config = ns.events().consumer;
    config.name = Some("c1".into());
    let task = tokio::spawn(
        Consumer::new(bus.clone(), "log", "g", recorder.clone(), config).run(shutdown.clone()),
    );
    bus.publish(&event(1)).await.unwrap();
    wait_for(|| recorder.seen.lock().unwrap().len() == 1).await;

    // As after a Redis restart without persistence: the stream and its groups are gone.
    let mut conn = ns.connection().await;
    let _: () = conn.del(format!("{}log", ns.prefix)).await.unwrap();
    // Published only once the consumer has noticed and created its group (and the stream) again.
    let key = format!("{}log", ns.prefix);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let groups: redis::RedisResult<redis::streams::StreamInfoGroupsReply> =
            conn.xinfo_groups(&key).await;
        if groups.is_ok_and(|g| g.groups.iter().any(|g| g.name == "g")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the group was never created again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bus.publish(&event(2)).await.unwrap();
    wait_for(|| recorder.seen.lock().unwrap().len() == 2).await;
    assert_eq!(*recorder.seen.lock().unwrap(), vec![1, 2]);
    shutdown.cancel();
    task.await.unwrap();
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(15), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("condition met in time");
}

#[tokio::test]
async fn an_unreachable_redis_is_reported_quickly_and_recovered_from() {
    testing::init();
    let ns = RedisNamespace::new();
    let proxy = TcpProxy::to_test_redis().await;
    let bus = RedisBus::open(&proxy.redis_url(), ns.events()).unwrap();
    bus.ping().await.unwrap();
    proxy.set_up(false);
    let started = Instant::now();
    let err = bus.publish(&event(1)).await.unwrap_err();
    assert!(matches!(err, BusError::Unavailable(_)), "{err}");
    assert!(bus.ping().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    proxy.set_up(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while bus.publish(&event(2)).await.is_err() {
        assert!(Instant::now() < deadline, "the bus never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(xlen(&ns, "log").await, 1);
}

/// Only the shared outbox migration, as every subgraph has it.
struct OutboxOnly;

impl MigratorTrait for OutboxOnly {
    fn migrations() -> Vec<Box<dyn shippy_migrations::MigrationTrait>> {
        shippy_migrations::outbox::migrations()
    }
}

async fn pending_rows(db: &DatabaseConnection) -> u64 {
    entity::Entity::find()
        .filter(entity::Column::PublishedAt.is_null())
        .count(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_relay_keeps_events_while_redis_is_down_and_publishes_each_once() {
    testing::init();
    let ns = RedisNamespace::new();
    let test_db = TestDb::create(Backend::Postgres).await;
    let db = db::connect_and_migrate::<OutboxOnly>(&test_db.url)
        .await
        .unwrap();
    let proxy = TcpProxy::to_test_redis().await;
    let bus: Arc<dyn EventBus> = Arc::new(RedisBus::open(&proxy.redis_url(), ns.events()).unwrap());
    let outbox = Outbox::new();
    let config = RelayConfig {
        poll_interval: Duration::from_millis(50),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        ..RelayConfig::default()
    };
    let shutdown = CancellationToken::new();
    let relay = tokio::spawn(outbox.relay(db.clone(), bus, config).run(shutdown.clone()));

    proxy.set_up(false);
    let mut recorded = HashSet::new();
    for n in 0..20 {
        let e = event(n);
        recorded.insert(e.event_id);
        outbox::record(&db, &e).await.unwrap();
        outbox.wake();
    }
    // The relay keeps trying (the oldest row counts its attempts); nothing is marked sent while Redis is
    // unreachable.
    let oldest = || async {
        entity::Entity::find()
            .order_by_asc(entity::Column::Id)
            .one(&db)
            .await
            .unwrap()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while oldest().await.attempts < 2 {
        assert!(Instant::now() < deadline, "the relay stopped trying");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pending_rows(&db).await, 20);
    let first = oldest().await;
    assert!(first.last_error.is_some());

    proxy.set_up(true);
    tokio::time::timeout(Duration::from_secs(15), async {
        while pending_rows(&db).await > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every row published once Redis is back");

    let mut conn = ns.connection().await;
    let entries: redis::streams::StreamRangeReply =
        conn.xrange_all(format!("{}log", ns.prefix)).await.unwrap();
    let published: Vec<uuid::Uuid> = entries
        .ids
        .iter()
        .map(|e| {
            serde_json::from_str::<Event>(&e.get::<String>("event").unwrap())
                .unwrap()
                .event_id
        })
        .collect();
    assert_eq!(published.len(), 20, "each event exactly once");
    let order: Vec<i64> = entries
        .ids
        .iter()
        .map(|e| number(&serde_json::from_str(&e.get::<String>("event").unwrap()).unwrap()))
        .collect();
    assert_eq!(order, (0..20).collect::<Vec<_>>(), "in the order recorded");
    assert_eq!(published.iter().copied().collect::<HashSet<_>>(), recorded);
    shutdown.cancel();
    relay.await.unwrap();
}

async fn entries_carry_the_traceparent_and_groups_report_their_backlog(ns: RedisNamespace) {
    testing::init();
    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // Both publish paths: the once-only script (the default) and plain XADD (no dedupe window).
    let plain = RedisBus::open(
        &ns.url,
        EventsConfig {
            dedupe_window: Duration::ZERO,
            ..ns.events()
        },
    )
    .unwrap();
    let buses: [Arc<dyn EventBus>; 2] = [ns.bus(), Arc::new(plain)];
    let mut reader = buses[0].join_group("log", "g", "c1").await.unwrap();
    for (n, bus) in buses.iter().enumerate() {
        let mut traced = event(n as i64);
        traced.traceparent = Some(TRACEPARENT.into());
        bus.publish(&traced).await.unwrap();
    }
    buses[0].publish(&event(2)).await.unwrap();

    let mut conn = ns.connection().await;
    let entries: redis::streams::StreamRangeReply = conn
        .xrange_all(format!("{}{}", ns.prefix, "log"))
        .await
        .unwrap();
    let fields: Vec<Option<String>> = entries
        .ids
        .iter()
        .map(|entry| entry.get("traceparent"))
        .collect();
    assert_eq!(
        fields,
        [
            Some(TRACEPARENT.to_owned()),
            Some(TRACEPARENT.to_owned()),
            None
        ],
        "an entry has the field only when its event was traced"
    );

    assert_eq!(
        reader.stats().await.unwrap(),
        shippy_kit::events::GroupStats {
            lag: Some(3),
            pending: 0
        }
    );
    let read = reader
        .read_new(2, Duration::from_millis(100))
        .await
        .unwrap();
    let traceparents: Vec<_> = read
        .iter()
        .map(|d| d.event.as_ref().unwrap().traceparent.clone())
        .collect();
    assert_eq!(
        traceparents,
        [Some(TRACEPARENT.to_owned()), Some(TRACEPARENT.to_owned())]
    );
    assert_eq!(
        reader.stats().await.unwrap(),
        shippy_kit::events::GroupStats {
            lag: Some(1),
            pending: 2
        }
    );
}

/// Dead letters written by a Shippy from before hash tags (`<prefix>log:dead`) are listed, moved to the
/// hash-tagged key with their fields intact, and replayable; the old key is gone afterwards.
async fn dead_letters_under_the_old_key_name_are_moved_and_listed(ns: RedisNamespace) {
    testing::init();
    let bus = RedisBus::open(&ns.url, ns.events()).unwrap();
    let legacy = format!("{}log:dead", ns.prefix);
    let mut conn = ns.connection().await;
    let old = event(7);
    let json = serde_json::to_string(&old).unwrap();
    for reason in ["first", "second"] {
        let _: String = conn
            .xadd(
                &legacy,
                "*",
                &[
                    ("source_id", "1-0"),
                    ("group", "g"),
                    ("consumer", "old"),
                    ("reason", reason),
                    ("deliveries", "10"),
                    ("event", json.as_str()),
                    ("kind", "test.happened"),
                ],
            )
            .await
            .unwrap();
    }
    assert_eq!(bus.dead_letter_streams().await.unwrap(), ["log"]);

    let letters = bus.dead_letters("log", 10).await.unwrap();
    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    assert_eq!(reasons, ["first", "second"], "oldest first, nothing lost");
    assert_eq!(letters[0].event.as_ref().unwrap(), &old);
    assert_eq!(letters[0].deliveries, 10);
    assert!(
        !conn.exists::<_, bool>(&legacy).await.unwrap(),
        "the old key is gone"
    );
    assert_eq!(dead_entries(&ns).await.len(), 2);
    assert_eq!(
        bus.dead_letter_streams().await.unwrap(),
        ["log"],
        "listed once"
    );

    // A consumer start moves what an old replica wrote meanwhile (a rolling upgrade).
    let _: String = conn
        .xadd(
            &legacy,
            "*",
            &[("reason", "third"), ("event", json.as_str())],
        )
        .await
        .unwrap();
    drop(bus.join_group("log", "g", "new").await.unwrap());
    assert!(!conn.exists::<_, bool>(&legacy).await.unwrap());
    assert_eq!(dead_entries(&ns).await.len(), 3);
    assert!(
        bus.replay_dead_letter("log", &letters[0].id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(bus.dead_letters("log", 10).await.unwrap().len(), 2);
}
