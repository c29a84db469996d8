//! How every Shippy process connects to Redis: one server (`redis://host:port[/db]`) or a Redis
//! Cluster (`redis+cluster://host1:port,host2:port,...`), behind one [`RedisClient`] and one
//! [`Connection`] type, so the stores (the rate limiter, the revocation store, the event bus) send
//! the same commands either way and never branch on the mode.
//!
//! A cluster URL names a few seed nodes (any of them will do; the client learns the rest from the
//! cluster); a port left out is 6379. Credentials and `rediss+cluster://` (TLS) apply to every node.
//! Commands are routed by key: a multi-key command, script or `MULTI` must keep its keys on one
//! slot, which is what the `{...}` hash tags in the bus's key names are for.
//!
//! Stores are built synchronously, possibly before a runtime exists, so [`LazyConnection`] connects
//! at the first command. A failed attempt leaves nothing behind and the next command tries again;
//! after that the connection reconnects by itself (and, on a cluster, follows `MOVED` and failovers
//! by refreshing its slot map).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::OnceCell;

/// The scheme of a cluster URL, and its TLS twin.
const CLUSTER_SCHEME: &str = "redis+cluster://";
const CLUSTER_TLS_SCHEME: &str = "rediss+cluster://";

/// Where Redis is: one server or a cluster.
#[derive(Clone)]
pub enum RedisClient {
    /// One server (`redis://`, `rediss://`, `unix://`).
    Single(redis::Client),
    /// A Redis Cluster (`redis+cluster://`, `rediss+cluster://`).
    Cluster(Box<ClusterClient>),
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: say only which kind it is.
        f.write_str(match self {
            RedisClient::Single(_) => "RedisClient::Single",
            RedisClient::Cluster(_) => "RedisClient::Cluster",
        })
    }
}

/// `url` with any password replaced by `***`, for error messages and logs: a Redis URL's
/// userinfo (`redis://:secret@host`, `redis://user:secret@host`, and each node of a cluster URL
/// that repeats it) must never reach an operator's terminal or a log store.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // Userinfo ends at the last `@` before the first `/` of the path.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => {
            let (userinfo, hosts) = authority.split_at(at);
            let user = userinfo.split_once(':').map_or("", |(user, _)| user);
            let shown = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_owned()
            };
            format!("{scheme}://{shown}{hosts}{path}")
        }
        None => url.to_owned(),
    }
}

impl RedisClient {
    /// Parses `url`. Nothing is connected yet.
    pub fn open(url: &str) -> RedisResult<RedisClient> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) {
            ("redis://", rest)
        } else if let Some(rest) = url.strip_prefix(CLUSTER_TLS_SCHEME) {
            ("rediss://", rest)
        } else {
            return redis::Client::open(url).map(RedisClient::Single);
        };
        let nodes = cluster_nodes(scheme, rest)?;
        ClusterClient::builder(nodes)
            // Our callers bound every command and retry with their own backoff; the client only
            // has to ride out a MOVED or a slot map refresh, not wait out an outage.
            .retries(3)
            .min_retry_wait(50)
            .max_retry_wait(500)
            .build()
            .map(|client| RedisClient::Cluster(Box::new(client)))
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisClient::Cluster(_))
    }

    /// Opens a connection whose connect gets `connect_timeout` and every response
    /// `response_timeout` (blocking reads need the block time on top).
    pub async fn connect(
        &self,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> RedisResult<Connection> {
        match self {
            RedisClient::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout))
                    // Callers retry with their own backoff; the manager should fail fast.
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_with_config(client.clone(), config)
                    .await
                    .map(Connection::Single)
            }
            RedisClient::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(response_timeout);
                client
                    .get_async_connection_with_config(config)
                    .await
                    .map(|c| Connection::Cluster(Box::new(c)))
            }
        }
    }
}

