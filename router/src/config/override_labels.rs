//! `override_labels`: how a request picks the side of each progressive `@override`
//! (restart-only: the planners are built when the supergraph loads).

use serde::{Deserialize, Serialize};

/// Progressive `@override(label:)`. A `percent(N)` label is in effect for N% of requests (a
/// random draw per request); any label, `percent(N)` ones included, is in effect when the
/// request names it in `header` (comma-separated) or the caller's token does in `claim` (a
/// string or a list of strings). The router builds one planner per combination of the labels
/// the supergraph uses: `max_labels` bounds that (2^labels planners, each the size of one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverrideLabelsConfig {
    /// A request header listing labels to put in effect (e.g. `x-override-labels`). Unset: none.
    pub header: Option<String>,
    /// A token claim listing labels to put in effect. Unset: none.
    pub claim: Option<String>,
    /// Most labels a supergraph may use; one with more is refused.
    pub max_labels: usize,
}

impl Default for OverrideLabelsConfig {
    fn default() -> Self {
        OverrideLabelsConfig {
            header: None,
            claim: None,
            max_labels: 4,
        }
    }
}
