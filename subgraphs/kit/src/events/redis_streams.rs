//! The Redis-streams bus: the only module that speaks to Redis about events.
//!
//! Layout in Redis, for a logical stream `log` and the default prefix `shippy:`:
//! - `shippy:log`: the stream (and its consumer groups); each entry has the fields `event` (the [`Event`]
//!   as JSON), `kind` (for people reading it with `redis-cli`) and, when the event was recorded in a
//!   traced request, `traceparent` (W3C trace context; consumers link their spans to it). Trimmed with
//!   `XADD ... MAXLEN ~ max_len`.
//! - `{shippy:log}:dead`: entries a consumer group gave up on, with `source_id`, `group`, `consumer`,
//!   `reason`, `deliveries` and the original `event`.
//! - `{shippy:log}:published:<event_id>`: a marker set when an event is added, kept for `dedupe_window`,
//!   so a publish retried after a lost reply finds the marker and does not add the event twice.
//! - `shippy:epoch:<holder>`: a marker each outbox relay keeps (see [`EventBus::mark_epoch`]); when it is
//!   gone, Redis lost its data and the relay publishes its retained rows again.
//!
//! The braces are a Redis Cluster hash tag: a key with `{x}` in it lives on the slot of `x`, and a key
//! without braces on the slot of its whole name, so `{shippy:log}:dead` and the publish markers share the
//! slot of the stream `shippy:log` itself. That keeps the publish script, the dead-letter step (`XADD` to
//! the dead letters + `XACK`) and the replay (`XADD` + `XDEL`) on one slot, while the stream keeps the name
//! it has always had on a single server. Dead letters written under the old name (`shippy:log:dead`,
//! before hash tags) are moved to the new one when a consumer of the stream starts and when dead letters
//! are read ([`RedisBus::dead_letters`]); old publish markers simply expire after `dedupe_window`.
//!
//! Connections (see `shippy_security::redis`: one server or a cluster, the same commands): publishing,
//! acknowledging and `PING` share one multiplexed connection; every group reader and live feed has its
//! own, since a blocking read (`XREADGROUP`/`XREAD ... BLOCK`) holds its connection for the whole wait.
//! Connections reconnect by themselves; each command is bounded by `command_timeout` (plus the block time
//! for blocking reads), so a Redis that hangs becomes an [`BusError::Unavailable`] the caller retries,
//! never a stuck task.
//!
//! Durability across a failover: replication to replicas is asynchronous, so a primary that dies right
//! after adding an event may take it along. With `publish_replicas` (by default 1 on a cluster) a publish
//! counts only once `WAIT` says that many replicas hold it; until then the outbox row stays unsent and is
//! published again, and the publish marker (on the same slot, replicated with it) keeps that retry from
//! adding the event twice.

use std::{collections::VecDeque, time::Duration};

use futures::StreamExt;
use redis::{
    RedisError,
    streams::{
        StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamPendingCountReply,
        StreamReadReply,
    },
};

use shippy_security::redis::{Connection, LazyConnection, RedisClient};

use super::{
    BusError, DeadLetter, Delivery, Event, EventBus, EventStream, GroupReader, GroupStats,
    dead_letters,
};
use crate::config::EventsConfig;

/// Adds the event unless its marker says it was added already; returns the entry id either way.
/// KEYS: stream, marker, and optionally the marker of the event before it in the same batch and stream.
/// ARGV: max_len, marker TTL in ms, event JSON, kind, traceparent (may be empty: then the entry has no
/// `traceparent` field).
/// A retry that finds the marker still writes (it renews the marker's TTL): replication is in order, so a
/// `WAIT` after it confirms the replicas hold the original entry too, even when the retry comes on a new
/// connection that never carried the original write.
/// The third key keeps a batch in order: the events of a batch are pipelined, so Redis runs each one's
/// script whatever became of the one before; when that one failed (its marker is not there), this one
/// refuses too rather than enter the stream ahead of it.
const PUBLISH_ONCE: &str = r"
if KEYS[3] and redis.call('TYPE', KEYS[3]).ok ~= 'string' then
  return redis.error_reply('UNORDERED the event before this one in its batch was not published; this one waits for it')
