//! The outbox on SQLite and PostgreSQL: rows recorded in a committed transaction are published once and
//! marked; rows of a rolled-back transaction never are; a failing bus leaves rows pending for a later round.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering},
};

use futures::StreamExt;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use shippy_kit::{
    CancellationToken,
    config::RelayConfig,
    db,
    events::{BusError, Event, EventBus, EventStream, GroupReader, InProcessBus},
    outbox::{self, Outbox, RelayError, entity},
    testing::{Backend, TestDb},
};
use shippy_migrations::MigratorTrait;

/// Only the shared outbox migrations, as every subgraph has them.
struct OutboxOnly;

impl MigratorTrait for OutboxOnly {
    fn migrations() -> Vec<Box<dyn shippy_migrations::MigrationTrait>> {
        shippy_migrations::outbox::migrations()
    }
}

async fn database(backend: Backend) -> (TestDb, DatabaseConnection) {
    shippy_kit::testing::init();
    let test_db = TestDb::create(backend).await;
    let conn = db::connect_and_migrate::<OutboxOnly>(&test_db.url)
        .await
        .expect("migrate");
    (test_db, conn)
}

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

async fn pending(db: &DatabaseConnection) -> u64 {
    entity::Entity::find()
        .filter(entity::Column::PublishedAt.is_null())
        .count(db)
        .await
        .unwrap()
}

/// A bus that fails to publish while `down` is set, reports a reset (lost data) once after `reset` is set,
/// with `hang` lets each publish wait until `release` is notified, and refuses the event whose payload `n`
/// is `refuse`. With `pipelined` it publishes a batch like the Redis bus does across streams: every event is
/// tried, so one refused in the middle does not keep the later ones out (otherwise a batch stops at the
/// first failure, as the trait's default does).
struct FlakyBus {
    inner: InProcessBus,
    down: AtomicBool,
    /// Publishes that succeed before the bus fails every further one (`usize::MAX`: no limit).
    publishes_left: AtomicUsize,
    reset: AtomicBool,
    hang: bool,
    release: tokio::sync::Notify,
    /// The payload `n` of the event refused (`-1`: none).
    refuse: AtomicI64,
    pipelined: bool,
}

impl FlakyBus {
    fn new(down: bool) -> Self {
        Self {
            inner: InProcessBus::default(),
            down: AtomicBool::new(down),
            publishes_left: AtomicUsize::new(usize::MAX),
            reset: AtomicBool::new(false),
            hang: false,
            release: tokio::sync::Notify::new(),
            refuse: AtomicI64::new(-1),
            pipelined: false,
        }
    }
}

#[async_trait::async_trait]
impl EventBus for FlakyBus {
    async fn publish(&self, event: &Event) -> Result<(), BusError> {
        if event.payload["n"].as_i64() == Some(self.refuse.load(Ordering::SeqCst)) {
            return Err(BusError::Command("refused by the test".into()));
        }
        let spent = self
            .publishes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err();
        if self.down.load(Ordering::SeqCst) || spent {
            return Err(BusError::Unavailable("test bus is down".into()));
        }
        if self.hang {
            self.release.notified().await;
        }
        self.inner.publish(event).await
    }
    async fn publish_batch(&self, events: &[Event]) -> Vec<Result<(), BusError>> {
        let mut results = Vec::with_capacity(events.len());
        for event in events {
            let result = self.publish(event).await;
            let stop = result.is_err() && !self.pipelined;
            results.push(result);
            if stop {
                break;
            }
        }
        results
    }
    async fn subscribe(&self, stream: &str) -> Result<EventStream, BusError> {
        self.inner.subscribe(stream).await
    }
    async fn join_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
    ) -> Result<Box<dyn GroupReader>, BusError> {
        self.inner.join_group(stream, group, consumer).await
    }
    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
    async fn mark_epoch(&self, _holder: &str) -> Result<bool, BusError> {
        Ok(self.reset.swap(false, Ordering::SeqCst))
    }
}

