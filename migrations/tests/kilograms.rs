//! The weights-in-kilograms migrations on rows written by the floating-point version, on SQLite and on
//! PostgreSQL: nothing can be overbooked afterwards (what is carried or booked rounds up, what a vessel
//! takes rounds down, a vessel's booked total covers its active reservations), and whole weights stay
//! as they were.

use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, Statement, Value,
    sea_query::{Alias, Expr, ExprTrait, Query},
};
use shippy_kit::testing::{self, Backend, TestDb};
use shippy_migrations::{MigratorTrait, consignment, vessel};
use uuid::Uuid;

/// Applies every migration of `M` but the last (the conversion).
async fn migrate_all_but_last<M: MigratorTrait>(db: &DatabaseConnection) {
    let before = u32::try_from(M::migrations().len() - 1).unwrap();
    M::up(db, Some(before)).await.unwrap();
}

async fn insert(db: &DatabaseConnection, table: &str, values: Vec<(&str, Value)>) {
    let (columns, values): (Vec<_>, Vec<_>) = values.into_iter().unzip();
    let insert = Query::insert()
        .into_table(Alias::new(table))
        .columns(columns.into_iter().map(Alias::new))
        .values_panic(values.into_iter().map(Into::into))
        .to_owned();
    db.execute(&insert).await.unwrap();
}

/// `column` of the row of `table` whose `key` is `id`, as an integer (it must be one now).
async fn integer(db: &DatabaseConnection, table: &str, column: &str, key: &str, id: Uuid) -> i64 {
    let select = Query::select()
        .column(Alias::new(column))
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new(key)).eq(id))
        .to_owned();
    let row = db
        .query_one(&select)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{table} {id}"));
    row.try_get::<i64>("", column)
        .unwrap_or_else(|e| panic!("{table}.{column} is not an integer: {e}"))
}

async fn column_type(
    db: &DatabaseConnection,
    backend: Backend,
    table: &str,
    column: &str,
) -> String {
    let sql = match backend {
        Backend::Sqlite => {
            format!("SELECT type AS t FROM pragma_table_info('{table}') WHERE name = '{column}'")
        }
        Backend::Postgres => format!(
            "SELECT data_type AS t FROM information_schema.columns \
             WHERE table_name = '{table}' AND column_name = '{column}'"
        ),
    };
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<String>("", "t").unwrap().to_lowercase()
}

async fn vessel_weights_convert_without_overbooking(backend: Backend) {
    testing::init();
    let test_db = TestDb::create(backend).await;
    let db = Database::connect(&test_db.url).await.unwrap();
    migrate_all_but_last::<vessel::Migrator>(&db).await;

    let (roomy, whole) = (Uuid::now_v7(), Uuid::now_v7());
    for (id, max_weight, reserved) in [(roomy, 100.7, 30.2), (whole, 500.0, 0.0)] {
        insert(
            &db,
            "vessels",
            vec![
                ("id", id.into()),
                ("name", "Old".into()),
                ("capacity", 10.into()),
                ("max_weight", max_weight.into()),
                ("available", true.into()),
                ("owner_id", Uuid::now_v7().into()),
                ("created_at", chrono::Utc::now().into()),
                ("reserved_containers", 3.into()),
                ("reserved_weight", reserved.into()),
            ],
        )
        .await;
    }
    // Two active bookings (10.1 + 20.1 = 30.2) and one released already.
    let bookings = [
        (Uuid::now_v7(), 10.1, false),
        (Uuid::now_v7(), 20.1, false),
        (Uuid::now_v7(), 5.5, true),
    ];
    for (consignment, weight, released) in bookings {
        let released_at: Option<chrono::DateTime<chrono::Utc>> = released.then(chrono::Utc::now);
        insert(
            &db,
            "reservations",
            vec![
                ("consignment_id", consignment.into()),
                ("vessel_id", roomy.into()),
                ("containers", 1.into()),
                ("weight", weight.into()),
                ("reserved_at", chrono::Utc::now().into()),
                ("released_at", released_at.into()),
            ],
        )
        .await;
    }

    vessel::Migrator::up(&db, None).await.unwrap();

    assert_eq!(
        integer(&db, "vessels", "max_weight", "id", roomy).await,
        100,
        "a vessel takes no more than it did: max weight rounds down"
    );
    assert_eq!(
        integer(&db, "vessels", "max_weight", "id", whole).await,
        500
    );
    let kilograms: Vec<i64> = booked_weights(&db, &bookings).await;
    assert_eq!(kilograms, [11, 21, 6], "booked weights round up");
    assert_eq!(
        integer(&db, "vessels", "reserved_weight", "id", roomy).await,
        32,
        "the booked total covers the active bookings as now rounded (11 + 21 > ceil(30.2))"
    );
    assert_eq!(
        integer(&db, "vessels", "reserved_weight", "id", whole).await,
        0
    );
    for (table, column) in [
        ("vessels", "max_weight"),
        ("vessels", "reserved_weight"),
        ("reservations", "weight"),
    ] {
        let kind = column_type(&db, backend, table, column).await;
        assert!(kind == "bigint", "{table}.{column} is {kind}");
    }

    // And back down: whole kilograms convert exactly.
    vessel::Migrator::down(&db, Some(1)).await.unwrap();
    let kind = column_type(&db, backend, "vessels", "max_weight").await;
    assert!(kind == "real" || kind == "double precision", "{kind}");
    db.close().await.unwrap();
}

async fn booked_weights(db: &DatabaseConnection, bookings: &[(Uuid, f64, bool)]) -> Vec<i64> {
    let mut out = Vec::new();
    for (consignment, _, _) in bookings {
        out.push(integer(db, "reservations", "weight", "consignment_id", *consignment).await);
    }
    out
}

async fn consignment_weights_round_up(backend: Backend) {
    testing::init();
    let test_db = TestDb::create(backend).await;
    let db = Database::connect(&test_db.url).await.unwrap();
    migrate_all_but_last::<consignment::Migrator>(&db).await;
    let rows = [
        (Uuid::now_v7(), 9.25),
        (Uuid::now_v7(), 3.0),
        (Uuid::now_v7(), 0.001),
    ];
    for (id, weight) in rows {
        let now = chrono::Utc::now();
        insert(
            &db,
            "consignments",
            vec![
                ("id", id.into()),
                ("owner_id", Uuid::now_v7().into()),
                ("description", "Tea".into()),
                ("weight", weight.into()),
                ("containers", serde_json_array()),
                ("container_count", 1.into()),
                ("status", "PENDING".into()),
                ("vessel_id", Option::<Uuid>::None.into()),
                ("vessel_owner_id", Option::<Uuid>::None.into()),
                ("created_at", now.into()),
                ("updated_at", now.into()),
            ],
        )
        .await;
    }
    consignment::Migrator::up(&db, None).await.unwrap();
    let mut kilograms = Vec::new();
    for (id, _) in rows {
        kilograms.push(integer(&db, "consignments", "weight", "id", id).await);
    }
    assert_eq!(kilograms, [10, 3, 1], "rounded up, whole ones unchanged");
    assert_eq!(
        column_type(&db, backend, "consignments", "weight").await,
        "bigint"
    );
    db.close().await.unwrap();
}

fn serde_json_array() -> Value {
    Value::Json(Some(Box::new(sea_orm::JsonValue::Array(vec![]))))
}

shippy_kit::backend_tests!(
    vessel_weights_convert_without_overbooking,
    consignment_weights_round_up,
);
