//! The embedded bus of `shippy up`: streams and consumer groups in this process's memory.
//!
//! It keeps Redis streams' semantics so that subgraphs run the same code on either bus: each stream holds
//! its last `capacity` events; a consumer group reads them in order, keeps what it delivered pending until
//! acknowledged, and lets another consumer take over entries left pending too long. Nothing survives the
//! process: an event that was published but not yet handled when the process stops is gone (its outbox row
//! is already marked sent). That is the embedded mode's trade; Redis is for anything that must not lose
//! events.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures::StreamExt;
use tokio::{
    sync::{Notify, broadcast},
    time::Instant,
};

use super::{
    BusError, Delivery, Event, EventBus, EventStream, GroupReader, GroupStats, dead_letters,
};

/// The embedded bus: one bounded stream per name, with a live broadcast and consumer groups.
///
/// Publishing never blocks. Live subscribers more than `capacity` events behind skip the oldest ones (logged
/// as a warning). A stream holds at most `capacity` events: when it is full, the oldest is dropped if every
/// consumer group has handled it, and otherwise the publish is refused ([`BusError::Unavailable`]) so the
/// outbox relay keeps the event and retries: a slow consumer group slows publishers instead of losing
/// events.
#[derive(Clone)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

struct Inner {
    capacity: usize,
    /// Every stream by name, created on first use. Held only to look up or change state, never across an
    /// `.await`.
    streams: Mutex<HashMap<String, StreamState>>,
}

struct StreamState {
    /// Live subscribers (`subscribe`).
    live: broadcast::Sender<Event>,
    /// Sequence number of `entries[0]`; sequence numbers are the entry ids.
    first_seq: u64,
    entries: VecDeque<Event>,
    groups: HashMap<String, GroupState>,
    /// Woken after every append, for group readers waiting in `read_new`.
    appended: Arc<Notify>,
}

struct GroupState {
    /// The first entry not yet delivered to the group.
    next_seq: u64,
    /// Delivered, not yet acknowledged.
    pending: BTreeMap<u64, Pending>,
}

struct Pending {
    consumer: String,
    delivered_at: Instant,
    deliveries: u64,
}

impl StreamState {
    fn new(capacity: usize) -> Self {
        Self {
            live: broadcast::channel(capacity).0,
            first_seq: 0,
            entries: VecDeque::new(),
            groups: HashMap::new(),
            appended: Arc::new(Notify::new()),
        }
    }

    fn event(&self, seq: u64) -> Option<&Event> {
        let index = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.entries.get(index)
    }

    /// The group (and its oldest entry) still needing the stream's oldest entry, if any.
    fn blocking_group(&self) -> Option<(&str, u64)> {
        self.groups
            .iter()
            .map(|(name, g)| {
                let oldest_pending = g.pending.keys().next().copied().unwrap_or(g.next_seq);
                (name.as_str(), oldest_pending.min(g.next_seq))
            })
            .filter(|(_, needed)| *needed <= self.first_seq)
            .min_by_key(|(_, needed)| *needed)
    }
}

impl InProcessBus {
    /// A bus whose streams hold `capacity` events and whose live subscribers may lag as far.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity: capacity.max(1),
                streams: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, StreamState>> {
        // A poisoned lock only means another thread panicked between two consistent states we wrote.
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn append(&self, event: &Event) -> Result<(), BusError> {
        self.append_to(&mut self.lock(), event)
    }

    /// Appends `events` in order under one lock, stopping at the first that does not fit (see
    /// [`EventBus::publish_batch`]).
    fn append_all(&self, events: &[Event]) -> Vec<Result<(), BusError>> {
        let mut streams = self.lock();
        let mut results = Vec::with_capacity(events.len());
        for event in events {
            let result = self.append_to(&mut streams, event);
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        results
    }

    fn append_to(
        &self,
        streams: &mut HashMap<String, StreamState>,
        event: &Event,
    ) -> Result<(), BusError> {
        let stream = streams
            .entry(event.stream.clone())
            .or_insert_with(|| StreamState::new(self.capacity));
        if stream.entries.len() >= self.capacity {
            if let Some((group, _)) = stream.blocking_group() {
                return Err(BusError::Unavailable(format!(
                    "in-process stream `{}` is full: consumer group `{group}` has not handled its oldest \
                     {} events",
                    event.stream, self.capacity
                )));
            }
            stream.entries.pop_front();
            stream.first_seq += 1;
        }
        stream.entries.push_back(event.clone());
        // Err only means nobody is listening right now, which is fine for a live feed.
        let _ = stream.live.send(event.clone());
        stream.appended.notify_waiters();
        Ok(())
    }
}

#[async_trait::async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, event: &Event) -> Result<(), BusError> {
        self.inner.append(event)
    }

    async fn publish_batch(&self, events: &[Event]) -> Vec<Result<(), BusError>> {
        self.inner.append_all(events)
    }

