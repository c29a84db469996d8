//! The Redis-streams bus: the only module that speaks to Redis about events.
//!
//! Layout in Redis, for a logical stream `log` and the default prefix `shippy:`:
//! - `shippy:log`: the stream; each entry has the fields `event` (the [`Event`] as JSON), `kind` (for
//!   people reading it with `redis-cli`) and, when the event was recorded in a traced request,
//!   `traceparent` (W3C trace context; consumers link their spans to it). Trimmed with `XADD ... MAXLEN ~ max_len`.
//! - `shippy:log:dead`: entries a consumer group gave up on, with `source_id`, `group`, `consumer`,
//!   `reason`, `deliveries` and the original `event`.
//! - `shippy:published:<event_id>`: a marker set when an event is added, kept for `dedupe_window`, so a
//!   publish retried after a lost reply finds the marker and does not add the event twice.
//!
//! Connections: publishing, acknowledging and `PING` share one multiplexed connection manager; every group
//! reader and live feed has its own, since a blocking read (`XREADGROUP`/`XREAD ... BLOCK`) holds its
//! connection for the whole wait. Managers reconnect by themselves; each command is bounded by
//! `command_timeout` (plus the block time for blocking reads), so a Redis that hangs becomes an
//! [`BusError::Unavailable`] the caller retries, never a stuck task.

use std::{collections::VecDeque, time::Duration};

use futures::StreamExt;
use redis::{
    Client, RedisError,
    aio::{ConnectionManager, ConnectionManagerConfig},
    streams::{
        StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamPendingCountReply,
        StreamReadReply,
    },
};

use super::{
    BusError, Delivery, Event, EventBus, EventStream, GroupReader, GroupStats, dead_letters,
};
use crate::config::EventsConfig;

/// Adds the event unless its marker says it was added already; returns the entry id either way.
/// KEYS: stream, marker. ARGV: max_len, marker TTL in ms, event JSON, kind, traceparent (may be
/// empty: then the entry has no `traceparent` field).
const PUBLISH_ONCE: &str = r"
local prior = redis.call('GET', KEYS[2])
if prior then return prior end
local id
if ARGV[5] ~= '' then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'event', ARGV[3], 'kind', ARGV[4], 'traceparent', ARGV[5])
else
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'event', ARGV[3], 'kind', ARGV[4])
end
redis.call('SET', KEYS[2], id, 'PX', ARGV[2])
return id
";

/// Redis streams behind [`EventBus`].
pub struct RedisBus {
    client: Client,
    /// Shared by publishes and pings; multiplexed, so concurrent callers do not wait for each other.
    conn: ConnectionManager,
    config: EventsConfig,
    publish_once: redis::Script,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("prefix", &self.config.stream_prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(err: RedisError) -> BusError {
    if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() {
        BusError::Unavailable(err.to_string())
    } else {
        BusError::Command(err.to_string())
    }
}

/// Runs a Redis command future with a deadline.
async fn bounded<T>(
    limit: Duration,
    op: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(limit, op).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(BusError::Unavailable(format!(
            "Redis did not answer within {limit:?}"
        ))),
    }
}

/// Sends `cmd` on `conn` with a deadline.
async fn query<T: redis::FromRedisValue>(
    conn: &mut ConnectionManager,
    cmd: redis::Cmd,
    limit: Duration,
) -> Result<T, BusError> {
    bounded(limit, cmd.query_async::<T>(conn)).await
}

fn manager(client: &Client, response_timeout: Duration) -> Result<ConnectionManager, BusError> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(response_timeout.min(Duration::from_secs(5))))
        // Our callers retry with their own backoff; the manager should fail fast rather than wait it out.
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|e| BusError::Command(e.to_string()))
}

fn decode(entry: &StreamId) -> Result<Event, String> {
    let json: String = entry
        .get("event")
        .ok_or_else(|| "the entry has no `event` field".to_owned())?;
    let mut event: Event = serde_json::from_str(&json)
        .map_err(|e| format!("the `event` field is not an event: {e}"))?;
    // An entry added by hand (a dead letter replayed with XADD) may carry the field only.
    if event.traceparent.is_none() {
        event.traceparent = entry.get("traceparent");
    }
    Ok(event)
}