async fn committed_events_are_published_once_rolled_back_never(backend: Backend) {
    let (_guard, db) = database(backend).await;
    let bus = Arc::new(InProcessBus::default());
    let mut feed = bus.subscribe("log").await.unwrap();
    let relay = Outbox::new().relay(db.clone(), bus.clone(), RelayConfig::default());

    let txn = db.begin().await.unwrap();
    outbox::record(&txn, &event(1)).await.unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(
        relay.relay_once().await.unwrap(),
        0,
        "a rolled-back event was published"
    );

    let txn = db.begin().await.unwrap();
    let committed = event(2);
    outbox::record(&txn, &committed).await.unwrap();
    if backend == Backend::Postgres {
        // Not yet committed: invisible to the relay. (SQLite has one connection, held by `txn`.)
        assert_eq!(pending(&db).await, 0);
    }
    txn.commit().await.unwrap();
    assert_eq!(pending(&db).await, 1);

    assert_eq!(relay.relay_once().await.unwrap(), 1);
    let got = feed.next().await.unwrap();
    assert_eq!(got, committed, "the event arrives intact");
    assert_eq!(pending(&db).await, 0);
    assert_eq!(relay.relay_once().await.unwrap(), 0, "published twice");

    let row = entity::Entity::find().one(&db).await.unwrap().unwrap();
    assert_eq!(row.attempts, 1);
    assert!(row.published_at.is_some());
}

async fn failed_publishes_stay_pending_and_keep_order(backend: Backend) {
    let (_guard, db) = database(backend).await;
    let bus = Arc::new(FlakyBus::new(true));
    let mut feed = bus.subscribe("log").await.unwrap();
    let relay = Outbox::new().relay(db.clone(), bus.clone(), RelayConfig::default());

    for n in 0..3 {
        outbox::record(&db, &event(n)).await.unwrap();
    }
    let err = relay.relay_once().await.unwrap_err();
    assert!(
        matches!(err, RelayError::Publish { published: 0, .. }),
        "{err}"
    );
    assert_eq!(pending(&db).await, 3);
    let first = entity::Entity::find()
        .order_by_asc(entity::Column::Id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.attempts, 1);
    assert!(
        first
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("down")
    );

    bus.down.store(false, Ordering::SeqCst);
    assert_eq!(relay.relay_once().await.unwrap(), 3);
    for n in 0..3 {
        assert_eq!(feed.next().await.unwrap().payload["n"], n, "out of order");
    }
}

async fn running_relay_is_woken_by_commits_and_stops_on_shutdown(backend: Backend) {
    let (_guard, db) = database(backend).await;
    let bus = Arc::new(InProcessBus::default());
    let mut feed = bus.subscribe("log").await.unwrap();
    let handle = Outbox::new();
    // A poll interval far longer than the test: only the wake-up can deliver in time.
    let config = RelayConfig {
        poll_interval: std::time::Duration::from_secs(3600),
        ..RelayConfig::default()
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        handle
            .relay(db.clone(), bus.clone(), config)
            .run(shutdown.clone()),
    );

    outbox::record(&db, &event(7)).await.unwrap();
    handle.wake();
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), feed.next())
        .await
        .expect("woken relay");
    assert_eq!(got.unwrap().payload["n"], 7);

    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .expect("relay stops")
        .unwrap();
}

async fn running_relay_retries_until_the_bus_is_back(backend: Backend) {
    let (_guard, db) = database(backend).await;
    let bus = Arc::new(FlakyBus::new(true));
    let mut feed = bus.subscribe("log").await.unwrap();
    let config = RelayConfig {
        retry_initial: std::time::Duration::from_millis(10),
        retry_max: std::time::Duration::from_millis(50),
        ..RelayConfig::default()
    };
    let shutdown = CancellationToken::new();
    let handle = Outbox::new();
    let task = tokio::spawn(
        handle
            .relay(db.clone(), bus.clone(), config)
            .run(shutdown.clone()),
    );
    outbox::record(&db, &event(1)).await.unwrap();
    handle.wake();

    // Wait until the relay has failed a few times, then bring the bus back.
    let failing = async {
        loop {
            let row = entity::Entity::find().one(&db).await.unwrap().unwrap();
            if row.attempts >= 3 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), failing)
        .await
        .expect("relay retries");
    bus.down.store(false, Ordering::SeqCst);
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), feed.next())
        .await
        .expect("delivered");
    assert_eq!(got.unwrap().payload["n"], 1);
    // The relay marks the row in the same round, right after the bus accepted it.
    let marked = async {
        while pending(&db).await != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), marked)
        .await
        .expect("row marked as published");

    shutdown.cancel();
    task.await.unwrap();
}