end
local prior = redis.call('GET', KEYS[2])
if prior then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return prior
end
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
    client: RedisClient,
    /// Shared by publishes and pings; multiplexed, so concurrent callers do not wait for each other.
    conn: LazyConnection,
    config: EventsConfig,
    /// Replicas that must hold a published event before the publish counts (`WAIT`); 0: do not wait.
    publish_replicas: usize,
    /// When a publish with fewer replicas than wanted was last logged: a primary without its replica is
    /// logged every [`DEGRADED_LOG_INTERVAL`], not once per event.
    degraded_logged: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// Shortest time between two logs of publishes accepted with fewer replicas than wanted.
const DEGRADED_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("prefix", &self.config.stream_prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(err: RedisError) -> BusError {
    // Cluster errors (`CLUSTERDOWN`, `TRYAGAIN`, a slot whose primary just failed) pass once the cluster
    // has promoted a replica: they are outages to wait out, like a dropped connection.
    let transient_reply = matches!(err.code(), Some("MASTERDOWN" | "READONLY" | "LOADING"));
    if err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_cluster_error()
        || err.is_unrecoverable_error()
        || transient_reply
    {
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

/// Sends `cmd` on `conn` (connecting first if needed) with a deadline.
async fn query<T: redis::FromRedisValue>(
    conn: &LazyConnection,
    cmd: redis::Cmd,
    limit: Duration,
) -> Result<T, BusError> {
    bounded(limit, async {
        let mut c = conn.get().await?;
        cmd.query_async::<T>(&mut c).await
    })
    .await
}

/// Sends `pipe` on `conn` (connecting first if needed) with a deadline.
async fn query_pipe<T: redis::FromRedisValue>(
    conn: &LazyConnection,
    pipe: &redis::Pipeline,
    limit: Duration,
) -> Result<T, BusError> {
    bounded(limit, async {
        let mut c: Connection = conn.get().await?;
        pipe.query_async::<T>(&mut c).await
    })
    .await
}

/// A connection made on first use, whose responses may take `response_timeout`.
fn lazy(client: &RedisClient, response_timeout: Duration) -> LazyConnection {
    LazyConnection::with_timeouts(
        client.clone(),
        response_timeout.min(Duration::from_secs(5)),
        response_timeout,
    )
}

/// The key of something that belongs to the stream at `stream_key` (its dead letters, its publish
/// markers): `{<stream_key>}<suffix>`, on the stream's cluster slot. A stream key that has a hash tag of
/// its own already (a prefix such as `{shippy}:`) keeps it: `<stream_key><suffix>`.
pub(crate) fn same_slot(stream_key: &str, suffix: &str) -> String {
    let tagged = stream_key
        .find('{')
        .and_then(|open| stream_key[open + 1..].find('}'))
        .is_some_and(|len| len > 0);
    if tagged {
        format!("{stream_key}{suffix}")
    } else {
        format!("{{{stream_key}}}{suffix}")
    }
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
            RedisClient::open(url).map_err(|e| BusError::Command(format!("bad Redis URL: {e}")))?;
        let conn = lazy(&client, config.command_timeout);
        let publish_replicas = config
            .publish_replicas
            .unwrap_or(usize::from(client.is_cluster()));
        Ok(Self {
            client,
            conn,
            config,
            publish_replicas,
            degraded_logged: std::sync::Mutex::new(None),
        })
    }

    /// The Redis key of a logical stream.
    pub fn key(&self, stream: &str) -> String {
        format!("{}{stream}", self.config.stream_prefix)
    }

    /// The Redis key of a logical stream's dead letters (on the stream's slot).
    pub fn dead_letters_key(&self, stream: &str) -> String {
        same_slot(&self.key(stream), ":dead")
    }

    /// The key where the dead letters of `stream` lived before keys were hash-tagged.
    fn legacy_dead_letters_key(&self, stream: &str) -> String {
        self.key(&dead_letters(stream))
    }

    /// Moves dead letters left under the old key name of `stream` (`<prefix><stream>:dead`, written by a
    /// Shippy from before hash tags, or by one still running during a rolling upgrade) to the new one,
    /// oldest first. Each entry is added to the new key before it is deleted from the old one, so an
    /// interruption at worst leaves one entry in both (listed twice; replaying it twice is harmless, as
    /// groups ignore an event id they handled). Returns how many entries moved.
    async fn adopt_legacy_dead_letters(&self, stream: &str) -> Result<usize, BusError> {
        let legacy = self.legacy_dead_letters_key(stream);
        let current = self.dead_letters_key(stream);
        if legacy == current {
            return Ok(0);
        }
        let limit = self.config.command_timeout;
        let mut moved = 0;
        loop {
            let mut range = redis::cmd("XRANGE");
            range.arg(&legacy).arg("-").arg("+").arg("COUNT").arg(100);
            let entries: redis::streams::StreamRangeReply = query(&self.conn, range, limit).await?;
            if entries.ids.is_empty() {
                break;
            }
            for entry in &entries.ids {
                let mut add = redis::cmd("XADD");
                add.arg(&current).arg("*");
                // Fields in a stable order; the values are the bytes Redis holds.
                let mut fields: Vec<&String> = entry.map.keys().collect();
                fields.sort();
                for field in fields {
                    let value: Vec<u8> = entry.get(field).unwrap_or_default();
                    add.arg(field).arg(value);
                }
                query::<String>(&self.conn, add, limit).await?;
                let mut del = redis::cmd("XDEL");
                del.arg(&legacy).arg(&entry.id);
                query::<u64>(&self.conn, del, limit).await?;
                moved += 1;
            }
        }
        if moved > 0 {
            // The emptied stream would still show up in listings.
            let mut del = redis::cmd("DEL");
            del.arg(&legacy);
            query::<u64>(&self.conn, del, limit).await?;
            tracing::info!(stream, moved, from = %legacy, to = %current, "moved dead letters to their hash-tagged key");
        }
        Ok(moved)
    }

    /// `XADD` of `event` (encoded as `json`) to the stream at `key`, trimmed to about `max_len`.
    fn xadd(&self, key: &str, json: &str, event: &Event) -> redis::Cmd {
        let mut add = redis::cmd("XADD");
        add.arg(key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.config.max_len)
            .arg("*")
            .arg("event")
            .arg(json)
            .arg("kind")
            .arg(&event.kind);
        if let Some(traceparent) = &event.traceparent {
            add.arg("traceparent").arg(traceparent);
        }
        add
    }

    /// The logical streams that have a dead-letter stream, sorted: `SCAN` (on every primary of a cluster)
    /// for the dead-letter keys, under their hash-tagged name and under the old one.
    pub async fn dead_letter_streams(&self) -> Result<Vec<String>, BusError> {
        let prefix = &self.config.stream_prefix;
        let current = self.dead_letters_key("*");
        let legacy = self.legacy_dead_letters_key("*");
        let (before, after) = current.split_once('*').unwrap_or((&current, ""));
        let mut streams = std::collections::BTreeSet::new();
        for (pattern, head, tail) in [
            (current.as_str(), before, after),
            (legacy.as_str(), prefix.as_str(), ":dead"),
        ] {
            let keys = bounded(self.config.command_timeout, async {
                let mut c = self.conn.get().await?;
                c.scan_all(pattern, Some("stream")).await
            })
            .await?;
            streams.extend(keys.into_iter().filter_map(|key| {
                key.strip_prefix(head)
                    .and_then(|k| k.strip_suffix(tail))
                    .map(str::to_owned)
            }));
        }
        Ok(streams.into_iter().collect())
    }

    /// Up to `count` dead letters of `stream` (a logical stream such as `vessel`), oldest first.
    pub async fn dead_letters(
        &self,
        stream: &str,
        count: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        self.adopt_legacy_dead_letters(stream).await?;
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(self.dead_letters_key(stream))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count);
        let entries: redis::streams::StreamRangeReply =
            query(&self.conn, cmd, self.config.command_timeout).await?;
        Ok(entries
            .ids
            .iter()
            .map(|entry| dead_letter_of(stream, entry))
            .collect())
    }

    /// Publishes dead letter `id` of `stream` again to `stream`, where every group sees it anew (groups that
    /// handled it already ignore it by event id), and removes it from the dead letters, in one step. Returns
    /// the dead letter, or `None` when `stream` has no dead letter `id`. A dead letter without a decodable
    /// event cannot be replayed ([`BusError::Command`]).
    pub async fn replay_dead_letter(
        &self,
        stream: &str,
        id: &str,
    ) -> Result<Option<DeadLetter>, BusError> {
        let dead_key = self.dead_letters_key(stream);
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(&dead_key).arg(id).arg(id);
        let limit = self.config.command_timeout;
        let entries: redis::streams::StreamRangeReply = query(&self.conn, cmd, limit).await?;
        let Some(entry) = entries.ids.first() else {
            return Ok(None);
        };
        let letter = dead_letter_of(stream, entry);
        let event = letter.event.as_ref().map_err(|reason| {
            BusError::Command(format!(
                "dead letter {id} of {stream} cannot be replayed: {reason}"
            ))
        })?;
        let json = serde_json::to_string(event).map_err(|e| BusError::Encode(e.to_string()))?;
        // A plain XADD, not the publish-once script: the event's dedupe marker still says it was published.
        let add = self.xadd(&self.key(stream), &json, event);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .add_command(add)
            .ignore()
            .cmd("XDEL")
            .arg(&dead_key)
            .arg(id)
            .ignore();
        query_pipe::<()>(&self.conn, &pipe, limit).await?;
        tracing::info!(stream, dead_letter = id, event_id = %event.event_id, "dead letter replayed");
        Ok(Some(letter))
    }

    /// A connection of its own for blocking reads: its response timeout covers the block time.
    fn blocking_connection(&self) -> LazyConnection {
        lazy(
            &self.client,
            self.config.consumer.block + self.config.command_timeout,
        )
    }

    /// The command that adds `event` (encoded as `json`) to the stream at `key`: the publish-once script
    /// with the event's dedupe marker, or a plain `XADD` when there is no dedupe window. `previous` is the
    /// marker of the event before it in the same pipeline and stream, which must be there (see
    /// [`PUBLISH_ONCE`]). Returns the command and this event's marker.
    fn add_command(
        &self,
        key: &str,
        json: &str,
        event: &Event,
        previous: Option<&str>,
    ) -> (redis::Cmd, Option<String>) {
        let window = self.config.dedupe_window.as_millis();
        if window == 0 {
            return (self.xadd(key, json, event), None);
        }
        let marker = same_slot(key, &format!(":published:{}", event.event_id));
        // `EVAL` with the source rather than `EVALSHA`: in a pipeline there is no second chance after
        // `NOSCRIPT` (a node that restarted, a replica just promoted), and the script is short.
        let mut add = redis::cmd("EVAL");
        add.arg(PUBLISH_ONCE)
            .arg(if previous.is_some() { 3 } else { 2 })
            .arg(key)
            .arg(&marker);
        if let Some(previous) = previous {
            add.arg(previous);
        }
        add.arg(self.config.max_len)
            .arg(u64::try_from(window).unwrap_or(u64::MAX))
            .arg(json)
            .arg(&event.kind)
            .arg(event.traceparent.as_deref().unwrap_or_default());
        (add, Some(marker))
    }

    /// Publishes `events`, all of the stream at `key`, in one pipeline (one round trip; one slot of a
    /// cluster), and, when `publish_replicas` is set, confirms them with one `WAIT`. One result per event,
    /// in order.
    async fn publish_run(&self, key: &str, events: &[&Event]) -> Vec<Result<(), BusError>> {
        let mut pipe = redis::pipe();
        // One reply per command, errors included: an event the script refused must not fail the others'.
        pipe.ignore_errors();
        let mut previous: Option<String> = None;
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            match serde_json::to_string(event) {
                Ok(json) => {
                    let (add, marker) = self.add_command(key, &json, event, previous.as_deref());
                    pipe.add_command(add);
                    previous = marker;
                    encoded.push(Ok(()));
                }
                Err(err) => {
                    // The events after it are not sent: they must not enter the stream ahead of it.
                    encoded.push(Err(BusError::Encode(err.to_string())));
                    break;
                }
            }
        }
        if pipe.is_empty() {
            return encoded;
        }
        let sent = pipe.len();
        let wanted = self.publish_replicas;
        if wanted > 0 {
            // `ROLE` rides in the pipeline, so it reaches the primary that took the events.
            pipe.cmd("ROLE");
        }
        let limit = self.config.command_timeout;
        let mut replies =
            match query_pipe::<Vec<redis::RedisResult<redis::Value>>>(&self.conn, &pipe, limit)
                .await
            {
                Ok(replies) => replies,
                Err(err) => return vec![Err(err); sent],
            };
        let role = if wanted > 0 {
            replies.pop().and_then(Result::ok)
        } else {
            None
        };
        let mut results: Vec<Result<(), BusError>> = replies
            .into_iter()
            .take(sent)
            .map(|reply| reply.map(drop).map_err(unavailable))
            .collect();
        if results.len() < sent {
            results.resize_with(sent, || {
                Err(BusError::Command(
                    "Redis sent fewer replies than commands".into(),
                ))
            });
        }
        if wanted > 0 && results.iter().any(Result::is_ok) {
            let what = match events {
                [event] => format!("event {}", event.event_id),
                _ => format!("a batch of {sent} events"),
            };
            if let Err(err) = self.confirm_replicas(key, role.as_ref(), &what).await {
                for result in &mut results {
                    if result.is_ok() {
                        *result = Err(err.clone());
                    }
                }
            }
        }
        results.extend(encoded.into_iter().skip(sent));
        results
    }

    /// Waits until `publish_replicas` replicas of the primary of `key`'s slot hold what was just added
    /// there (`WAIT`); fewer when the primary has fewer replicas connected, as `role` (its `ROLE` reply,
    /// from the pipeline that carried the write) says: right after a failover the promoted replica has
    /// none until the old primary comes back as its replica, a write there cannot be kept any safer, and
    /// refusing it would stop the stream. `WAIT` rides in one pipeline with a read of `key`, so it reaches
    /// the primary of `key`'s slot on the connection that carried the write.
    async fn confirm_replicas(
        &self,
        key: &str,
        role: Option<&redis::Value>,
        what: &str,
    ) -> Result<(), BusError> {
        let limit = self.config.command_timeout;
        let wanted = self.publish_replicas;
        let connected = role.map_or(0, connected_replicas);
        let needed = wanted.min(connected);
        if needed < wanted {
            metrics::counter!(
                shippy_telemetry::metrics::names::EVENTS_UNREPLICATED,
                "outcome" => "accepted_with_fewer_replicas"
            )
            .increment(1);
            let now = tokio::time::Instant::now();
            let log = {
                let mut last = self
                    .degraded_logged
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let due = last.is_none_or(|at| now - at >= DEGRADED_LOG_INTERVAL);
                if due {
                    *last = Some(now);
                }
                due
            };
            if log {
                tracing::warn!(%what, %key, connected, wanted, "published to a Redis primary with fewer replicas connected than events.publish_replicas; a failover of it now could lose the event (bring its replica back; logged every 10 s, counted in shippy_events_unreplicated_total)");
            }
        }
        if needed == 0 {
            return Ok(());
        }
        // Half the command timeout, so that a slow replica is our answer, not a timeout.
        let wait_ms = u64::try_from((limit / 2).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("TYPE")
            .arg(key)
            .ignore()
            .cmd("WAIT")
            .arg(needed)
            .arg(wait_ms);
        let (replicas,): (usize,) = query_pipe(&self.conn, &pipe, limit).await?;
        if replicas < needed {
            metrics::counter!(
                shippy_telemetry::metrics::names::EVENTS_UNREPLICATED,
                "outcome" => "retried"
            )
            .increment(1);
            return Err(BusError::Unavailable(format!(
                "{what} was added, but only {replicas} of {needed} replicas confirmed it within {wait_ms} ms; \
                 it will be published again (check the replicas' replication link)"
            )));
        }
        Ok(())
    }
}

/// How many replicas a `ROLE` reply says are connected to this primary (0 for anything else).
fn connected_replicas(role: &redis::Value) -> usize {
    let redis::Value::Array(parts) = role else {
        return 0;
    };
    match (parts.first(), parts.get(2)) {
        (Some(redis::Value::BulkString(name)), Some(redis::Value::Array(replicas)))
            if name.as_slice() == b"master" =>
        {
            replicas.len()
        }
        _ => 0,
    }
}

/// Creates `group` on `key` (and the stream) if missing, starting at the oldest entry.
async fn ensure_group(
    conn: &LazyConnection,
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
    let create = async {
        let mut c = conn.get().await?;
        cmd.query_async::<()>(&mut c).await
    };
    match tokio::time::timeout(limit, create).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) if err.code() == Some("BUSYGROUP") => Ok(()),
        Ok(Err(err)) => Err(unavailable(err)),
        Err(_) => Err(BusError::Unavailable(format!(
            "Redis did not answer within {limit:?}"
        ))),
    }
}

