//! The outbox on SQLite and PostgreSQL: rows recorded in a committed transaction are published once and
//! marked; rows of a rolled-back transaction never are; a failing bus leaves rows pending for a later round.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
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

/// A bus that fails while `down` is set.
struct FlakyBus {
    inner: InProcessBus,
    down: AtomicBool,
}

#[async_trait::async_trait]
impl EventBus for FlakyBus {
    async fn publish(&self, event: &Event) -> Result<(), BusError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BusError::Unavailable("test bus is down".into()));
        }
        self.inner.publish(event).await
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
    let bus = Arc::new(FlakyBus {
        inner: InProcessBus::default(),
        down: AtomicBool::new(true),
    });
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
    let bus = Arc::new(FlakyBus {
        inner: InProcessBus::default(),
        down: AtomicBool::new(true),
    });
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

shippy_kit::backend_tests!(
    running_relay_retries_until_the_bus_is_back,
    committed_events_are_published_once_rolled_back_never,
    failed_publishes_stay_pending_and_keep_order,
    running_relay_is_woken_by_commits_and_stops_on_shutdown,
);