/// A bus that lost its data gets every row published within `retention` again, and only those; rows past
/// `retention` are deleted by `prune`.
async fn a_reset_bus_gets_the_retained_rows_again_and_old_rows_are_pruned(backend: Backend) {
    let (_guard, db) = database(backend).await;
    let bus = Arc::new(FlakyBus::new(false));
    let mut feed = bus.subscribe("log").await.unwrap();
    let config = RelayConfig {
        retention: std::time::Duration::from_secs(3600),
        ..RelayConfig::default()
    };
    let relay = Outbox::new().relay(db.clone(), bus.clone(), config);
    for n in 1..=3 {
        outbox::record(&db, &event(n)).await.unwrap();
    }
    assert_eq!(relay.relay_once().await.unwrap(), 3);
    // Row 1 was published two hours ago: past retention.
    let first = entity::Entity::find()
        .order_by_asc(entity::Column::Id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    entity::Entity::update_many()
        .col_expr(
            entity::Column::PublishedAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now() - chrono::Duration::hours(2)),
        )
        .filter(entity::Column::Id.eq(first.id))
        .exec(&db)
        .await
        .unwrap();

    assert_eq!(
        relay.relay_once().await.unwrap(),
        0,
        "no reset: nothing again"
    );
    bus.reset.store(true, Ordering::SeqCst);
    assert_eq!(
        relay.relay_once().await.unwrap(),
        2,
        "after a reset the two retained rows are published again"
    );
    let mut seen = Vec::new();
    for _ in 0..5 {
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), feed.next())
            .await
            .expect("event")
            .unwrap();
        seen.push(got.payload["n"].as_i64().unwrap());
    }
    assert_eq!(seen, [1, 2, 3, 2, 3]);
    assert_eq!(pending(&db).await, 0);

    assert_eq!(
        relay.prune().await.unwrap(),
        1,
        "the row past retention goes"
    );
    assert_eq!(entity::Entity::find().count(&db).await.unwrap(), 2);
}

/// A relay stuck in a publish holds no transaction or lock: another relay on the same database publishes
/// the rows recorded meanwhile at once, skips the stuck relay's claimed rows while their lease lasts, and
/// takes them over once it has run out.
async fn a_stuck_relay_blocks_no_other_and_its_lease_runs_out(backend: Backend) {
    let (_guard, db) = database(backend).await;
    let stuck_bus = Arc::new(FlakyBus {
        hang: true,
        ..FlakyBus::new(false)
    });
    let lease = std::time::Duration::from_millis(500);
    let stuck = Outbox::new().relay(
        db.clone(),
        stuck_bus.clone(),
        RelayConfig {
            lease,
            ..RelayConfig::default()
        },
    );
    for n in 1..=3 {
        outbox::record(&db, &event(n)).await.unwrap();
    }
    let stuck_round = tokio::spawn(async move { stuck.relay_once().await });
    // Wait until the stuck relay has claimed its rows.
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let leased = entity::Entity::find()
                .filter(entity::Column::LeasedUntil.is_not_null())
                .count(&db)
                .await
                .unwrap();
            if leased == 3 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("rows claimed");

    let bus = Arc::new(InProcessBus::default());
    let mut feed = bus.subscribe("log").await.unwrap();
    let other = Outbox::new().relay(db.clone(), bus.clone(), RelayConfig::default());
    outbox::record(&db, &event(4)).await.unwrap();
    let published = tokio::time::timeout(std::time::Duration::from_secs(2), other.relay_once())
        .await
        .expect("the other relay is not blocked by the stuck one")
        .unwrap();
    assert_eq!(published, 1, "only the unclaimed row");
    assert_eq!(feed.next().await.unwrap().payload["n"], 4);

    tokio::time::sleep(lease + std::time::Duration::from_millis(100)).await;
    assert_eq!(other.relay_once().await.unwrap(), 3, "the lease ran out");
    for n in 1..=3 {
        assert_eq!(feed.next().await.unwrap().payload["n"], n);
    }
    assert_eq!(pending(&db).await, 0);

    stuck_bus.release.notify_one();
    stuck_round.abort();
    let _ = stuck_round.await;
}

/// Records five events and runs one round of `relay`, whose bus fails the third with an error saying
/// `why`: the first two rows are marked sent, the third carries the error, the last two are released
/// untried, and no row stays leased.
async fn a_round_fails_at_the_third_of_five(
    relay: &outbox::Relay,
    db: &DatabaseConnection,
    why: &str,
) {
    for n in 0..5 {
        outbox::record(db, &event(n)).await.unwrap();
    }
    let err = relay.relay_once().await.unwrap_err();
    assert!(
        matches!(err, RelayError::Publish { published: 2, .. }),
        "{err}"
    );
    let rows = entity::Entity::find()
        .order_by_asc(entity::Column::Id)
        .all(db)
        .await
        .unwrap();
    let sent: Vec<(bool, i32)> = rows
        .iter()
        .map(|r| (r.published_at.is_some(), r.attempts))
        .collect();
    assert_eq!(
        sent,
        [(true, 1), (true, 1), (false, 1), (false, 0), (false, 0)]
    );
    let error = rows[2].last_error.as_deref().unwrap_or_default();
    assert!(error.contains(why), "{error}");
    assert!(
        rows.iter().all(|r| r.leased_until.is_none()),
        "no row stays leased"
    );
}

