//! Stage 4, plan: normalized operation to query plan, through a bounded single-flight cache.
//!
//! Planning is CPU-bound and can take long on big operations, so it runs on the blocking pool
//! with a time limit. Concurrent requests for the same operation wait for one planning run.
//! Failures are cached too: planning the same operation again would fail the same way.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quick_cache::sync::Cache;
use tracing::Instrument;

use crate::query_planner::{NormalizedOperation, PlannerError, QueryPlan, QueryPlanner};

pub(crate) type PlanResult = Result<Arc<QueryPlan>, Arc<PlannerError>>;

/// Hit and miss counts of a cache, also exported as metrics.
#[derive(Debug, Default)]
pub(crate) struct CacheCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
}

impl CacheCounters {
    pub(crate) fn record(&self, cache: &'static str, hit: bool) {
        if hit {
            self.hits.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("shippy_router_cache_hits_total", "cache" => cache).increment(1);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("shippy_router_cache_misses_total", "cache" => cache).increment(1);
        }
    }

    pub(crate) fn snapshot(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

pub(crate) struct PlanCache {
    cache: Cache<String, PlanResult>,
    pub(crate) counters: CacheCounters,
    timeout: Duration,
}

impl PlanCache {
    pub(crate) fn new(capacity: usize, timeout: Duration) -> PlanCache {
        PlanCache {
            cache: Cache::new(capacity.max(1)),
            counters: CacheCounters::default(),
            timeout,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }

    /// The plan for `operation`, planned at most once at a time per key.
    pub(crate) async fn plan(
        &self,
        planner: &Arc<QueryPlanner>,
        operation: NormalizedOperation,
        operation_name: Option<&str>,
        override_variant: usize,
    ) -> PlanResult {
        // Each progressive-override combination has its own planner, hence its own plans.
        let key = format!(
            "{override_variant}\n{}\n{}",
            operation_name.unwrap_or_default(),
            operation.text()
        );
        let mut planned = false;
        let span = tracing::info_span!(target: shippy_telemetry::SPANS, "plan", cache.hit = tracing::field::Empty);
        let result = self
            .cache
            .get_or_insert_async(&key, async {
                planned = true;
                let planner = Arc::clone(planner);
                let timeout = self.timeout;
                let result = tokio::task::spawn_blocking(move || planner.plan(&operation, timeout))
                    .await
                    .unwrap_or_else(|join_error| {
                        Err(PlannerError::Planning(join_error.to_string()))
                    });
                if let Err(error) = &result {
                    tracing::warn!(error = %error, "query planning failed");
                }
                Ok::<_, Infallible>(result.map(Arc::new).map_err(Arc::new))
            })
            .instrument(span.clone())
            .await;
        span.record("cache.hit", !planned);
        self.counters.record("plan", !planned);
        match result {
            Ok(result) => result,
            Err(never) => match never {},
        }
    }
}
