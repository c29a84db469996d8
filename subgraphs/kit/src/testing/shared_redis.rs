//! The test Redis (`TEST_REDIS_URL`), shared with every other test: each test takes a [`RedisNamespace`],
//! a unique key prefix whose keys are deleted when it is dropped (on the test Redis, or on a
//! [`super::RedisCluster`] of the test's own). A [`TcpProxy`] in front of Redis lets a
//! test cut the connection and bring it back.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use shippy_security::redis::{Connection, RedisClient};

use tokio::{net::TcpListener, task::JoinHandle};

use super::events_config;
use crate::{config::EventsConfig, events::EventBus};

/// `TEST_REDIS_URL`, or the local default.
pub fn test_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix of its own on the test Redis (or a test cluster); every key under it is deleted on drop.
pub struct RedisNamespace {
    /// `TEST_REDIS_URL`, or the cluster's `redis+cluster://` URL.
    pub url: String,
    /// `shippy-t-<uuid>:`.
    pub prefix: String,
}

impl RedisNamespace {
    /// A fresh prefix.
    pub fn new() -> Self {
        Self::on(&test_redis_url())
    }

    /// A fresh prefix on the Redis (or cluster) at `url`.
    pub fn on(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: format!("shippy-t-{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The Redis key of logical stream `stream` under this prefix.
    pub fn key(&self, stream: &str) -> String {
        format!("{}{stream}", self.prefix)
    }

    /// [`events_config`] under this prefix.
    pub fn events(&self) -> EventsConfig {
        events_config(&self.prefix)
    }

    /// A Redis bus on the test Redis under this prefix.
    pub fn bus(&self) -> Arc<dyn EventBus> {
        Arc::new(crate::events::RedisBus::open(&self.url, self.events()).expect("Redis URL"))
    }

    /// A plain connection to the test Redis (or cluster), for looking at keys directly.
    pub async fn connection(&self) -> Connection {
        RedisClient::open(&self.url)
            .expect("Redis URL")
            .connect(Duration::from_secs(2), Duration::from_secs(5))
            .await
            .unwrap_or_else(|err| panic!("cannot reach the test Redis at {}: {err}", self.url))
    }
}

impl Default for RedisNamespace {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RedisNamespace {
    fn drop(&mut self) {
        let url = self.url.clone();
        let pattern = format!("{}*", self.prefix);
        let cleaner = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut conn = RedisClient::open(&url)?
                    .connect(Duration::from_secs(2), Duration::from_secs(5))
                    .await?;
                // One key per DEL: on a cluster the keys live on different slots.
                for key in conn.scan_all(&pattern, None).await? {
                    redis::cmd("DEL")
                        .arg(&key)
                        .query_async::<()>(&mut conn)
                        .await?;
                }
                Ok::<_, redis::RedisError>(())
            })
        });
        match cleaner.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("warning: could not delete test Redis keys: {err}"),
            Err(_) => eprintln!("warning: deleting test Redis keys panicked"),
        }
    }
}

/// A TCP proxy on `127.0.0.1:0` to another address, which a test can take down (open connections are cut,
/// new ones closed at once) and bring back, on the same port.
pub struct TcpProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `true` while traffic passes. Every connection task watches it.
    up: tokio::sync::watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// A proxy to `target`, up.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (up, _) = tokio::sync::watch::channel(true);
        let watch = up.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut state = watch.subscribe();
                if !*state.borrow_and_update() {
                    continue; // dropped: closed at once
                }
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up, accept }
    }

    /// A proxy to the test Redis.
    pub async fn to_test_redis() -> Self {
        let url = test_redis_url();
        let host_port = url
            .trim_start_matches("redis://")
            .split(['/', '?'])
            .next()
            .unwrap_or_default()
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_owned();
        let target = tokio::net::lookup_host(&host_port)
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("cannot resolve the test Redis address {host_port}"));
        Self::start(target).await
    }

    /// `redis://<addr>`.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Lets traffic through (`true`) or cuts it (`false`).
    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.set_up(false);
        self.accept.abort();
    }
}
