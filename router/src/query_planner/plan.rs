//! The router's own query plan: what the executor runs, independent of the planner crate's types.
//!
//! Converted once per planned operation (then cached), so everything the executor needs per request
//! is precomputed here: the subgraph index instead of its name, the subgraph query already encoded
//! as a JSON string, flatten paths as enums.

use std::fmt;

pub(crate) use crate::graphql::OperationKind;

/// A plan for one operation; `root` is `None` when nothing needs to be fetched.
#[derive(Debug, Clone)]
pub(crate) struct QueryPlan {
    pub(crate) root: Option<PlanNode>,
    /// The planner's Apollo-style text rendering, for logs and snapshot tests.
    pub(crate) text: String,
}

impl fmt::Display for QueryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Clone)]
pub(crate) enum PlanNode {
    /// A fetch at the root of the response (root fields of an operation).
    Fetch(FetchNode),
    /// An entity fetch whose representations are collected at `path` and merged back there.
    Flatten(FlattenNode),
    /// Several entity fetches to one subgraph sent as one request with aliased `_entities` fields.
    BatchFetch(BatchFetchNode),
    Sequence(Vec<PlanNode>),
    Parallel(Vec<PlanNode>),
    /// `@skip`/`@include` on a variable: the branch to run depends on the variable's value.
    Condition(ConditionNode),
    /// A subscription: `primary` opens the event stream on the subgraph that owns the root
    /// field; `rest` runs for every event, on the event's data (entity fetches to other
    /// subgraphs). Only ever the plan's root.
    Subscription(SubscriptionNode),
    /// `@defer` is not planned by this planner version; kept so such a plan is refused cleanly.
    Defer,
}

#[derive(Debug, Clone)]
pub(crate) struct SubscriptionNode {
    pub(crate) primary: FetchNode,
    pub(crate) rest: Option<Box<PlanNode>>,
}

#[derive(Debug, Clone)]
pub(crate) struct ConditionNode {
    pub(crate) variable: String,
    pub(crate) if_clause: Option<Box<PlanNode>>,
    pub(crate) else_clause: Option<Box<PlanNode>>,
}

#[derive(Debug, Clone)]
pub(crate) struct FlattenNode {
    pub(crate) path: Vec<PathSegment>,
    pub(crate) fetch: FetchNode,
}

#[derive(Debug, Clone)]
pub(crate) struct FetchNode {
    /// Subgraph name as declared by `join__Graph(name:)`.
    pub(crate) service: String,
    /// Index of the subgraph in `QueryPlanner::subgraphs()`.
    pub(crate) subgraph: usize,
    pub(crate) operation_kind: OperationKind,
    /// The subgraph operation text.
    pub(crate) query: String,
    /// `query` as a JSON string literal (quoted, escaped), ready to copy into a request body.
    pub(crate) query_json: String,
    /// Client variables this fetch forwards.
    pub(crate) variable_usages: Vec<String>,
    /// The representation shape of an entity fetch (`None` for root fetches).
    pub(crate) requires: Option<SelectionSet>,
    pub(crate) input_rewrites: Vec<Rewrite>,
    pub(crate) output_rewrites: Vec<Rewrite>,
}

#[derive(Debug, Clone)]
pub(crate) struct BatchFetchNode {
    pub(crate) fetch: FetchNode,
    pub(crate) aliases: Vec<BatchAlias>,
}

/// One aliased `_entities` field of a batched fetch.
#[derive(Debug, Clone)]
pub(crate) struct BatchAlias {
    pub(crate) alias: String,
    pub(crate) representations_variable: String,
    pub(crate) paths: Vec<Vec<PathSegment>>,
    pub(crate) requires: SelectionSet,
    pub(crate) input_rewrites: Vec<Rewrite>,
    pub(crate) output_rewrites: Vec<Rewrite>,
}

/// A segment of a flatten path, relative to the response root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathSegment {
    Field(String),
    /// `@`: every element of a list.
    List,
    /// Only objects whose `__typename` is (or implements) one of these types.
    TypeCondition(Vec<String>),
}

/// A selection set as the planner uses it for `requires`: fields and inline fragments only.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SelectionSet {
    pub(crate) items: Vec<Selection>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Selection {
    Field(FieldSelection),
    InlineFragment(InlineFragment),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldSelection {
    pub(crate) name: String,
    pub(crate) alias: Option<String>,
    pub(crate) selections: SelectionSet,
}

impl FieldSelection {
    pub(crate) fn response_key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InlineFragment {
    pub(crate) type_condition: String,
    pub(crate) selections: SelectionSet,
}

/// A rewrite the planner asks for on representations (input) or fetched data (output).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rewrite {
    /// Sets the value at `path` to a constant (used to send an `@interfaceObject`'s type name).
    ValueSetter {
        path: Vec<RewriteSegment>,
        value: String,
    },
    /// Renames the key at the end of `path` (undoes the planner's internal aliases).
    KeyRenamer {
        path: Vec<RewriteSegment>,
        rename_to: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RewriteSegment {
    Key(String),
    TypenameEquals(Vec<String>),
}