/// A dead-letter stream entry as a [`DeadLetter`] of logical stream `stream`.
fn dead_letter_of(stream: &str, entry: &StreamId) -> DeadLetter {
    let field = |name: &str| entry.get::<String>(name).unwrap_or_default();
    DeadLetter {
        stream: stream.to_owned(),
        id: entry.id.clone(),
        source_id: field("source_id"),
        group: field("group"),
        consumer: field("consumer"),
        reason: field("reason"),
        deliveries: entry.get("deliveries").unwrap_or(0),
        event: decode(entry),
    }
}

fn is_nogroup(err: &BusError) -> bool {
    matches!(err, BusError::Command(m) | BusError::Unavailable(m) if m.contains("NOGROUP"))
}

#[async_trait::async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, event: &Event) -> Result<(), BusError> {
        self.publish_batch(std::slice::from_ref(event))
            .await
            .pop()
            .unwrap_or_else(|| Err(BusError::Command("no reply for the event".into())))
    }

    /// One pipeline per stream of the batch (a cluster takes a pipeline only within one slot), all sent
    /// at once, so the batch costs about one round trip.
    async fn publish_batch(&self, events: &[Event]) -> Vec<Result<(), BusError>> {
        // The batch's streams in order of appearance, each with its events' positions in the batch.
        let mut runs: Vec<(String, Vec<usize>)> = Vec::new();
        for (at, event) in events.iter().enumerate() {
            let key = self.key(&event.stream);
            match runs.iter_mut().find(|(k, _)| *k == key) {
                Some((_, positions)) => positions.push(at),
                None => runs.push((key, vec![at])),
            }
        }
        let outcomes = futures::future::join_all(runs.iter().map(|(key, positions)| {
            let run: Vec<&Event> = positions.iter().map(|&at| &events[at]).collect();
            async move { self.publish_run(key, &run).await }
        }))
        .await;
        let mut results: Vec<Option<Result<(), BusError>>> = vec![None; events.len()];
        for ((_, positions), outcome) in runs.iter().zip(outcomes) {
            for (&at, result) in positions.iter().zip(outcome) {
                results[at] = Some(result);
            }
        }
        // An event of a run cut short (it could not be encoded) has no result: the results end before it.
        results.into_iter().map_while(|result| result).collect()
    }

    async fn subscribe(&self, stream: &str) -> Result<EventStream, BusError> {
        let mut tail = Tail {
            conn: self.blocking_connection(),
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
        let conn = self.blocking_connection();
        ensure_group(&conn, &key, group, self.config.command_timeout).await?;
        // A restarted consumer is the moment to pick up dead letters an older Shippy left under the old
        // key name; failing to is not a reason to stop consuming.
        if let Err(err) = self.adopt_legacy_dead_letters(stream).await {
            tracing::warn!(stream, error = %err, "could not move old dead letters to their hash-tagged key; will try again at the next start");
        }
        Ok(Box::new(RedisGroupReader {
            conn,
            dead_key: self.dead_letters_key(stream),
            key,
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            claim_cursor: "0-0".into(),
            max_len: self.config.max_len,
            limit: self.config.command_timeout,
        }))
    }

    async fn ping(&self) -> Result<(), BusError> {
        // On a cluster, PING goes to every node the client knows and fails if one does not answer.
        query::<redis::Value>(&self.conn, redis::cmd("PING"), self.config.command_timeout)
            .await
            .map(drop)
    }

    async fn mark_epoch(&self, holder: &str) -> Result<bool, BusError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}epoch:{holder}", self.config.stream_prefix))
            .arg(chrono::Utc::now().to_rfc3339())
            .arg("NX");
        // `SET ... NX` answers OK when it set the key (it was missing), nil when the key was there.
        let set: Option<String> = query(&self.conn, cmd, self.config.command_timeout).await?;
        Ok(set.is_some())
    }
}

