//! Redis faults against a `redis-server` (or a Redis Cluster) of each test's own, on free ports, that the
//! test stops, restarts or fails over: an outage (Redis restarted with its data, and restarted empty), a
//! cluster primary killed while events are published, consumers killed mid-batch, and the dead-letter
//! list and replay. Each test counts exactly: every event recorded in the outbox is stored once by the
//! consumer (sent = stored, 0 duplicates), and the outage tests measure how long after Redis answers again
//! the work has resumed (printed, and bounded at 2 s).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use sea_orm::DatabaseConnection;
use shippy_kit::{
    CancellationToken,
    config::{ConsumerConfig, EventsConfig, RelayConfig},
    consumer::{Consumer, HandleError, Handler},
    db,
    events::{Event, EventBus, RedisBus},
    outbox::{self, Outbox},
    testing::{self, Backend, RedisCluster, RedisServer, TestDb},
};
use shippy_migrations::MigratorTrait;
use tokio::time::Instant;

/// Only the shared outbox migrations.
struct OutboxOnly;

impl MigratorTrait for OutboxOnly {
    fn migrations() -> Vec<Box<dyn shippy_migrations::MigrationTrait>> {
        shippy_migrations::outbox::migrations()
    }
}

/// Stores each event once, as a real handler does through its inbox: a redelivered event id is counted
/// as a dropped duplicate and changes nothing. Optionally hangs on one event (a consumer stuck mid-batch).
#[derive(Default)]
struct Store {
    stored: Mutex<Vec<uuid::Uuid>>,
    seen: Mutex<HashSet<uuid::Uuid>>,
    duplicates_dropped: Mutex<usize>,
    hang_on: Mutex<Option<i64>>,
}

