//! What the consignment subgraph reads from the `consignment` stream: the vessel subgraph's answers,
//! through its consumer group [`GROUP`] ([`VesselAnswers`]), and live consignment updates, through the
//! process's live feed: what `consignmentUpdated` streams to one subscriber ([`watch`]).
//!
//! Live updates: every replica follows the `consignment` stream through its [`LiveFeed`], so a subscriber connected to
//! any replica sees changes made by any other. Each `consignment.*` event carries the consignment as it was
//! after the change; a subscriber gets those of its own consignments (one, or all), never older than what it
//! already got (replicas may publish two changes of one consignment out of order).
//!
//! A subscriber too slow for the feed's buffer is told how many events it missed ([`Live::Lagged`]); it
//! then catches up from the database: every one of its consignments changed since the last change it saw
//! (less a second for clocks of different replicas), which covers whatever the skipped events said.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream::BoxStream};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use shippy_contracts::{consignment::Snapshot, consignment::is_change, streams, vessel};
use shippy_kit::{
    consumer::{self, HandleError, Handler},
    error,
    events::Event,
    inbox,
    live::Live,
};
use uuid::Uuid;

use crate::{
    State,
    commands::{Answer, apply_answer, apply_answer_in},
    entity::{self, Column, Entity as Consignments},
};

/// The consignment subgraph's consumer group on the `consignment` stream (also its inbox's key).
pub const GROUP: &str = "consignment";

/// Most consignments read from the database to catch up after a lag.
const CATCH_UP_LIMIT: u64 = 1000;
/// Most consignments whose last update time a subscriber remembers (to drop stale snapshots); beyond it
/// the memory starts afresh.
const REMEMBERED_MAX: usize = 10_000;

/// One subscriber's view.
struct Watch {
    state: State,
    feed: BoxStream<'static, Live>,
    owner: Uuid,
    owner_text: String,
    only: Option<Uuid>,
    /// The newest `updated_at` sent, per consignment.
    sent: HashMap<Uuid, DateTime<Utc>>,
    /// The newest change seen; where a catch-up starts.
    seen_up_to: DateTime<Utc>,
    ready: VecDeque<entity::Model>,
}

impl Watch {
    /// The consignment in `event`, if it is one of this subscriber's.
    fn relevant(&self, event: &Event) -> Option<entity::Model> {
        if event.stream != streams::CONSIGNMENT
            || !is_change(&event.kind)
            || event.user_id.as_deref() != Some(self.owner_text.as_str())
        {
            return None;
        }
        let row: entity::Model = match serde_json::from_value::<Snapshot>(event.payload.clone()) {
            Ok(snapshot) => snapshot.into(),
            Err(err) => {
                tracing::warn!(event_id = %event.event_id, error = %err, "consignment event without a consignment");
                return None;
            }
        };
        (row.owner_id == self.owner && self.only.is_none_or(|id| id == row.id)).then_some(row)
    }

    /// Whether `row` is newer than what was sent for it; remembers it if so.
    fn accept(&mut self, row: &entity::Model) -> bool {
        if self
            .sent
            .get(&row.id)
            .is_some_and(|sent| *sent >= row.updated_at)
        {
            return false;
        }
        if self.sent.len() >= REMEMBERED_MAX {
            self.sent.clear();
        }
        self.sent.insert(row.id, row.updated_at);
        self.seen_up_to = self.seen_up_to.max(row.updated_at);
        true
    }

    async fn catch_up(&mut self, missed: u64) -> async_graphql::Result<()> {
        tracing::debug!(owner = %self.owner, missed, "consignment subscriber lagged; catching up from the database");
        let since = self.seen_up_to - chrono::Duration::seconds(1);
        let mut query = Consignments::find()
            .filter(Column::OwnerId.eq(self.owner))
            .filter(Column::UpdatedAt.gte(since))
            .order_by_asc(Column::UpdatedAt)
            .limit(CATCH_UP_LIMIT);
        if let Some(id) = self.only {
            query = query.filter(Column::Id.eq(id));
        }
        let rows = query
            .all(&self.state.db)
            .await
            .map_err(|e| error::internal("catching up consignment updates", e))?;
        for row in rows {
            if self.accept(&row) {
                self.ready.push_back(row);
            }
        }
        Ok(())
    }