impl RedisBus {
    /// A bus on the Redis at `url`. Nothing is sent yet: connections open on first use, so a Redis that is
    /// down at start only delays the first publish or read.
    pub fn open(url: &str, config: EventsConfig) -> Result<Self, BusError> {
        let client =
            Client::open(url).map_err(|e| BusError::Command(format!("bad Redis URL: {e}")))?;
        let conn = manager(&client, config.command_timeout)?;
        Ok(Self {
            client,
            conn,
            config,
            publish_once: redis::Script::new(PUBLISH_ONCE),
        })
    }

    /// The Redis key of a logical stream.
    pub fn key(&self, stream: &str) -> String {
        format!("{}{stream}", self.config.stream_prefix)
    }

    /// A connection of its own for blocking reads: its response timeout covers the block time.
    fn blocking_manager(&self) -> Result<ConnectionManager, BusError> {
        manager(
            &self.client,
            self.config.consumer.block + self.config.command_timeout,
        )
    }
}

/// Creates `group` on `key` (and the stream) if missing, starting at the oldest entry.
async fn ensure_group(
    conn: &mut ConnectionManager,
    key: &str,
    group: &str,
    limit: Duration,
) -> Result<(), BusError> {
    let mut cmd = redis::cmd("XGROUP");
    cmd.arg("CREATE")
        .arg(key)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM");
    match tokio::time::timeout(limit, cmd.query_async::<()>(conn)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) if err.code() == Some("BUSYGROUP") => Ok(()),
        Ok(Err(err)) => Err(unavailable(err)),
        Err(_) => Err(BusError::Unavailable(format!(
            "Redis did not answer within {limit:?}"
        ))),
    }
}

fn is_nogroup(err: &BusError) -> bool {
    matches!(err, BusError::Command(m) | BusError::Unavailable(m) if m.contains("NOGROUP"))
}

#[async_trait::async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, event: &Event) -> Result<(), BusError> {
        let json = serde_json::to_string(event).map_err(|e| BusError::Encode(e.to_string()))?;
        let key = self.key(&event.stream);
        let mut conn = self.conn.clone();
        let limit = self.config.command_timeout;
        let window = self.config.dedupe_window.as_millis();
        if window == 0 {
            let mut add = redis::cmd("XADD");
            add.arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.config.max_len)
                .arg("*")
                .arg("event")
                .arg(&json)
                .arg("kind")
                .arg(&event.kind);
            if let Some(traceparent) = &event.traceparent {
                add.arg("traceparent").arg(traceparent);
            }
            query::<String>(&mut conn, add, limit).await?;
        } else {
            let marker = format!("{}published:{}", self.config.stream_prefix, event.event_id);
            let mut invocation = self.publish_once.key(&key);
            invocation
                .key(&marker)
                .arg(self.config.max_len)
                .arg(u64::try_from(window).unwrap_or(u64::MAX))
                .arg(&json)
                .arg(&event.kind)
                .arg(event.traceparent.as_deref().unwrap_or_default());
            bounded(limit, invocation.invoke_async::<String>(&mut conn)).await?;
        }
        Ok(())
    }

    async fn subscribe(&self, stream: &str) -> Result<EventStream, BusError> {
        let mut tail = Tail {
            conn: self.blocking_manager()?,
            key: self.key(stream),
            last_id: None,
            buffer: VecDeque::new(),
            block: self.config.consumer.block,
            limit: self.config.command_timeout,
            backoff: self.config.consumer.retry_initial,
            retry_initial: self.config.consumer.retry_initial,
            retry_max: self.config.consumer.retry_max,
        };
        // Start from the newest entry now, so "from now on" means from this call. If Redis is down, the feed
        // starts from whatever is newest when it first gets through.
        if let Err(err) = tail.start().await {
            tracing::warn!(stream = %tail.key, error = %err, "live event feed starts later: Redis unavailable");
        }
        let feed = futures::stream::unfold(tail, |mut tail| async move {
            loop {
                if let Some(event) = tail.buffer.pop_front() {
                    return Some((event, tail));
                }
                match tail.fill().await {
                    Ok(()) => tail.backoff = tail.retry_initial,
                    Err(err) => {
                        tracing::warn!(stream = %tail.key, error = %err, retry_in = ?tail.backoff, "live event feed cannot read; retrying");
                        tokio::time::sleep(tail.backoff).await;
                        tail.backoff = (tail.backoff * 2).min(tail.retry_max);
                    }
                }
            }
        });
        Ok(feed.boxed())
    }

    async fn join_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
    ) -> Result<Box<dyn GroupReader>, BusError> {
        let key = self.key(stream);
        let mut conn = self.blocking_manager()?;
        ensure_group(&mut conn, &key, group, self.config.command_timeout).await?;
        Ok(Box::new(RedisGroupReader {
            conn,
            dead_key: self.key(&dead_letters(stream)),
            key,
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            claim_cursor: "0-0".into(),
            max_len: self.config.max_len,
            limit: self.config.command_timeout,
        }))
    }

    async fn ping(&self) -> Result<(), BusError> {
        let mut conn = self.conn.clone();
        query::<String>(&mut conn, redis::cmd("PING"), self.config.command_timeout)
            .await
            .map(drop)
    }
}