/// The seed nodes of a cluster URL body (`[user:pass@]host[:port],host[:port]...[/db][?query]`), each as a
/// single-server URL with `scheme`, the credentials and the query.
fn cluster_nodes(scheme: &str, rest: &str) -> RedisResult<Vec<String>> {
    let bad = |detail: String| {
        RedisError::from((
            ErrorKind::InvalidClientConfig,
            "bad Redis Cluster URL",
            detail,
        ))
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), authority),
    };
    // A cluster has one database; a query string (`?protocol=resp3`) applies to every node.
    let query = tail.find('?').map_or("", |at| &tail[at..]);
    let db = tail.split('?').next().unwrap_or_default().trim_matches('/');
    if !db.is_empty() && db != "0" {
        return Err(bad(format!(
            "a cluster has only database 0, not `{db}` (use a key prefix instead)"
        )));
    }
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|host| {
            let has_port = match host.rsplit_once(':') {
                // `[::1]` alone is a bracketed IPv6 address without a port.
                Some((_, port)) => !port.ends_with(']') && !port.is_empty(),
                None => false,
            };
            let port = if has_port { "" } else { ":6379" };
            format!("{scheme}{credentials}{host}{port}{query}")
        })
        .collect();
    if nodes.is_empty() {
        return Err(bad(
            "no node: use redis+cluster://host1:port,host2:port".into()
        ));
    }
    Ok(nodes)
}

/// A connection to one server or to a cluster; cheap to clone (clones share the connection). It is a
/// [`redis::aio::ConnectionLike`], so commands, pipelines and scripts are sent the same way to both.
#[derive(Clone)]
pub enum Connection {
    /// A reconnecting connection to one server.
    Single(ConnectionManager),
    /// A cluster connection: routes each command to the primary of its key's slot.
    Cluster(Box<ClusterConnection>),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

impl Connection {
    /// Every key matching `pattern` (of `type`, when given), with `SCAN`: on a cluster, on every
    /// primary (a plain `SCAN` would see one node's keys only). Sorted, without duplicates.
    pub async fn scan_all(
        &mut self,
        pattern: &str,
        r#type: Option<&str>,
    ) -> RedisResult<Vec<String>> {
        let mut keys = std::collections::BTreeSet::new();
        match self {
            Connection::Single(_) => scan_node(self, None, pattern, r#type, &mut keys).await?,
            Connection::Cluster(_) => {
                for (host, port) in self.primaries().await? {
                    let node = SingleNodeRoutingInfo::ByAddress { host, port };
                    scan_node(self, Some(node), pattern, r#type, &mut keys).await?;
                }
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// The addresses of the cluster's primaries that are not marked failed (`CLUSTER NODES`).
    async fn primaries(&mut self) -> RedisResult<Vec<(String, u16)>> {
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(self).await?;
        Ok(nodes
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let (_id, address, flags) = (fields.next()?, fields.next()?, fields.next()?);
                let flags: Vec<&str> = flags.split(',').collect();
                if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail")) {
                    return None;
                }
                // `ip:port@cport[,hostname]`
                let (host, port) = address.split(['@', ',']).next()?.rsplit_once(':')?;
                Some((host.to_owned(), port.parse().ok()?))
            })
            .collect())
    }
}

/// `SCAN`s one node (`None`: the connection's only server) for `pattern` into `keys`.
async fn scan_node(
    conn: &mut Connection,
    node: Option<SingleNodeRoutingInfo>,
    pattern: &str,
    r#type: Option<&str>,
    keys: &mut std::collections::BTreeSet<String>,
) -> RedisResult<()> {
    let mut cursor = 0u64;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000);
        if let Some(t) = r#type {
            cmd.arg("TYPE").arg(t);
        }
        let reply = match (&mut *conn, &node) {
            (Connection::Cluster(c), Some(node)) => {
                c.route_command(cmd, RoutingInfo::SingleNode(node.clone()))
                    .await?
            }
            _ => cmd.query_async::<Value>(conn).await?,
        };
        let (next, found): (u64, Vec<String>) = redis::FromRedisValue::from_redis_value(reply)?;
        keys.extend(found);
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// A connection opened at the first [`get`](Self::get).
pub struct LazyConnection {
    client: RedisClient,
    /// Set by the first successful connect; empty after a failed one.
    connection: OnceCell<Connection>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl std::fmt::Debug for LazyConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client's URL may carry a password.
        f.debug_struct("LazyConnection")
            .field("client", &self.client)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

impl LazyConnection {
    /// A connection to `client` whose connect and every response get `timeout`.
    pub fn new(client: RedisClient, timeout: Duration) -> LazyConnection {
        LazyConnection::with_timeouts(client, timeout, timeout)
    }