    async fn next(&mut self) -> Option<async_graphql::Result<entity::Model>> {
        loop {
            if let Some(row) = self.ready.pop_front() {
                return Some(Ok(row));
            }
            match self.feed.next().await? {
                Live::Event(event) => {
                    if let Some(row) = self.relevant(&event)
                        && self.accept(&row)
                    {
                        return Some(Ok(row));
                    }
                }
                Live::Lagged(missed) => {
                    if let Err(err) = self.catch_up(missed).await {
                        return Some(Err(err));
                    }
                }
            }
        }
    }
}

/// The updates of `owner`'s consignments (only `only`, if given) from now on. Subscribe to the feed before
/// checking anything else, so no change in between is missed.
pub fn watch(
    state: State,
    feed: BoxStream<'static, Live>,
    owner: Uuid,
    only: Option<Uuid>,
) -> BoxStream<'static, async_graphql::Result<entity::Model>> {
    let watch = Watch {
        state,
        feed,
        owner,
        owner_text: owner.to_string(),
        only,
        sent: HashMap::new(),
        seen_up_to: Utc::now(),
        ready: VecDeque::new(),
    };
    futures::stream::unfold(watch, |mut watch| async move {
        let item = watch.next().await?;
        Some((item, watch))
    })
    .boxed()
}

/// The consumer's handler: applies `vessel.assigned` and `vessel.unassignable`, ignores the rest of the
/// stream (including this subgraph's own events). A read of several events is applied in one transaction
/// ([`Handler::handle_batch`]): one commit for up to a read's worth of answers instead of one each.
pub struct VesselAnswers {
    state: State,
}

impl VesselAnswers {
    /// A handler working on `state`'s database.
    pub fn new(state: State) -> Self {
        Self { state }
    }

    /// Applies every answer of `events`, in stream order, in one transaction; all or nothing
    /// ([`inbox::apply_together`]).
    async fn apply_together(&self, events: &[&Event]) -> Result<(), HandleError> {
        let mut answers = Vec::with_capacity(events.len());
        for event in events {
            if let Some((consignment, answer)) = answer_in(event)? {
                answers.push((event.event_id, AnswerTo(consignment, answer)));
            }
        }
        inbox::apply_together(&self.state.db, &self.state.outbox, GROUP, &answers).await
    }
}

/// An answer with the consignment it is about, applied inside a read's transaction.
struct AnswerTo(Uuid, Answer);

#[async_trait::async_trait]
impl inbox::InTransaction for AnswerTo {
    async fn run_in(
        &self,
        txn: &DatabaseTransaction,
        events: &mut Vec<Event>,
    ) -> Result<(), HandleError> {
        apply_answer_in(txn, self.0, &self.1, events).await?;
        Ok(())
    }
}

/// The vessel subgraph's answer `event` carries, with the consignment it is about; `None` for the other
/// events of the stream.
fn answer_in(event: &Event) -> Result<Option<(Uuid, Answer)>, HandleError> {
    Ok(Some(match event.kind.as_str() {
        vessel::ASSIGNED => {
            let a: vessel::Assigned = consumer::payload(event)?;
            (
                a.consignment_id,
                Answer::Assigned {
                    vessel_id: a.vessel_id,
                    vessel_owner_id: a.vessel_owner_id,
                    vessel_name: a.vessel_name,
                    round: a.round,
                },
            )
        }
        vessel::UNASSIGNABLE => {
            let u: vessel::Unassignable = consumer::payload(event)?;
            let answer = Answer::Unassignable {
                reason: u.reason,
                round: u.round,
            };
            (u.consignment_id, answer)
        }
        _ => return Ok(None),
    }))
}

#[async_trait::async_trait]
impl Handler for VesselAnswers {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        if let Some((consignment, answer)) = answer_in(event)? {
            apply_answer(&self.state, event.event_id, consignment, &answer).await?;
        }
        Ok(())
    }

    async fn handle_batch(&self, events: &[&Event]) -> Option<Result<(), HandleError>> {
        Some(self.apply_together(events).await)
    }
}
