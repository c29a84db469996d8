//! `headers`: rules that shape the headers of subgraph requests and what subgraph responses pass
//! on to the client, for every subgraph and per subgraph (live: a reload applies them to the
//! next request).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Header rules. A subgraph request starts with `subgraph_defaults.forward_headers` copied
/// from the client; then `all.request` runs, then `subgraphs.<name>.request`, each rule in
/// order. Headers the router owns (its signature, the client IP it vouches for, hop-by-hop
/// and content headers) are never set by a rule: naming one is a configuration error, and a
/// `matching` pattern skips them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadersConfig {
    /// Rules for every subgraph, applied first.
    pub all: HeaderRules,
    /// Rules for one subgraph (by its name in the supergraph), applied after `all`.
    pub subgraphs: BTreeMap<String, HeaderRules>,
    /// Give the client response the most restrictive `Cache-Control` of the subgraph responses
    /// of a query (`no-store` if any has it or has none; `private` if any is; the smallest
    /// `max-age` and `s-maxage`), so a CDN in front never caches longer than a subgraph allows.
    /// Mutations and failed requests always get `no-store` then.
    pub merge_cache_control: bool,
}

/// The rules of one scope.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderRules {
    /// Rules for the request sent to the subgraph.
    pub request: Vec<RequestHeaderRule>,
    /// Headers of the subgraph's responses passed on to the client's response.
    pub response: Vec<ResponseHeaderRule>,
}

/// A response rule: subgraph response headers copied to the client response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponseHeaderRule {
    /// Copy one header by `named` (optionally as `rename`, or `default` when no subgraph sent
    /// it) or all whose names match `matching`. When several subgraph responses carry it,
    /// `algorithm` decides: `first`, `last` (the default) or `append` (every value).
    Propagate {
        /// A header name.
        #[serde(default)]
        named: Option<String>,
        /// A name pattern.
        #[serde(default)]
        matching: Option<String>,
        /// With `named`: the name the client gets it under.
        #[serde(default)]
        rename: Option<String>,
        /// With `named`: the value sent when no subgraph sent the header.
        #[serde(default)]
        default: Option<String>,
        /// How values of several subgraph responses combine.
        #[serde(default)]
        algorithm: MergeAlgorithm,
    },
}

/// How one header's values from several subgraph responses combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeAlgorithm {
    /// The value of the first response that had it.
    First,
    /// The value of the last response that had it.
    #[default]
    Last,
    /// Every value.
    Append,
}

/// One rule. `named` is a header name (case-insensitive); `matching` a regular expression
/// matched against lower-case names (anchor it: `^x-feature-`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RequestHeaderRule {
    /// Copy client headers: one by `named` (optionally sent under `rename`, or set to
    /// `default` when the client did not send it), or all whose names match `matching`.
    Propagate {
        /// A header name.
        #[serde(default)]
        named: Option<String>,
        /// A name pattern.
        #[serde(default)]
        matching: Option<String>,
        /// With `named`: the name the subgraph gets it under.
        #[serde(default)]
        rename: Option<String>,
        /// With `named`: the value sent when the client did not send the header.
        #[serde(default)]
        default: Option<String>,
    },
    /// Drop headers set so far (by an earlier rule or the forward list).
    Remove {
        /// A header name.
        #[serde(default)]
        named: Option<String>,
        /// A name pattern.
        #[serde(default)]
        matching: Option<String>,
    },
    /// Set a header to a fixed value (replacing what earlier rules set).
    Insert {
        /// The header name.
        name: String,
        /// Its value.
        value: String,
    },
}