    /// A connection to `client` whose connect gets `connect_timeout` and every response
    /// `response_timeout` (for blocking reads: the block time plus a margin).
    pub fn with_timeouts(
        client: RedisClient,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> LazyConnection {
        LazyConnection {
            client,
            connection: OnceCell::new(),
            connect_timeout,
            response_timeout,
        }
    }

    /// The client this connection is made from.
    pub fn client(&self) -> &RedisClient {
        &self.client
    }

    /// The connection (cheap to clone), connecting first if needed.
    pub async fn get(&self) -> RedisResult<Connection> {
        let connection = self
            .connection
            .get_or_try_init(|| {
                self.client
                    .connect(self.connect_timeout, self.response_timeout)
            })
            .await?;
        Ok(connection.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords_and_keeps_the_rest() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
            ("redis://:s3cret@cache:6379", "redis://:***@cache:6379"),
            (
                "rediss://app:s3cret@cache:6380/0",
                "rediss://app:***@cache:6380/0",
            ),
            ("redis://token@cache", "redis://***@cache"),
            (
                "redis+cluster://:pw@h1:7000,h2:7001",
                "redis+cluster://:***@h1:7000,h2:7001",
            ),
            ("redis://:p@ss@cache/1", "redis://:***@cache/1"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redacted(url), shown, "{url}");
        }
    }

    #[test]
    fn a_bad_url_error_never_shows_its_password() {
        let error = crate::revocation::RedisRevocations::new(
            "redis://:hunter2@[bad",
            "p:",
            std::time::Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[tokio::test]
    async fn connects_on_first_use_and_retries_after_a_failure() {
        let url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let lazy = LazyConnection::new(RedisClient::open(&url).unwrap(), Duration::from_secs(2));
        let mut connection = lazy.get().await.unwrap();
        let pong: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(pong, "PONG");

        let down = LazyConnection::new(
            RedisClient::open("redis://:hunter2@127.0.0.1:1").unwrap(),
            Duration::from_millis(200),
        );
        assert!(down.get().await.is_err());
        assert!(down.get().await.is_err(), "a failed attempt is tried again");
        assert!(!format!("{down:?}").contains("hunter2"));
    }

    #[test]
    fn cluster_urls_name_every_seed_node_with_the_credentials() {
        assert_eq!(
            cluster_nodes("redis://", "a:7000,b:7001").unwrap(),
            ["redis://a:7000", "redis://b:7001"]
        );
        assert_eq!(
            cluster_nodes("redis://", ":pw@a,b:7001/0?protocol=resp3").unwrap(),
            [
                "redis://:pw@a:6379?protocol=resp3",
                "redis://:pw@b:7001?protocol=resp3"
            ]
        );
        assert_eq!(
            cluster_nodes("rediss://", "[::1]:7000,[::1]").unwrap(),
            ["rediss://[::1]:7000", "rediss://[::1]:6379"]
        );
        let no_node = cluster_nodes("redis://", ",").unwrap_err();
        assert!(no_node.to_string().contains("no node"), "{no_node}");
        let db = cluster_nodes("redis://", "a:7000/2").unwrap_err();
        assert!(db.to_string().contains("only database 0"), "{db}");
    }

    #[test]
    fn the_scheme_picks_the_mode_and_a_password_never_shows() {
        let single = RedisClient::open("redis://127.0.0.1:6379").unwrap();
        assert!(!single.is_cluster());
        let cluster =
            RedisClient::open("redis+cluster://:hunter2@127.0.0.1:7000,127.0.0.1:7001").unwrap();
        assert!(cluster.is_cluster());
        assert!(!format!("{cluster:?}").contains("hunter2"));
        assert!(RedisClient::open("redis+cluster://").is_err());
        assert!(RedisClient::open("http://x").is_err());
    }
}
