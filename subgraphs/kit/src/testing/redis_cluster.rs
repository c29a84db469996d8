//! A Redis Cluster of the test's own: six `redis-server` processes on free ports (three primaries with one
//! replica each), joined with `redis-cli --cluster create`, in a temporary directory. Dropping it kills
//! every process and deletes the directory, also when the test panics.
//!
//! Used by the kit's stream tests and the router's rate-limit tests to run their suites against a cluster,
//! and to kill the primary that holds a key in the middle of a test ([`RedisCluster::kill_primary_of`]).

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use shippy_security::redis::{Connection, RedisClient};
use tokio::time::Instant;

use super::RedisNamespace;

/// How long a primary may be silent before the cluster fails it over. Production uses the default 15 s;
/// tests need a failover in about a second.
const NODE_TIMEOUT_MS: u64 = 1000;

/// One `redis-server` of the cluster.
struct Node {
    port: u16,
    child: Option<Child>,
}

/// A running Redis Cluster (see the module docs).
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

/// A free port `p` whose cluster bus port `p + 10000` is free too.
fn free_port_pair() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    /// Starts the six servers, creates the cluster and waits until every node reports `cluster_state:ok`
    /// and every replica is in sync with its primary.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("shippy-cluster-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // From here on, Drop cleans up whatever has started.
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..6 {
            let port = free_port_pair();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&cluster.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed");
            cluster.nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        for node in &cluster.nodes {
            cluster.wait_for_ping(node.port).await;
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let create = tokio::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("redis-cli is installed");
        assert!(
            create.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&create.stdout)
        );
        cluster.wait_until_ok(Duration::from_secs(30)).await;
        cluster
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// A key namespace of its own on this cluster (see [`RedisNamespace`]).
    pub fn namespace(&self) -> RedisNamespace {
        RedisNamespace::on(&self.url())
    }

    /// A cluster connection.
    pub async fn connection(&self) -> Connection {
        RedisClient::open(&self.url())
            .expect("cluster URL")
            .connect(Duration::from_secs(2), Duration::from_secs(5))
            .await
            .expect("the test cluster answers")
    }

    async fn node_connection(port: u16) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))?
            .get_multiplexed_async_connection()
            .await
    }

    async fn wait_for_ping(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = Self::node_connection(port).await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} did not start"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `CLUSTER INFO` of the node on `port`, or "" when it does not answer.
    async fn cluster_info(port: u16) -> String {
        let Ok(mut conn) = Self::node_connection(port).await else {
            return String::new();
        };
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .unwrap_or_default()
    }

    /// Waits until every live node says `cluster_state:ok` and every live replica's link to its primary is
    /// up; returns when it first was so.
    pub async fn wait_until_ok(&self, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            let mut ok = true;
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                if !Self::cluster_info(node.port)
                    .await
                    .contains("cluster_state:ok")
                {
                    ok = false;
                    break;
                }
                let Ok(mut conn) = Self::node_connection(node.port).await else {
                    ok = false;
                    break;
                };
                let replication: String = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                if replication.contains("role:slave")
                    && !replication.contains("master_link_status:up")
                {
                    ok = false;
                    break;
                }
            }
            if ok {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "the test Redis Cluster did not become healthy within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The port of the primary that serves `key`'s slot, as the node on `ask` sees it (`CLUSTER NODES`).
    async fn primary_of_on(ask: u16, key: &str) -> Option<u16> {
        let mut conn = Self::node_connection(ask).await.ok()?;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await
            .ok()?;
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await
            .ok()?;
        nodes.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.contains("master") || flags.contains("fail") {
                return None;
            }
            let serves = fields.iter().skip(8).any(|range| {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                matches!((start.parse::<u16>(), end.parse::<u16>()), (Ok(s), Ok(e)) if (s..=e).contains(&slot))
            });
            if !serves {
                return None;
            }
            let address = fields.get(1)?.split('@').next()?;
            address.rsplit_once(':')?.1.parse().ok()
        })
    }

    /// Kills (SIGKILL) the primary serving `key`'s slot; returns its port.
    pub async fn kill_primary_of(&mut self, key: &str) -> u16 {
        let ask = self.nodes[0].port;
        let port = Self::primary_of_on(ask, key)
            .await
            .expect("a primary serves the key");
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("the primary is one of ours");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        port
    }

    /// Waits until a live node other than `dead` is the primary of `key`'s slot (the replica took over)
    /// and the cluster is `ok` again; returns when it was.
    pub async fn wait_for_failover(&self, key: &str, dead: u16, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        let ask = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node")
            .port;
        loop {
            if let Some(port) = Self::primary_of_on(ask, key).await
                && port != dead
                && Self::cluster_info(port).await.contains("cluster_state:ok")
            {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "no replica took over {key} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
