//! Replicas of one subgraph starting together on one PostgreSQL database: every one migrates without error
//! (the advisory lock makes them take turns) and the schema ends up applied once.

use sea_orm::{ConnectionTrait, Statement};
use shippy_kit::{
    db,
    testing::{self, Backend, TestDb},
};

#[tokio::test]
async fn replicas_starting_together_migrate_one_after_the_other() {
    testing::init();
    let test_db = TestDb::create(Backend::Postgres).await;
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = test_db.url.clone();
            tokio::spawn(async move {
                db::connect_and_migrate::<shippy_migrations::consignment::Migrator>(&url).await
            })
        })
        .collect();
    let mut conns = Vec::new();
    for start in starts {
        conns.push(start.await.unwrap().expect("every replica starts"));
    }
    let applied = conns[0]
        .query_one_raw(Statement::from_string(
            conns[0].get_database_backend(),
            "SELECT count(*) AS n FROM seaql_migrations",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(
        applied, 7,
        "outbox, inbox, consignments, outbox traceparent, outbox lease, assignment saga, weight in kg: once each"
    );
    for conn in conns {
        conn.close().await.unwrap();
    }
}