/// A live feed's position in one stream.
struct Tail {
    conn: LazyConnection,
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
        let newest: Vec<(String, redis::Value)> = query(&self.conn, cmd, self.limit).await?;
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
            query(&self.conn, cmd, self.block + self.limit).await?;
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
    conn: LazyConnection,
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
    /// Passes `result` on; when the group is gone (Redis restarted without persistence, the key was
    /// deleted), creates it again and answers `empty` instead: the group is back and simply has nothing for
    /// this call, so the consumer goes on reading at once rather than backing off.
    async fn recovering<T>(
        &mut self,
        result: Result<T, BusError>,
        empty: T,
    ) -> Result<T, BusError> {
        match result {
            Err(err) if is_nogroup(&err) => {
                tracing::warn!(stream = %self.key, group = %self.group, "consumer group missing (Redis lost its data?); creating it again");
                metrics::counter!(
                    shippy_telemetry::metrics::names::STREAM_GROUPS_RECREATED,
                    "stream" => self.key.clone(),
                    "group" => self.group.clone()
                )
                .increment(1);
                ensure_group(&self.conn, &self.key, &self.group, self.limit).await?;
                self.claim_cursor = "0-0".into();
                Ok(empty)
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
        let result = query::<StreamAutoClaimReply>(&self.conn, cmd, self.limit).await;
        let Some(reply) = self.recovering(result.map(Some), None).await? else {
            return Ok(Vec::new());
        };
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
        let pending: StreamPendingCountReply = query(&self.conn, cmd, self.limit).await?;
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
        let result = query::<Option<StreamReadReply>>(&self.conn, cmd, block + self.limit).await;
        let Some(reply) = self.recovering(result, None).await? else {
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
        query::<u64>(&self.conn, cmd, self.limit).await.map(drop)
    }

    async fn stats(&mut self) -> Result<GroupStats, BusError> {
        let mut cmd = redis::cmd("XINFO");
        cmd.arg("GROUPS").arg(&self.key);
        let result = query::<StreamInfoGroupsReply>(&self.conn, cmd, self.limit).await;
        let Some(reply) = self.recovering(result.map(Some), None).await? else {
            return Ok(GroupStats::default());
        };
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

    async fn prune_consumers(&mut self, idle: Duration) -> Result<Vec<String>, BusError> {
        let mut cmd = redis::cmd("XINFO");
        cmd.arg("CONSUMERS").arg(&self.key).arg(&self.group);
        let reply: redis::streams::StreamInfoConsumersReply =
            query(&self.conn, cmd, self.limit).await?;
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let mut pruned = Vec::new();
        for consumer in reply.consumers {
            if consumer.name == self.consumer
                || consumer.pending > 0
                || (consumer.idle as u64) <= idle_ms
            {
                continue;
            }
            let mut del = redis::cmd("XGROUP");
            del.arg("DELCONSUMER")
                .arg(&self.key)
                .arg(&self.group)
                .arg(&consumer.name);
            // DELCONSUMER answers how many pending entries the consumer held: it may have read something
            // since XINFO; those entries then simply wait to be claimed by another consumer.
            let dropped: u64 = query(&self.conn, del, self.limit).await?;
            if dropped > 0 {
                tracing::warn!(stream = %self.key, group = %self.group, consumer = %consumer.name, dropped, "a pruned consumer had just taken entries; they will be claimed by another");
            }
            tracing::info!(stream = %self.key, group = %self.group, consumer = %consumer.name, idle_ms = consumer.idle, "removed an idle consumer with no pending entries");
            pruned.push(consumer.name);
        }
        Ok(pruned)
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
        query_pipe::<()>(&self.conn, &pipe, self.limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis Cluster's key-to-slot rule: the part between the first `{` and the next `}`, when not empty,
    /// else the whole key (CRC16/XMODEM modulo 16384).
    fn slot(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let hashed = match key.find('{') {
            Some(open) => match key[open + 1..].find('}') {
                Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
                _ => bytes,
            },
            None => bytes,
        };
        let mut crc: u16 = 0;
        for byte in hashed {
            crc ^= u16::from(*byte) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16384
    }

    #[test]
    fn keys_of_a_stream_share_its_slot_and_keep_its_name() {
        // Known slots from Redis's documentation (`CLUSTER KEYSLOT`).
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        for stream in ["shippy:log", "shippy:consignment", "shippy-t-abc:vessel"] {
            for suffix in [":dead", ":published:0190a4c2-7e3c-7cc4-b6c5-0a6f5e4d3c2b"] {
                let key = same_slot(stream, suffix);
                assert_eq!(key, format!("{{{stream}}}{suffix}"));
                assert_eq!(slot(&key), slot(stream), "{key} is on {stream}'s slot");
            }
        }
        // A prefix with a hash tag of its own keeps it: `{{shippy}:log}:dead` would hash `{shippy`.
        let tagged = same_slot("{shippy}:log", ":dead");
        assert_eq!(tagged, "{shippy}:log:dead");
        assert_eq!(slot(&tagged), slot("{shippy}:log"));
        // An empty tag is no tag.
        assert_eq!(same_slot("shippy:{}log", ":dead"), "{shippy:{}log}:dead");
    }

    #[test]
    fn role_replies_count_connected_replicas_of_a_primary_only() {
        use redis::Value::{Array, BulkString, Int};
        let replica = |port: &str| {
            Array(vec![
                BulkString(b"127.0.0.1".to_vec()),
                BulkString(port.into()),
                BulkString(b"0".to_vec()),
            ])
        };
        let primary = |replicas| {
            Array(vec![
                BulkString(b"master".to_vec()),
                Int(42),
                Array(replicas),
            ])
        };
        assert_eq!(connected_replicas(&primary(vec![])), 0);
        assert_eq!(
            connected_replicas(&primary(vec![replica("7001"), replica("7002")])),
            2
        );
        let a_replica = Array(vec![
            BulkString(b"slave".to_vec()),
            BulkString(b"127.0.0.1".to_vec()),
            Int(7000),
            BulkString(b"connected".to_vec()),
            Int(42),
        ]);
        assert_eq!(connected_replicas(&a_replica), 0);
        assert_eq!(connected_replicas(&redis::Value::Nil), 0);
    }
}
