//! What the whole-system tests share: the `shippy` binary with a clean environment, and a running
//! process whose printed URLs the tests talk to.

// Each test binary uses what it needs of this module.
#![allow(dead_code)]

use std::{collections::HashMap, path::Path, process::Stdio, time::Duration};

use shippy_kit::testing::{self, GraphQLClient};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// The JWT secret every process is started with.
pub const SECRET: &str = "whole-system-test-secret-0123456789abcdef";

/// The `shippy` binary with none of the caller's Shippy environment, the test secrets and quiet logs;
/// killed when dropped. Subgraphs accept the test router key (which `shippy router` signs with) and the
/// test shared secret (which the test clients send), so tests may call them directly.
pub fn shippy() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shippy"));
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "SHIPPY_CONFIG",
        "SHIPPY_PORT_BASE",
        "SHIPPY_HOST",
        "SHIPPY_DATA_DIR",
        "SHIPPY_STREAM_PREFIX",
        "SHIPPY_CONSUMER_NAME",
        "SHIPPY_CLAIM_IDLE",
        "SHIPPY_LOG_FORMAT",
        "SHIPPY_OTLP_ENDPOINT",
        "SHIPPY_OTLP_PROTOCOL",
        "SHIPPY_TRACE_SAMPLING",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_SERVICE_NAME",
        "OTEL_TRACES_FILTER",
        "SHIPPY_JWT_ALGORITHM",
        "SHIPPY_ROUTER_SIGNING_KEY",
        "SHIPPY_ROUTER_SIGNING_KEY_PREVIOUS",
        "SHIPPY_SUBGRAPH_SECRET",
        "SHIPPY_SUBGRAPH_SECRET_PREVIOUS",
        "SHIPPY_SUBGRAPH_OPEN",
        "SHIPPY_ROUTER__SUBGRAPH_SIGNING__KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("SHIPPY_JWT_SECRET", SECRET)
        .env("SHIPPY_ROUTER_SIGNING_KEY", testing::TEST_ROUTER_KEY)
        .env(
            "SHIPPY_ROUTER__SUBGRAPH_SIGNING__KEY",
            testing::TEST_ROUTER_KEY,
        )
        .env("SHIPPY_SUBGRAPH_SECRET", testing::TEST_SUBGRAPH_SECRET)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

/// A running `shippy` process and the URLs it printed, by service name.
pub struct Running {
    pub child: Child,
    pub urls: HashMap<String, String>,
}

impl Running {
    /// Starts `shippy <args>` and waits until it has printed its URLs and each answers `/health`.
    pub async fn start(mut cmd: Command, until: &str) -> Self {
        testing::init();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("shippy starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut urls = HashMap::new();
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("stdout readable") {
                if let Some((name, url)) = line.split_once(" http://") {
                    urls.insert(name.trim().to_owned(), format!("http://{url}"));
                }
                if line.starts_with(until) {
                    return;
                }
            }
            panic!("shippy exited before printing {until:?}");
        })
        .await
        .expect("shippy printed its URLs in time");
        // Keep reading so the pipe never fills up and blocks the process; its log lines (stdout) go to the
        // test's captured output, shown when the test fails.
        let label = until.to_owned();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[{label}] {line}");
            }
        });

        let http = reqwest::Client::new();
        for url in urls.values() {
            let health = url.replace("/graphql", "/health");
            let mut healthy = false;
            for _ in 0..200 {
                if http
                    .get(&health)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    healthy = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(healthy, "{health} never answered");
        }
        Self { child, urls }
    }

    /// `shippy up` on free ports with its data in `data_dir`, started and healthy.
    pub async fn up(data_dir: &std::path::Path) -> Self {
        let mut cmd = shippy();
        cmd.args(["--port-base", "0", "--data-dir"]).arg(data_dir);
        Self::start(cmd, "shippy is up").await
    }

    /// The router's base URL (where the web UI is), without `/graphql`.
    pub fn router_base(&self) -> String {
        self.url("router").trim_end_matches("/graphql").to_owned()
    }

    /// The URL `service` printed.
    pub fn url(&self, service: &str) -> String {
        self.urls
            .get(service)
            .unwrap_or_else(|| panic!("no {service} URL"))
            .clone()
    }

    /// A GraphQL client for `service`.
    pub fn client(&self, service: &str) -> GraphQLClient {
        GraphQLClient::new(
            self.urls
                .get(service)
                .unwrap_or_else(|| panic!("no {service} URL"))
                .clone(),
        )
    }

    /// Waits until `service`'s `/metrics` shows at least `at_least` GraphQL subscriptions listening to its
    /// live feeds (`shippy_subgraph_live_subscribers`): the subscriptions are in place, so an event
    /// published from now on reaches them.
    pub async fn wait_for_live_subscribers(&self, service: &str, at_least: f64) {
        let metrics = self.url(service).replace("/graphql", "/metrics");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut seen = 0.0;
        while tokio::time::Instant::now() < deadline {
            if let Ok(response) = http.get(&metrics).send().await
                && let Ok(text) = response.text().await
            {
                seen = text
                    .lines()
                    .filter(|line| line.starts_with("shippy_subgraph_live_subscribers{"))
                    .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum();
                if seen >= at_least {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{service}: {seen} live subscribers after 20 s, expected {at_least}");
    }

    /// The sum of `service`'s `/metrics` samples of `series` whose labels contain `label`
    /// (e.g. `outcome="manifest"`).
    pub async fn metric(&self, service: &str, series: &str, label: &str) -> f64 {
        let url = self.url(service).replace("/graphql", "/metrics");
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        let prefix = format!("{series}{{");
        text.lines()
            .filter(|line| line.starts_with(&prefix) && line.contains(label))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Sends `signal` and waits for the process to exit; returns whether it exited successfully.
    pub async fn stop(mut self, signal: &str) -> bool {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits in time");
        exit.expect("wait").success()
    }
}

/// Fast pacing for tests: relays and consumers retry within half a second, idle entries are taken over
/// after two.
const CONFIG: &str = r#"
[relay]
poll_interval = "100ms"
retry_initial = "50ms"
retry_max = "500ms"
[events]
command_timeout = "2s"
[events.consumer]
block = "300ms"
claim_idle = "2s"
retry_initial = "50ms"
retry_max = "500ms"
"#;

/// `shippy subgraph <name>` on a free port, on `database`, with events on `redis` under `prefix`.
pub fn subgraph(
    name: &str,
    replica: &str,
    database: &str,
    redis: &str,
    prefix: &str,
    config: &Path,
) -> Command {
    let mut cmd = shippy();
    cmd.args(["subgraph", name, "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("DATABASE_URL", database)
        .env("REDIS_URL", redis)
        .env("SHIPPY_STREAM_PREFIX", prefix)
        .env("SHIPPY_CONSUMER_NAME", format!("{name}-{replica}"));
    cmd
}

/// Writes the fast-pacing config file into `dir`.
pub fn config_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("shippy.toml");
    std::fs::write(&path, CONFIG).unwrap();
    path
}