impl Store {
    fn stored(&self) -> Vec<uuid::Uuid> {
        self.stored.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Handler for Store {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        if *self.hang_on.lock().unwrap() == event.payload["n"].as_i64() {
            std::future::pending::<()>().await;
        }
        if !self.seen.lock().unwrap().insert(event.event_id) {
            *self.duplicates_dropped.lock().unwrap() += 1;
            return Ok(());
        }
        self.stored.lock().unwrap().push(event.event_id);
        Ok(())
    }
}

fn event(n: i64) -> Event {
    Event::new(
        "log",
        "test",
        "test.happened",
        None,
        format!("event {n}"),
        serde_json::json!({ "n": n }),
    )
}

/// Production pacing (30 s backoff ceiling: the probe, not a short backoff, makes recovery fast), with
/// short claim and block times so the test does not wait for them.
fn events_config(name: &str) -> EventsConfig {
    EventsConfig {
        stream_prefix: "shippy:".into(),
        command_timeout: Duration::from_secs(1),
        consumer: ConsumerConfig {
            name: Some(name.into()),
            block: Duration::from_millis(200),
            claim_idle: Duration::from_millis(500),
            ..ConsumerConfig::default()
        },
        ..EventsConfig::default()
    }
}

/// Asserts that group `g` of `shippy:log` has no entry pending: everything read was acknowledged.
async fn assert_nothing_pending(conn: &mut impl redis::aio::ConnectionLike) {
    let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg("shippy:log")
        .arg("g")
        .query_async(conn)
        .await
        .unwrap();
    assert_eq!(pending.count(), 0);
}

struct Pipeline {
    _test_db: TestDb,
    db: DatabaseConnection,
    outbox: Outbox,
    store: Arc<Store>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Pipeline {
    /// An outbox relay and one consumer of `log`, both on the Redis at `url`.
    async fn start(url: &str) -> Self {
        testing::init();
        let test_db = TestDb::create(Backend::Postgres).await;
        let db = db::connect_and_migrate::<OutboxOnly>(&test_db.url)
            .await
            .unwrap();
        let config = events_config("c1");
        let bus: Arc<dyn EventBus> = Arc::new(RedisBus::open(url, config.clone()).unwrap());
        let outbox = Outbox::new();
        let shutdown = CancellationToken::new();
        let store = Arc::new(Store::default());
        let relay = outbox
            .relay(db.clone(), bus.clone(), RelayConfig::default())
            .for_service("test");
        let consumer = Consumer::new(bus, "log", "g", store.clone(), config.consumer);
        let tasks = vec![
            tokio::spawn(relay.run(shutdown.clone())),
            tokio::spawn(consumer.run(shutdown.clone())),
        ];
        Self {
            _test_db: test_db,
            db,
            outbox,
            store,
            shutdown,
            tasks,
        }
    }

    async fn record(&self, range: std::ops::Range<i64>, sent: &mut Vec<uuid::Uuid>) {
        for n in range {
            let e = event(n);
            sent.push(e.event_id);
            outbox::record(&self.db, &e).await.unwrap();
            self.outbox.wake();
        }
    }

    /// Waits until the store holds `count` events; returns when it did.
    async fn stored(&self, count: usize, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            let stored = self.store.stored.lock().unwrap().len();
            if stored >= count {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "only {stored} of {count} events stored in time"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// Redis down while events keep being recorded, long enough that the relay's and the consumer's backoff
/// has grown to seconds, then restarted: work resumes within 2 s of Redis answering again, and every event
/// is stored exactly once. With `persistent`, Redis comes back with its data; without, it comes back empty
/// and the relay, finding its marker gone, publishes the retained rows again.
async fn outage(persistent: bool) {
    let mut redis = RedisServer::start(persistent);
    redis.answering().await;
    let pipeline = Pipeline::start(&redis.url()).await;
    let mut sent = Vec::new();

    // Entries the group has read are acknowledged; a few more are left unread in the stream when it dies.
    pipeline.record(0..30, &mut sent).await;
    pipeline.stored(30, Duration::from_secs(10)).await;
    redis.kill();
    pipeline.record(30..60, &mut sent).await;
    // Long enough for several failed rounds: backoffs of 0.2, 0.4, 0.8, 1.6, 3.2 s ...
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        pipeline.store.stored().len(),
        30,
        "nothing stored while Redis was down"
    );

    redis.spawn();
    let answering = redis.answering().await;
    let done = pipeline.stored(60, Duration::from_secs(30)).await;
    let resume = done - answering;
    println!(
        "redis restarted {}: all 30 events recorded during the outage stored {resume:?} after Redis answered again; {} redeliveries dropped as duplicates",
        if persistent { "with its data" } else { "empty" },
        pipeline.store.duplicates_dropped.lock().unwrap()
    );
    assert!(
        resume < Duration::from_secs(2),
        "work resumed {resume:?} after Redis answered again"
    );

    // Exact counts: sent = stored, each once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = pipeline.store.stored();
    assert_eq!(stored.len(), sent.len(), "sent = stored");
    let distinct: HashSet<_> = stored.iter().copied().collect();
    assert_eq!(distinct.len(), stored.len(), "0 duplicates stored");
    assert_eq!(distinct, sent.iter().copied().collect::<HashSet<_>>());

    // The bus holds every event again: the group has nothing pending once all is handled.
    assert_nothing_pending(&mut redis.connection().await).await;
    pipeline.stop().await;
}

#[tokio::test]
async fn redis_restarted_with_its_data_resumes_within_two_seconds_and_loses_nothing() {
    outage(true).await;
}

#[tokio::test]
async fn redis_restarted_empty_resumes_within_two_seconds_and_loses_nothing() {
    outage(false).await;
}

/// A consumer killed mid-batch (its task aborted while a handler hangs): a second consumer takes over the
/// entries it left pending, every event is stored once, and the dead consumer, idle and without pending
/// entries, is removed from the group.
#[tokio::test]
async fn a_killed_consumer_is_taken_over_and_then_pruned() {
    testing::init();
    let redis = RedisServer::start(false);
    redis.answering().await;
    let bus: Arc<dyn EventBus> =
        Arc::new(RedisBus::open(&redis.url(), events_config("a")).unwrap());
    let store = Arc::new(Store::default());
    *store.hang_on.lock().unwrap() = Some(5);

    let shutdown_a = CancellationToken::new();
    let mut config_a = events_config("a").consumer;
    config_a.batch_size = 10;
    let a = tokio::spawn(
        Consumer::new(bus.clone(), "log", "g", store.clone(), config_a).run(shutdown_a.clone()),
    );
    let mut sent = HashMap::new();
    for n in 0..20 {
        let e = event(n);
        sent.insert(e.event_id, n);
        bus.publish(&e).await.unwrap();
    }
    // A stores 0..4, then hangs on 5 with 5..9 read and pending.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stored().len() < 5 {
        assert!(Instant::now() < deadline, "consumer a did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.abort();
    let _ = a.await;
    *store.hang_on.lock().unwrap() = None;

    let shutdown = CancellationToken::new();
    let config_b = ConsumerConfig {
        prune_idle: Duration::from_secs(1),
        ..events_config("b").consumer
    };
    let b = tokio::spawn(
        Consumer::new(bus.clone(), "log", "g", store.clone(), config_b).run(shutdown.clone()),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.stored().len() < 20 {
        assert!(
            Instant::now() < deadline,
            "only {} stored",
            store.stored().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stored = store.stored();
    assert_eq!(stored.len(), 20, "sent = stored");
    assert_eq!(
        stored.iter().copied().collect::<HashSet<_>>(),
        sent.keys().copied().collect::<HashSet<_>>(),
        "each event once"
    );

    // Consumer b prunes a (idle past 1 s, nothing pending) on its next stats round (every 5 s).
    let mut conn = redis.connection().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let consumers: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg("shippy:log")
            .arg("g")
            .query_async(&mut conn)
            .await
            .unwrap();
        let names: Vec<String> = consumers.consumers.into_iter().map(|c| c.name).collect();
        if names == ["b"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead consumer was not pruned: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    b.await.unwrap();
    drop(shutdown_a);
}

/// A handler that always fails permanently sends its events to the dead letters; they are listed with
/// their reason, and replayed (one by id, then the rest) to a handler that now succeeds: each stored once,
/// and the dead letters are empty.
#[tokio::test]
async fn dead_letters_are_listed_and_replayed() {
    testing::init();
    let redis = RedisServer::start(false);
    redis.answering().await;
    dead_letters_listed_and_replayed(&redis.url()).await;
}

/// The same on a Redis Cluster: the dead letters share their stream's slot, so the dead-lettering
/// `MULTI` and the replay work there, and listing finds them on whichever primary holds them.
#[tokio::test]
async fn dead_letters_are_listed_and_replayed_on_a_cluster() {
    testing::init();
    let cluster = RedisCluster::start().await;
    dead_letters_listed_and_replayed(&cluster.url()).await;
}

async fn dead_letters_listed_and_replayed(url: &str) {
    let config = events_config("c");
    let bus = Arc::new(RedisBus::open(url, config.clone()).unwrap());

    struct Refuse;
    #[async_trait::async_trait]
    impl Handler for Refuse {
        async fn handle(&self, event: &Event) -> Result<(), HandleError> {
            Err(HandleError::Reject(format!(
                "no room for {}",
                event.payload["n"]
            )))
        }
    }
    let shutdown = CancellationToken::new();
    let refusing = tokio::spawn(
        Consumer::new(bus.clone(), "log", "g", Refuse, config.consumer.clone())
            .run(shutdown.clone()),
    );
    let mut sent = HashSet::new();
    for n in 0..3 {
        let e = event(n);
        sent.insert(e.event_id);
        bus.publish(&e).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let letters = loop {
        let letters = bus.dead_letters("log", 100).await.unwrap();
        if letters.len() == 3 {
            break letters;
        }
        assert!(Instant::now() < deadline, "{} dead letters", letters.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    shutdown.cancel();
    refusing.await.unwrap();
    assert_eq!(bus.dead_letter_streams().await.unwrap(), ["log"]);
    assert_eq!(letters[0].reason, "no room for 0");
    assert_eq!(letters[0].group, "g");
    assert_eq!(letters[0].consumer, "c");
    assert_eq!(letters[0].deliveries, 1);

    assert!(
        bus.replay_dead_letter("log", "0-1")
            .await
            .unwrap()
            .is_none(),
        "an unknown id replays nothing"
    );
    let replayed = bus
        .replay_dead_letter("log", &letters[0].id)
        .await
        .unwrap()
        .expect("replayed");
    assert_eq!(replayed.event, letters[0].event);
    assert_eq!(bus.dead_letters("log", 100).await.unwrap().len(), 2);
    for letter in &letters[1..] {
        bus.replay_dead_letter("log", &letter.id)
            .await
            .unwrap()
            .expect("replayed");
    }
    assert!(bus.dead_letters("log", 100).await.unwrap().is_empty());

    let store = Arc::new(Store::default());
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(
        Consumer::new(bus.clone(), "log", "g", store.clone(), config.consumer)
            .run(shutdown.clone()),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stored().len() < 3 {
        assert!(Instant::now() < deadline, "replayed events not handled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.stored().into_iter().collect::<HashSet<_>>(),
        sent,
        "each replayed event stored once"
    );
    assert_eq!(store.stored().len(), 3);
    shutdown.cancel();
    consumer.await.unwrap();
}

/// A Redis Cluster primary killed (SIGKILL, no goodbye) while events are recorded and published without a
/// pause: the primary holding the stream's slot dies, its replica takes over, and every event recorded
/// (before, during and after the failover) is stored exactly once: 0 lost, 0 duplicates stored. Publishes
/// wait for a replica (`WAIT`), so none that counted as done dies with the primary; the ones that did not
/// stay in the outbox and are published again. Measures how long after the kill the consumer stores new
/// events again, and how much of that is the cluster's own failover.
#[tokio::test]
async fn a_cluster_primary_killed_mid_stream_loses_nothing() {
    let mut cluster = RedisCluster::start().await;
    let pipeline = Pipeline::start(&cluster.url()).await;
    let sent = Arc::new(Mutex::new(Vec::new()));
    let recording = CancellationToken::new();
    let recorder = {
        let (db, outbox, sent, recording) = (
            pipeline.db.clone(),
            pipeline.outbox.clone(),
            sent.clone(),
            recording.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0;
            while !recording.is_cancelled() {
                let e = event(n);
                outbox::record(&db, &e).await.unwrap();
                sent.lock().unwrap().push(e.event_id);
                outbox.wake();
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    pipeline.stored(50, Duration::from_secs(20)).await;

    let killed_at = Instant::now();
    let recorded_before_kill = sent.lock().unwrap().len();
    let dead = cluster.kill_primary_of("shippy:log").await;
    let promoted = cluster
        .wait_for_failover("shippy:log", dead, Duration::from_secs(20))
        .await;
    // Work has resumed when an event recorded after the kill is stored.
    let deadline = Instant::now() + Duration::from_secs(20);
    let resumed = loop {
        let after_kill: HashSet<uuid::Uuid> = sent.lock().unwrap()[recorded_before_kill..]
            .iter()
            .copied()
            .collect();
        if pipeline
            .store
            .stored()
            .iter()
            .any(|id| after_kill.contains(id))
        {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "work did not resume after the failover"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Keep publishing on the new primary for a while, then stop and let everything drain.
    tokio::time::sleep(Duration::from_millis(500)).await;
    recording.cancel();
    recorder.await.unwrap();
    let sent = sent.lock().unwrap().clone();
    pipeline.stored(sent.len(), Duration::from_secs(30)).await;
    // Late redeliveries would show up as extra stores.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let failover = promoted - killed_at;
    let resume = resumed.max(promoted) - killed_at;
    println!(
        "cluster primary {dead} killed with {recorded_before_kill} of {} events recorded: replica promoted after {failover:?}, \
         work resumed {resume:?} after the kill ({:?} after the promotion); {} redeliveries dropped as duplicates",
        sent.len(),
        resume - failover,
        pipeline.store.duplicates_dropped.lock().unwrap()
    );
    let stored = pipeline.store.stored();
    let distinct: HashSet<_> = stored.iter().copied().collect();
    assert_eq!(distinct.len(), stored.len(), "0 duplicates stored");
    assert_eq!(
        distinct,
        sent.iter().copied().collect::<HashSet<_>>(),
        "0 lost: every recorded event stored"
    );
    assert_eq!(stored.len(), sent.len(), "sent = stored");
    assert!(
        resume - failover < Duration::from_secs(2),
        "work resumed {:?} after the replica took over",
        resume - failover
    );

    // Nothing is left pending on the new primary.
    assert_nothing_pending(&mut cluster.connection().await).await;
    pipeline.stop().await;
}

/// `events.publish_replicas`: a publish counts once a replica holds the event. A primary without replicas
/// takes it anyway (nothing to wait for); with a replica that stops answering (SIGSTOP), the publish is
/// refused as unavailable after `WAIT` gave up, so the outbox keeps the row; once the replica answers, the
/// retried publish succeeds and the stream holds the event once (the marker kept the retry from adding it
/// again).
/// Publishes `event` to a bus waiting for one replica. A synced replica confirms, but on a loaded
/// machine its acknowledgement may miss the wait (half the command timeout), so a few attempts are
/// allowed; a repeat is the same event, stored once.
async fn publish_confirmed(bus: &RedisBus, event: &Event) {
    for _ in 0..10 {
        match bus.publish(event).await {
            Ok(()) => return,
            Err(error) => eprintln!("not confirmed yet: {error}"),
        }
    }
    panic!("a synced replica never confirmed a publish");
}

#[tokio::test]
async fn a_publish_counts_once_a_replica_holds_it() {
    testing::init();
    let primary = RedisServer::start(false);
    primary.answering().await;
    let config = EventsConfig {
        publish_replicas: Some(1),
        command_timeout: Duration::from_secs(1),
        ..events_config("p")
    };
    let bus = RedisBus::open(&primary.url(), config).unwrap();
    bus.publish(&event(0)).await.unwrap();

    let replica = RedisServer::start_replica_of(&primary);
    replica.answering().await;
    let mut conn = primary.connection().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await
            .unwrap();
        if info.contains("connected_slaves:1") && info.contains("state=online") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never synced: {info}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publish_confirmed(&bus, &event(1)).await;

    replica.freeze(true);
    let stuck = event(2);
    let started = Instant::now();
    let refused = bus.publish(&stuck).await.unwrap_err();
    replica.freeze(false);
    assert!(
        matches!(&refused, shippy_kit::events::BusError::Unavailable(m) if m.contains("only 0 of 1 replicas confirmed")),
        "{refused}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused within the command timeout, after {:?}",
        started.elapsed()
    );
    publish_confirmed(&bus, &stuck).await;
    let len: u64 = redis::cmd("XLEN")
        .arg("shippy:log")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 3, "each event once, the retried one too");
}
