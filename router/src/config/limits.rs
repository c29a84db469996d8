//! `limits`: the operation limits checked right after parsing (live).

use serde::{Deserialize, Serialize};

/// Limits on an operation's shape, checked right after parsing. Each violation is a 400 with
/// `extensions.code` naming the limit (`MAX_DEPTH_EXCEEDED`...) and `extensions.limit` its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most lexical tokens a query may have before parsing stops (bounds parser work).
    pub max_tokens: usize,
    /// Deepest field nesting (`{ a { b } }` is 2), through fragments.
    pub max_depth: usize,
    /// Most aliased fields in the operation, fragments included.
    pub max_aliases: usize,
    /// Most fields selected at the root of the operation, fragments included.
    pub max_root_fields: usize,
    /// Most directives on one field, fragment spread or inline fragment.
    pub max_directives_per_field: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_tokens: 15_000,
            max_depth: 64,
            max_aliases: 256,
            max_root_fields: 128,
            max_directives_per_field: 16,
        }
    }
}
