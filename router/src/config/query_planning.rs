//! `query_planning`: the planner and its caches (restart-only).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The planner and its caches. Restart-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryPlanningConfig {
    /// Plans kept, keyed by normalized operation and operation name.
    pub cache_size: usize,
    /// Prepared operations kept, keyed by query text and operation name (skips parse, validate,
    /// normalize and the plan lookup for repeated queries; rejected queries are cached too).
    pub operation_cache_size: usize,
    /// Planning gives up after this long and the request gets `QUERY_PLANNING_FAILED`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for QueryPlanningConfig {
    fn default() -> Self {
        QueryPlanningConfig {
            cache_size: 1024,
            operation_cache_size: 2048,
            timeout: Duration::from_secs(10),
        }
    }
}
