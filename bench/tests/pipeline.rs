//! The event pipeline benchmark, small (CI): the real `shippy` binary of this build's profile as
//! separate processes on the local PostgreSQL and Redis, a few seconds of `createConsignment`, and
//! every confirmed consignment assigned and logged; the run leaves no database or Redis key behind.
//!
//! `cargo test -p shippy-bench` does not build other packages' binaries, so the test builds
//! `shippy` itself (`cargo build -p shippy`, a no-op when it is up to date) into the same target
//! directory and profile as this test, and runs that.

use std::{path::PathBuf, process::Command, time::Duration};

use sea_orm::{ConnectionTrait, Database, Statement};
use shippy_bench::pipeline::{self, PipelineError, PipelineOptions};

fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `target/<profile>/shippy`, built for the profile this test was built with.
fn shippy() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/pipeline-<hash>
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-p", "shippy", "--bin", "shippy"])
        .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building shippy failed");
    let shippy = profile_dir.join("shippy");
    assert!(shippy.is_file(), "{} was not built", shippy.display());
    shippy
}

async fn count(sql: String) -> i64 {
    let db = Database::connect(database_url()).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

async fn redis_keys(pattern: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap()
}

fn small(shippy: PathBuf) -> PipelineOptions {
    let mut options = PipelineOptions::new(shippy, database_url(), redis_url());
    options.users = 2;
    options.connections = 4;
    options.warmup = Duration::from_secs(1);
    options.duration = Duration::from_secs(3);
    options.drain_timeout = Duration::from_secs(60);
    options
}

/// The tests of this file run one at a time: one counts every pipeline run's databases.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Databases of any pipeline run; none exist between runs.
async fn bench_databases() -> i64 {
    count("SELECT count(*) FROM pg_database WHERE datname LIKE 'shippy\\_bench\\_%'".into()).await
}

/// `error` says the first service (`user`) exited before it was up, and the run dropped its databases.
async fn user_did_not_start_and_nothing_is_left(error: &PipelineError) {
    assert!(
        matches!(error, PipelineError::Start { service, reason }
            if service == "user" && reason.contains("exited before printing its URL")),
        "{error}"
    );
    assert_eq!(
        bench_databases().await,
        0,
        "the failed run dropped its databases"
    );
}

#[tokio::test]
async fn a_service_that_does_not_start_fails_the_run_and_leaves_nothing_behind() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // `false` exits at once without printing its URL.
    let options = small(PathBuf::from("/bin/false"));
    let error = pipeline::run(&options).await.unwrap_err();
    user_did_not_start_and_nothing_is_left(&error).await;
}

/// `--subgraph-config` reaches every subgraph process: a settings file they refuse (an unknown key)
/// stops the first one from starting, and the run fails cleanly.
#[tokio::test]
async fn the_subgraph_settings_file_is_what_the_subgraphs_start_with() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let config = std::env::temp_dir().join(format!("shippy-bench-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&config, "[events.consumer]\nno_such_setting = 1\n").unwrap();
    let mut options = small(shippy());
    options.subgraph_config = Some(config.clone());
    let error = pipeline::run(&options).await.unwrap_err();
    std::fs::remove_file(&config).unwrap();
    user_did_not_start_and_nothing_is_left(&error).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_confirmed_consignment_is_assigned_and_logged() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let shippy = shippy();
    let report = pipeline::run(&small(shippy)).await.unwrap();
    let summary = pipeline::summary(&report);
    assert!(report.complete(), "{summary}");
    assert!(report.created > 0, "{summary}");
    assert!(report.assigned > 0, "{summary}");
    assert!(report.log_entries > 0, "{summary}");
    assert_eq!(
        report.final_consignments, report.confirmed_total,
        "{summary}"
    );
    assert_eq!(
        report.final_assigned, report.final_consignments,
        "{summary}"
    );
    assert_eq!(report.create_failures, 0, "{summary}");
    assert!(report.create_latency_ms.p50 > 0.0 && report.assignment_lag_ms.p50 > 0.0);
    assert!(report.assignment_lag_ms.p50 <= report.assignment_lag_ms.p99);
    assert_eq!(report.queues.len(), 5);
    // Every service, the router, ourselves, Redis and PostgreSQL were measured.
    for label in ["user", "vessel", "consignment", "log", "router", "redis"] {
        assert!(
            report.processes.iter().any(|p| p.label == label),
            "{label} missing: {summary}"
        );
    }
    assert!(
        report
            .processes
            .iter()
            .any(|p| p.label.starts_with("postgres") && !p.pids.is_empty()),
        "{summary}"
    );
    // The run cleaned up after itself.
    let id = &report.run_id;
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'shippy_bench_{id}_%'"
        ))
        .await,
        0
    );
    assert!(
        redis_keys(&format!("*shippy:bench:{id}:*"))
            .await
            .is_empty()
    );
}