/// A bus that fails in the middle of a batch: the rows it took are marked sent together, the one it
/// refused carries the error, the rest are released untried; the next round sends those, in order.
async fn a_batch_failing_midway_marks_what_was_sent_and_resumes_in_order(backend: Backend) {
    let (_guard, db) = database(backend).await;
    let bus = Arc::new(FlakyBus::new(false));
    bus.publishes_left.store(2, Ordering::SeqCst);
    let mut feed = bus.subscribe("log").await.unwrap();
    let relay = Outbox::new().relay(db.clone(), bus.clone(), RelayConfig::default());
    a_round_fails_at_the_third_of_five(&relay, &db, "down").await;

    bus.publishes_left.store(usize::MAX, Ordering::SeqCst);
    assert_eq!(relay.relay_once().await.unwrap(), 3);
    for n in 0..5 {
        assert_eq!(feed.next().await.unwrap().payload["n"], n, "out of order");
    }
    assert_eq!(pending(&db).await, 0);
}

/// A batch whose middle event the bus refused while it took the ones after it: only the rows before the
/// refused one are marked sent; the refused one carries the error; the ones after it are released, not
/// marked, and published again next round (a copy the Redis bus's dedupe marker, or the consumers'
/// inbox, absorbs).
async fn a_refused_event_mid_batch_marks_only_the_rows_before_it(backend: Backend) {
    let (_guard, db) = database(backend).await;
    let bus = Arc::new(FlakyBus {
        refuse: AtomicI64::new(2),
        pipelined: true,
        ..FlakyBus::new(false)
    });
    let mut feed = bus.subscribe("log").await.unwrap();
    let relay = Outbox::new().relay(db.clone(), bus.clone(), RelayConfig::default());
    a_round_fails_at_the_third_of_five(&relay, &db, "refused").await;

    bus.refuse.store(-1, Ordering::SeqCst);
    assert_eq!(relay.relay_once().await.unwrap(), 3);
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(feed.next().await.unwrap().payload["n"].as_i64().unwrap());
    }
    assert_eq!(seen, [0, 1, 3, 4, 2, 3, 4]);
    assert_eq!(pending(&db).await, 0);
}

/// The relay's own pool: two connections beside the main pool on PostgreSQL, none on SQLite (whose one
/// connection is shared); a relay on it publishes what requests recorded through the main pool.
async fn the_relay_pool_aside_is_small_and_only_on_postgres(backend: Backend) {
    let (guard, db) = database(backend).await;
    let aside = db::connect_aside(&guard.url, 2).await.unwrap();
    let Some(aside) = aside else {
        assert_eq!(backend, Backend::Sqlite, "only SQLite shares its pool");
        return;
    };
    assert_eq!(backend, Backend::Postgres);
    assert_eq!(
        aside
            .get_postgres_connection_pool()
            .options()
            .get_max_connections(),
        2
    );
    let bus = Arc::new(InProcessBus::default());
    let mut feed = bus.subscribe("log").await.unwrap();
    let relay = Outbox::new().relay(aside, bus.clone(), RelayConfig::default());
    outbox::record(&db, &event(5)).await.unwrap();
    assert_eq!(relay.relay_once().await.unwrap(), 1);
    assert_eq!(feed.next().await.unwrap().payload["n"], 5);
    assert_eq!(pending(&db).await, 0);
}

/// Events recorded together are stored in their order, also past the rows one `INSERT` takes (so in
/// several statements), and the relay publishes them in that order; recording none stores nothing.
async fn events_recorded_together_keep_their_order(backend: Backend) {
    let (_guard, db) = database(backend).await;
    outbox::record_all(&db, &[]).await.unwrap();
    assert_eq!(pending(&db).await, 0);
    let events: Vec<Event> = (0..1_203).map(event).collect();
    let txn = db.begin().await.unwrap();
    outbox::record_all(&txn, &events).await.unwrap();
    txn.commit().await.unwrap();
    let rows = entity::Entity::find()
        .order_by_asc(entity::Column::Id)
        .all(&db)
        .await
        .unwrap();
    let stored: Vec<_> = rows.iter().map(|row| row.event_id).collect();
    let recorded: Vec<_> = events.iter().map(|event| event.event_id).collect();
    assert_eq!(stored, recorded);
    assert_eq!(rows[1_202].payload["n"], 1_202);

    // Room for all of them: a live subscriber further behind than the bus holds skips the oldest.
    let bus = Arc::new(InProcessBus::new(2_048));
    let mut feed = bus.subscribe("log").await.unwrap();
    let relay = Outbox::new().relay(db.clone(), bus.clone(), RelayConfig::default());
    let mut published = 0;
    while published < events.len() {
        published += relay.relay_once().await.unwrap();
    }
    for n in 0..1_203 {
        assert_eq!(feed.next().await.unwrap().payload["n"], n, "out of order");
    }
}