    async fn subscribe(&self, stream: &str) -> Result<EventStream, BusError> {
        let rx = {
            let mut streams = self.inner.lock();
            streams
                .entry(stream.to_owned())
                .or_insert_with(|| StreamState::new(self.inner.capacity))
                .live
                .subscribe()
        };
        let name = stream.to_owned();
        let feed = futures::stream::unfold(rx, move |mut rx| {
            let name = name.clone();
            async move {
                loop {
                    match rx.recv().await {
                        Ok(event) => return Some((event, rx)),
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(stream = %name, missed, "event subscriber fell behind and skipped events");
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
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
        {
            let mut streams = self.inner.lock();
            let state = streams
                .entry(stream.to_owned())
                .or_insert_with(|| StreamState::new(self.inner.capacity));
            let first_seq = state.first_seq;
            state
                .groups
                .entry(group.to_owned())
                .or_insert_with(|| GroupState {
                    next_seq: first_seq,
                    pending: BTreeMap::new(),
                });
        }
        Ok(Box::new(MemoryGroupReader {
            inner: self.inner.clone(),
            stream: stream.to_owned(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
        }))
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }

    /// Always `false`: the in-process bus cannot lose its data while its process (and relay) lives, and a
    /// new process is a new bus whose relay starts from its outbox's unpublished rows, as it always did.
    async fn mark_epoch(&self, _holder: &str) -> Result<bool, BusError> {
        Ok(false)
    }
}

/// One consumer of an in-process consumer group.
struct MemoryGroupReader {
    inner: Arc<Inner>,
    stream: String,
    group: String,
    consumer: String,
}

impl MemoryGroupReader {
    /// Runs `f` on the stream and this reader's group (both exist: `join_group` created them and nothing
    /// removes them).
    fn with_group<T>(&self, f: impl FnOnce(&mut StreamState, &str) -> T) -> T {
        let mut streams = self.inner.lock();
        let stream = streams
            .entry(self.stream.clone())
            .or_insert_with(|| StreamState::new(self.inner.capacity));
        if !stream.groups.contains_key(&self.group) {
            let first_seq = stream.first_seq;
            stream.groups.insert(
                self.group.clone(),
                GroupState {
                    next_seq: first_seq,
                    pending: BTreeMap::new(),
                },
            );
        }
        f(stream, &self.group)
    }
}

fn parse_seq(id: &str) -> Option<u64> {
    id.parse().ok()
}

#[async_trait::async_trait]
impl GroupReader for MemoryGroupReader {
    async fn claim_idle(
        &mut self,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        let now = Instant::now();
        let consumer = self.consumer.clone();
        Ok(self.with_group(|stream, group| {
            let idle: Vec<u64> = stream.groups[group]
                .pending
                .iter()
                .filter(|(_, p)| now.duration_since(p.delivered_at) >= min_idle)
                .map(|(seq, _)| *seq)
                .take(count)
                .collect();
            let mut claimed = Vec::with_capacity(idle.len());
            for seq in idle {
                let Some(event) = stream.event(seq).cloned() else {
                    continue;
                };
                let Some(pending) = stream
                    .groups
                    .get_mut(group)
                    .and_then(|g| g.pending.get_mut(&seq))
                else {
                    continue;
                };
                pending.consumer.clone_from(&consumer);
                pending.delivered_at = now;
                pending.deliveries += 1;
                claimed.push(Delivery {
                    id: seq.to_string(),
                    event: Ok(event),
                    deliveries: pending.deliveries,
                });
            }
            claimed
        }))
    }

    async fn read_new(&mut self, count: usize, block: Duration) -> Result<Vec<Delivery>, BusError> {
        let deadline = Instant::now() + block;
        loop {
            let consumer = self.consumer.clone();
            let (found, mut appended) = self.with_group(|stream, group| {
                let now = Instant::now();
                let mut found = Vec::new();
                let mut seq = stream.groups[group].next_seq.max(stream.first_seq);
                while found.len() < count {
                    let Some(event) = stream.event(seq).cloned() else {
                        break;
                    };
                    found.push(Delivery {
                        id: seq.to_string(),
                        event: Ok(event),
                        deliveries: 1,
                    });
                    seq += 1;
                }
                let state = stream.groups.get_mut(group).expect("group exists");
                for delivery in &found {
                    if let Some(seq) = parse_seq(&delivery.id) {
                        state.pending.insert(
                            seq,
                            Pending {
                                consumer: consumer.clone(),
                                delivered_at: now,
                                deliveries: 1,
                            },
                        );
                    }
                }
                state.next_seq = seq;
                // Registered while the lock is held, so an append right after it unlocks still wakes us.
                let mut appended = Box::pin(stream.appended.clone().notified_owned());
                appended.as_mut().enable();
                (found, appended)
            });
            if !found.is_empty() {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, appended.as_mut())
                .await
                .is_err()
            {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&mut self, ids: &[String]) -> Result<(), BusError> {
        self.with_group(|stream, group| {
            let state = stream.groups.get_mut(group).expect("group exists");
            for seq in ids.iter().filter_map(|id| parse_seq(id)) {
                state.pending.remove(&seq);
            }
        });
        Ok(())
    }

    async fn stats(&mut self) -> Result<GroupStats, BusError> {
        Ok(self.with_group(|stream, group| {
            let end = stream.first_seq + stream.entries.len() as u64;
            let state = &stream.groups[group];
            GroupStats {
                lag: Some(end.saturating_sub(state.next_seq)),
                pending: state.pending.len() as u64,
            }
        }))
    }

    /// Nothing to prune: in-process groups keep no list of consumers (only a pending entry names one), and
    /// they end with their process.
    async fn prune_consumers(&mut self, _idle: Duration) -> Result<Vec<String>, BusError> {
        Ok(Vec::new())
    }

    async fn dead_letter(&mut self, delivery: &Delivery, reason: &str) -> Result<(), BusError> {
        tracing::error!(
            stream = %self.stream,
            group = %self.group,
            entry = %delivery.id,
            deliveries = delivery.deliveries,
            reason,
            "dead-lettering an event that cannot be handled"
        );
        if let Ok(event) = &delivery.event {
            let mut dead = event.clone();
            dead.stream = dead_letters(&self.stream);
            self.inner.append(&dead)?;
        }
        self.ack(std::slice::from_ref(&delivery.id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(stream: &str, n: i64) -> Event {
        Event::new(
            stream,
            "test",
            "test.happened",
            None,
            "n",
            serde_json::json!({ "n": n }),
        )
    }

    fn numbers(deliveries: &[Delivery]) -> Vec<i64> {
        deliveries
            .iter()
            .map(|d| d.event.as_ref().unwrap().payload["n"].as_i64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn subscribers_see_their_stream_only() {
        let bus = InProcessBus::default();
        let mut log = bus.subscribe("log").await.unwrap();
        let mut cons = bus.subscribe("consignment").await.unwrap();
        bus.publish(&event("log", 1)).await.unwrap();
        bus.publish(&event("consignment", 2)).await.unwrap();
        assert_eq!(log.next().await.unwrap().payload["n"], 1);
        assert_eq!(cons.next().await.unwrap().payload["n"], 2);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_skips_rather_than_blocks() {
        let bus = InProcessBus::new(2);
        let mut slow = bus.subscribe("log").await.unwrap();
        for n in 0..5 {
            bus.publish(&event("log", n)).await.unwrap();
        }
        // Capacity 2: the three oldest are gone, the newest two remain.
        assert_eq!(slow.next().await.unwrap().payload["n"], 3);
        assert_eq!(slow.next().await.unwrap().payload["n"], 4);
    }

    #[tokio::test]
    async fn a_group_sees_earlier_events_and_shares_them_between_consumers() {
        let bus = InProcessBus::default();
        bus.publish(&event("log", 0)).await.unwrap();
        let mut a = bus.join_group("log", "g", "a").await.unwrap();
        let mut b = bus.join_group("log", "g", "b").await.unwrap();
        bus.publish(&event("log", 1)).await.unwrap();
        let first = a.read_new(1, Duration::ZERO).await.unwrap();
        let second = b.read_new(10, Duration::ZERO).await.unwrap();
        assert_eq!(
            (numbers(&first), numbers(&second)),
            (vec![0], vec![1]),
            "each entry goes to one consumer"
        );
        assert_eq!(first[0].deliveries, 1);
        // Another group reads the same stream independently.
        let mut other = bus.join_group("log", "other", "a").await.unwrap();
        assert_eq!(
            numbers(&other.read_new(10, Duration::ZERO).await.unwrap()),
            vec![0, 1]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn read_new_waits_for_an_append_or_the_block_timeout() {
        let bus = InProcessBus::default();
        let mut reader = bus.join_group("log", "g", "a").await.unwrap();
        let started = Instant::now();
        assert!(
            reader
                .read_new(10, Duration::from_secs(2))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(started.elapsed(), Duration::from_secs(2));

        let publisher = bus.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            publisher.publish(&event("log", 7)).await.unwrap();
        });
        let started = Instant::now();
        let got = reader.read_new(10, Duration::from_secs(5)).await.unwrap();
        assert_eq!(numbers(&got), vec![7]);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn unacknowledged_entries_are_claimed_after_idling_and_counted() {
        let bus = InProcessBus::default();
        let mut crashed = bus.join_group("log", "g", "crashed").await.unwrap();
        let mut rescuer = bus.join_group("log", "g", "rescuer").await.unwrap();
        for n in 0..3 {
            bus.publish(&event("log", n)).await.unwrap();
        }
        let read = crashed.read_new(10, Duration::ZERO).await.unwrap();
        crashed.ack(&[read[1].id.clone()]).await.unwrap();
        drop(crashed);

        let idle = Duration::from_secs(30);
        assert!(rescuer.claim_idle(idle, 10).await.unwrap().is_empty());
        tokio::time::advance(idle).await;
        let claimed = rescuer.claim_idle(idle, 10).await.unwrap();
        assert_eq!(
            numbers(&claimed),
            vec![0, 2],
            "the acknowledged one stays done"
        );
        assert!(claimed.iter().all(|d| d.deliveries == 2));
        // Claimed again by nobody until it idles again.
        assert!(rescuer.claim_idle(idle, 10).await.unwrap().is_empty());
        rescuer
            .ack(&claimed.iter().map(|d| d.id.clone()).collect::<Vec<_>>())
            .await
            .unwrap();
        tokio::time::advance(idle).await;
        assert!(rescuer.claim_idle(idle, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_full_stream_refuses_what_a_group_has_not_handled() {
        let bus = InProcessBus::new(2);
        // No group yet: the oldest events simply roll off.
        for n in 0..3 {
            bus.publish(&event("log", n)).await.unwrap();
        }
        let mut reader = bus.join_group("log", "g", "a").await.unwrap();
        let err = bus.publish(&event("log", 3)).await.unwrap_err();
        assert!(
            matches!(&err, BusError::Unavailable(m) if m.contains("`g`")),
            "{err}"
        );
        let read = reader.read_new(10, Duration::ZERO).await.unwrap();
        assert_eq!(numbers(&read), vec![1, 2]);
        // Delivered but pending still counts as needed.
        assert!(bus.publish(&event("log", 3)).await.is_err());
        reader.ack(&[read[0].id.clone()]).await.unwrap();
        bus.publish(&event("log", 3)).await.unwrap();
        assert_eq!(
            numbers(&reader.read_new(10, Duration::ZERO).await.unwrap()),
            vec![3]
        );
    }

    #[tokio::test]
    async fn a_batch_stops_at_the_first_event_that_does_not_fit() {
        let bus = InProcessBus::new(2);
        let mut reader = bus.join_group("log", "g", "a").await.unwrap();
        // A third `log` event would overflow what `g` has not handled; the `vessel` one after it would
        // fit, but is not tried: nothing of the batch enters after a failure.
        let batch = [
            event("log", 0),
            event("log", 1),
            event("log", 2),
            event("vessel", 3),
        ];
        let results = bus.publish_batch(&batch).await;
        assert_eq!(results.len(), 3, "untried events have no result");
        assert!(results[0].is_ok() && results[1].is_ok());
        assert!(
            matches!(&results[2], Err(BusError::Unavailable(m)) if m.contains("`g`")),
            "{results:?}"
        );
        let read = reader.read_new(10, Duration::ZERO).await.unwrap();
        assert_eq!(numbers(&read), vec![0, 1]);
        let mut vessel = bus.join_group("vessel", "g", "a").await.unwrap();
        assert!(
            vessel
                .read_new(10, Duration::ZERO)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn stats_count_undelivered_and_unacknowledged_entries() {
        let bus = InProcessBus::new(16);
        let mut reader = bus.join_group("s", "g", "c1").await.unwrap();
        for n in 0..3 {
            bus.publish(&event("s", n)).await.unwrap();
        }
        assert_eq!(
            reader.stats().await.unwrap(),
            GroupStats {
                lag: Some(3),
                pending: 0
            }
        );
        let read = reader.read_new(2, Duration::from_millis(10)).await.unwrap();
        assert_eq!(
            reader.stats().await.unwrap(),
            GroupStats {
                lag: Some(1),
                pending: 2
            }
        );
        reader.ack(&[read[0].id.clone()]).await.unwrap();
        assert_eq!(reader.stats().await.unwrap().pending, 1);
    }

    #[tokio::test]
    async fn dead_letters_go_to_their_own_stream() {
        let bus = InProcessBus::default();
        let mut reader = bus.join_group("log", "g", "a").await.unwrap();
        let mut dead = bus
            .join_group(&dead_letters("log"), "ops", "a")
            .await
            .unwrap();
        bus.publish(&event("log", 5)).await.unwrap();
        let read = reader.read_new(1, Duration::ZERO).await.unwrap();
        reader.dead_letter(&read[0], "poison").await.unwrap();
        let got = dead.read_new(10, Duration::ZERO).await.unwrap();
        assert_eq!(numbers(&got), vec![5]);
        assert_eq!(got[0].event.as_ref().unwrap().stream, "log:dead");
        // Acknowledged in the source group: never claimed again.
        assert!(
            reader
                .claim_idle(Duration::ZERO, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
