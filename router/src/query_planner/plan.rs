//! The router's own query plan: what the executor runs, independent of the planner crate's types.
//!
//! Converted once per planned operation (then cached), so everything the executor needs per request
//! is precomputed here: the subgraph index instead of its name, the subgraph query already encoded
//! as a JSON string, flatten paths as enums.

use std::fmt;

pub use crate::graphql::OperationKind;

/// A plan for one operation; `root` is `None` when nothing needs to be fetched.
#[derive(Debug, Clone)]
pub struct QueryPlan {
    pub root: Option<PlanNode>,
    /// The planner's Apollo-style text rendering, for logs and snapshot tests.
    pub text: String,
}

impl fmt::Display for QueryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Clone)]
pub enum PlanNode {
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
pub struct SubscriptionNode {
    pub primary: FetchNode,
    pub rest: Option<Box<PlanNode>>,
}

#[derive(Debug, Clone)]
pub struct ConditionNode {
    pub variable: String,
    pub if_clause: Option<Box<PlanNode>>,
    pub else_clause: Option<Box<PlanNode>>,
}

#[derive(Debug, Clone)]
pub struct FlattenNode {
    pub path: Vec<PathSegment>,
    pub fetch: FetchNode,
}

#[derive(Debug, Clone)]
pub struct FetchNode {
    /// Subgraph name as declared by `join__Graph(name:)`.
    pub service: String,
    /// Index of the subgraph in `QueryPlanner::subgraphs()`.
    pub subgraph: usize,
    pub operation_kind: OperationKind,
    /// The subgraph operation text.
    pub query: String,
    /// `query` as a JSON string literal (quoted, escaped), ready to copy into a request body.
    pub query_json: String,
    /// Client variables this fetch forwards.
    pub variable_usages: Vec<String>,
    /// The representation shape of an entity fetch (`None` for root fetches).
    pub requires: Option<SelectionSet>,
    pub input_rewrites: Vec<Rewrite>,
    pub output_rewrites: Vec<Rewrite>,
}

#[derive(Debug, Clone)]
pub struct BatchFetchNode {
    pub fetch: FetchNode,
    pub aliases: Vec<BatchAlias>,
}

/// One aliased `_entities` field of a batched fetch.
#[derive(Debug, Clone)]
pub struct BatchAlias {
    pub alias: String,
    pub representations_variable: String,
    pub paths: Vec<Vec<PathSegment>>,
    pub requires: SelectionSet,
    pub input_rewrites: Vec<Rewrite>,
    pub output_rewrites: Vec<Rewrite>,
}

/// A segment of a flatten path, relative to the response root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Field(String),
    /// `@`: every element of a list.
    List,
    /// Only objects whose `__typename` is (or implements) one of these types.
    TypeCondition(Vec<String>),
}

/// A selection set as the planner uses it for `requires`: fields and inline fragments only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelectionSet {
    pub items: Vec<Selection>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    Field(FieldSelection),
    InlineFragment(InlineFragment),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldSelection {
    pub name: String,
    pub alias: Option<String>,
    pub selections: SelectionSet,
}

impl FieldSelection {
    pub fn response_key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InlineFragment {
    pub type_condition: String,
    pub selections: SelectionSet,
}

/// A rewrite the planner asks for on representations (input) or fetched data (output).
#[derive(Debug, Clone, PartialEq)]
pub enum Rewrite {
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
pub enum RewriteSegment {
    Key(String),
    TypenameEquals(Vec<String>),
}