/// A row and the events describing it are stored together (on PostgreSQL in one statement) or not
/// at all: an event the outbox refuses leaves the row out, a row refused leaves its events out.
/// (The row here is an outbox row too, the one table this test database has.)
async fn a_row_and_its_events_are_stored_together_or_not_at_all(backend: Backend) {
    let (_guard, db) = database(backend).await;
    let stored_messages = || async {
        let mut messages: Vec<String> = entity::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.message)
            .collect();
        messages.sort();
        messages
    };
    let [a, b, c, d, e, f, g] = [1, 2, 3, 4, 5, 6, 7].map(event);

    let stored = outbox::insert_recording(&db, outbox::row_of(&a), &[b.clone(), c])
        .await
        .unwrap();
    assert_eq!(stored.event_id, a.event_id, "the row comes back as stored");
    assert_eq!(stored.payload["n"], 1);
    assert!(stored.id > 0, "with the key the database gave it");
    assert_eq!(stored_messages().await, ["event 1", "event 2", "event 3"]);

    // `b` is recorded already (its `event_id` is unique): neither `d` nor `e` is stored.
    let refused = outbox::insert_recording(&db, outbox::row_of(&d), &[e, b]).await;
    assert!(refused.is_err(), "a refused event fails the whole write");
    // The row `a` again (unique `event_id`): its event `f` is not stored.
    let refused = outbox::insert_recording(&db, outbox::row_of(&a), &[f]).await;
    assert!(refused.is_err(), "a refused row fails the whole write");
    assert_eq!(stored_messages().await, ["event 1", "event 2", "event 3"]);

    // No events: just the row.
    outbox::insert_recording(&db, outbox::row_of(&g), &[])
        .await
        .unwrap();
    assert_eq!(
        stored_messages().await,
        ["event 1", "event 2", "event 3", "event 7"]
    );
}

/// Relays racing on one database (replicas sharing it) never claim the same row: every event is
/// published once, and no row is left leased.
async fn racing_relays_publish_every_event_once(backend: Backend) {
    let (_guard, db) = database(backend).await;
    let events: Vec<Event> = (0..400).map(event).collect();
    outbox::record_all(&db, &events).await.unwrap();
    let bus = Arc::new(InProcessBus::new(1_024));
    let mut feed = bus.subscribe("log").await.unwrap();
    let relays = (0..4).map(|_| {
        let relay = Outbox::new().relay(
            db.clone(),
            bus.clone(),
            RelayConfig {
                batch_size: 25,
                ..RelayConfig::default()
            },
        );
        tokio::spawn(async move {
            let mut published = 0;
            loop {
                match relay.relay_once().await.unwrap() {
                    0 => return published,
                    n => published += n,
                }
            }
        })
    });
    let mut published = 0;
    for relay in relays.collect::<Vec<_>>() {
        published += relay.await.unwrap();
    }
    assert_eq!(
        published, 400,
        "the relays' counts add up to every row once"
    );
    let mut seen = std::collections::HashSet::new();
    for _ in 0..400 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), feed.next())
            .await
            .expect("every event arrives")
            .unwrap();
        assert!(seen.insert(event.event_id), "published twice: {event:?}");
    }
    assert_eq!(pending(&db).await, 0);
    let leased = entity::Entity::find()
        .filter(entity::Column::LeasedUntil.is_not_null())
        .count(&db)
        .await
        .unwrap();
    assert_eq!(leased, 0, "every claimed row was marked sent");
}

shippy_kit::backend_tests!(
    racing_relays_publish_every_event_once,
    a_row_and_its_events_are_stored_together_or_not_at_all,
    events_recorded_together_keep_their_order,
    the_relay_pool_aside_is_small_and_only_on_postgres,
    a_refused_event_mid_batch_marks_only_the_rows_before_it,
    a_batch_failing_midway_marks_what_was_sent_and_resumes_in_order,
    a_stuck_relay_blocks_no_other_and_its_lease_runs_out,
    a_reset_bus_gets_the_retained_rows_again_and_old_rows_are_pruned,
    running_relay_retries_until_the_bus_is_back,
    committed_events_are_published_once_rolled_back_never,
    failed_publishes_stay_pending_and_keep_order,
    running_relay_is_woken_by_commits_and_stops_on_shutdown,
);
