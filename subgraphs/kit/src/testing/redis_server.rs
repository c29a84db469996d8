//! A `redis-server` of the test's own on a free port, in a temporary directory, that a test stops and
//! starts again (an outage; a restart with or without its data). Dropping it kills the process and
//! deletes the directory, also when the test panics.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use tokio::time::Instant;

/// A `redis-server` of the test's own. Empty ones keep nothing across a restart (`--save "" --appendonly
/// no`); persistent ones write every command to an append-only file in a directory of their own.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    persistent: bool,
    /// `host port` of the primary this server replicates, if it is a replica.
    replica_of: Option<u16>,
    child: Option<Child>,
}

impl RedisServer {
    /// A server on a free port, started (see [`answering`](Self::answering) to wait for it).
    pub fn start(persistent: bool) -> Self {
        Self::start_as(persistent, None)
    }

    /// An empty server replicating `primary` (`--replicaof`).
    pub fn start_replica_of(primary: &RedisServer) -> Self {
        Self::start_as(false, Some(primary.port))
    }

    fn start_as(persistent: bool, replica_of: Option<u16>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("shippy-redis-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = Self {
            port,
            dir,
            persistent,
            replica_of,
            child: None,
        };
        server.spawn();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again, after [`kill`](Self::kill)), on the same port and directory.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("");
        if self.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        if let Some(primary) = self.replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
    }

    /// Freezes the process (SIGSTOP: its connections stay open, it answers nothing) or lets it go on
    /// (SIGCONT).
    pub fn freeze(&self, frozen: bool) {
        let Some(child) = &self.child else { return };
        let status = Command::new("kill")
            .arg(if frozen { "-STOP" } else { "-CONT" })
            .arg(child.id().to_string())
            .status()
            .expect("kill is installed");
        assert!(
            status.success(),
            "cannot signal redis-server {}",
            child.id()
        );
    }

    /// Kills the server (SIGKILL: no chance to save anything on the way out).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until the server answers `PING`; returns when it first did.
    pub async fn answering(&self) -> Instant {
        let client = redis::Client::open(self.url()).expect("URL");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return Instant::now();
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("URL")
            .get_multiplexed_async_connection()
            .await
            .expect("redis-server answers")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