/// A live feed's position in one stream.
struct Tail {
    conn: ConnectionManager,
    key: String,
    /// The last entry seen. `None` until the first read, which starts after the newest entry then; kept
    /// across failures, so a Redis outage delays events but does not skip them.
    last_id: Option<String>,
    buffer: VecDeque<Event>,
    block: Duration,
    limit: Duration,
    backoff: Duration,
    retry_initial: Duration,
    retry_max: Duration,
}

impl Tail {
    /// Remembers the stream's newest entry as the starting point. `XREAD ... $` would not do: it would miss
    /// entries added between two reads.
    async fn start(&mut self) -> Result<String, BusError> {
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(&self.key).arg("+").arg("-").arg("COUNT").arg(1);
        let newest: Vec<(String, redis::Value)> = query(&mut self.conn, cmd, self.limit).await?;
        let id = newest
            .into_iter()
            .next()
            .map_or_else(|| "0-0".to_owned(), |(id, _)| id);
        self.last_id = Some(id.clone());
        Ok(id)
    }

    async fn fill(&mut self) -> Result<(), BusError> {
        let last_id = match &self.last_id {
            Some(id) => id.clone(),
            None => self.start().await?,
        };
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(256)
            .arg("BLOCK")
            .arg(
                u64::try_from(self.block.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .arg("STREAMS")
            .arg(&self.key)
            .arg(&last_id);
        let reply: Option<StreamReadReply> =
            query(&mut self.conn, cmd, self.block + self.limit).await?;
        let Some(reply) = reply else {
            return Ok(());
        };
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            match decode(&entry) {
                Ok(event) => self.buffer.push_back(event),
                Err(reason) => {
                    tracing::warn!(stream = %self.key, entry = %entry.id, %reason, "skipping an undecodable entry");
                }
            }
            self.last_id = Some(entry.id);
        }
        Ok(())
    }
}

/// One consumer of a Redis consumer group, on a connection of its own.
struct RedisGroupReader {
    conn: ConnectionManager,
    key: String,
    dead_key: String,
    group: String,
    consumer: String,
    /// Where the next `XAUTOCLAIM` scan of the pending list starts (`0-0`: from the beginning).
    claim_cursor: String,
    max_len: usize,
    limit: Duration,
}

impl RedisGroupReader {
    /// Runs `op`; when the group is gone (Redis restarted without persistence, the key was deleted),
    /// creates it again and reports the failure so the caller simply reads again.
    async fn recovering<T>(&mut self, result: Result<T, BusError>) -> Result<T, BusError> {
        match result {
            Err(err) if is_nogroup(&err) => {
                tracing::warn!(stream = %self.key, group = %self.group, "consumer group missing; creating it again");
                ensure_group(&mut self.conn, &self.key, &self.group, self.limit).await?;
                Err(err)
            }
            other => other,
        }
    }
}

#[async_trait::async_trait]
impl GroupReader for RedisGroupReader {
    async fn claim_idle(
        &mut self,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.key)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX))
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(count);
        let result = query::<StreamAutoClaimReply>(&mut self.conn, cmd, self.limit).await;
        let reply = self.recovering(result).await?;
        self.claim_cursor = reply.next_stream_id;
        if !reply.deleted_ids.is_empty() {
            tracing::error!(
                stream = %self.key,
                group = %self.group,
                lost = ?reply.deleted_ids,
                "pending entries were trimmed (MAXLEN) before being handled; raise events.max_len"
            );
        }
        let (Some(first), Some(last)) = (reply.claimed.first(), reply.claimed.last()) else {
            return Ok(Vec::new());
        };
        // XAUTOCLAIM does not say how often an entry was delivered; XPENDING does.
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(&self.key)
            .arg(&self.group)
            .arg(&first.id)
            .arg(&last.id)
            .arg(reply.claimed.len())
            .arg(&self.consumer);
        let pending: StreamPendingCountReply = query(&mut self.conn, cmd, self.limit).await?;
        let counts: std::collections::HashMap<&str, u64> = pending
            .ids
            .iter()
            .map(|p| (p.id.as_str(), p.times_delivered as u64))
            .collect();
        Ok(reply
            .claimed
            .iter()
            .map(|entry| Delivery {
                id: entry.id.clone(),
                event: decode(entry),
                deliveries: counts.get(entry.id.as_str()).copied().unwrap_or(2),
            })
            .collect())
    }

    async fn read_new(&mut self, count: usize, block: Duration) -> Result<Vec<Delivery>, BusError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">");
        let result =
            query::<Option<StreamReadReply>>(&mut self.conn, cmd, block + self.limit).await;
        let Some(reply) = self.recovering(result).await? else {
            return Ok(Vec::new());
        };
        Ok(reply
            .keys
            .into_iter()
            .flat_map(|k| k.ids)
            .map(|entry| Delivery {
                event: decode(&entry),
                id: entry.id,
                deliveries: 1,
            })
            .collect())
    }

    async fn ack(&mut self, ids: &[String]) -> Result<(), BusError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.key).arg(&self.group).arg(ids);
        query::<u64>(&mut self.conn, cmd, self.limit)
            .await
            .map(drop)
    }

    async fn stats(&mut self) -> Result<GroupStats, BusError> {
        let mut cmd = redis::cmd("XINFO");
        cmd.arg("GROUPS").arg(&self.key);
        let result = query::<StreamInfoGroupsReply>(&mut self.conn, cmd, self.limit).await;
        let reply = self.recovering(result).await?;
        let group = reply
            .groups
            .into_iter()
            .find(|g| g.name == self.group)
            .ok_or_else(|| BusError::Command(format!("NOGROUP {} on {}", self.group, self.key)))?;
        Ok(GroupStats {
            lag: group.lag.map(|lag| lag as u64),
            pending: group.pending as u64,
        })
    }

    async fn dead_letter(&mut self, delivery: &Delivery, reason: &str) -> Result<(), BusError> {
        tracing::error!(
            stream = %self.key,
            group = %self.group,
            entry = %delivery.id,
            deliveries = delivery.deliveries,
            reason,
            "dead-lettering an event that cannot be handled"
        );
        let mut add = redis::cmd("XADD");
        add.arg(&self.dead_key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*")
            .arg("source_id")
            .arg(&delivery.id)
            .arg("group")
            .arg(&self.group)
            .arg("consumer")
            .arg(&self.consumer)
            .arg("reason")
            .arg(reason)
            .arg("deliveries")
            .arg(delivery.deliveries);
        if let Ok(event) = &delivery.event {
            let json = serde_json::to_string(event).map_err(|e| BusError::Encode(e.to_string()))?;
            add.arg("event").arg(json).arg("kind").arg(&event.kind);
        }
        // MULTI/EXEC: the entry is in the dead-letter stream if and only if it left the pending list.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .add_command(add)
            .ignore()
            .cmd("XACK")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&delivery.id)
            .ignore();
        bounded(self.limit, pipe.query_async::<()>(&mut self.conn)).await
    }
}
