//! The normalized operation as a flat list of selections (pre-order), and the same operation
//! with some of them removed: how the `authorize` and `rate_limit` stages drop fields before
//! planning without the rest of the router touching the planner's AST.
//!
//! Selection ids are pre-order positions, so [`NormalizedOperation::without`] can find the
//! selections again by walking in the same order. A field whose whole sub-selection is removed
//! keeps `__typename`, so the operation stays valid; an inline fragment left empty is dropped.

use hive_router_query_planner::ast::selection_item::SelectionItem;
use hive_router_query_planner::ast::selection_set::{FieldSelection, SelectionSet};

use super::NormalizedOperation;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Field {
        name: String,
        response_key: String,
    },
    Fragment {
        type_condition: String,
    },
    /// Named fragment spreads do not survive normalization; kept for completeness.
    Spread,
}

/// One selection of a normalized operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OperationNode {
    /// Id of the enclosing field or fragment; `None` at the root.
    pub(crate) parent: Option<u32>,
    pub(crate) kind: NodeKind,
    /// Variable of `@skip(if: $v)`: the selection runs only when it is false.
    pub(crate) skip_if: Option<String>,
    /// Variable of `@include(if: $v)`: the selection runs only when it is true.
    pub(crate) include_if: Option<String>,
}

impl NormalizedOperation {
    /// Every selection, in pre-order; a selection's id is its index.
    pub(crate) fn selections(&self) -> Vec<OperationNode> {
        fn walk(set: &SelectionSet, parent: Option<u32>, out: &mut Vec<OperationNode>) {
            for item in &set.items {
                let id = out.len() as u32;
                match item {
                    SelectionItem::Field(field) => {
                        out.push(OperationNode {
                            parent,
                            kind: NodeKind::Field {
                                name: field.name.clone(),
                                response_key: field
                                    .alias
                                    .clone()
                                    .unwrap_or_else(|| field.name.clone()),
                            },
                            skip_if: field.skip_if.clone(),
                            include_if: field.include_if.clone(),
                        });
                        walk(&field.selections, Some(id), out);
                    }
                    SelectionItem::InlineFragment(fragment) => {
                        out.push(OperationNode {
                            parent,
                            kind: NodeKind::Fragment {
                                type_condition: fragment.type_condition.clone(),
                            },
                            skip_if: fragment.skip_if.clone(),
                            include_if: fragment.include_if.clone(),
                        });
                        walk(&fragment.selections, Some(id), out);
                    }
                    SelectionItem::FragmentSpread(_) => out.push(OperationNode {
                        parent,
                        kind: NodeKind::Spread,
                        skip_if: None,
                        include_if: None,
                    }),
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.operation.selection_set, None, &mut out);
        out
    }

    /// This operation without the selections `removed` (ids from [`selections`], sorted) and
    /// everything below them. `None` when nothing is left at the root.
    ///
    /// [`selections`]: NormalizedOperation::selections
    pub(crate) fn without(&self, removed: &[u32]) -> Option<NormalizedOperation> {
        fn prune(set: &mut SelectionSet, next_id: &mut u32, removed: &[u32]) {
            let items = std::mem::take(&mut set.items);
            for mut item in items {
                let id = *next_id;
                *next_id += 1;
                let drop = removed.binary_search(&id).is_ok();
                match &mut item {
                    SelectionItem::Field(field) => {
                        let had_children = !field.selections.items.is_empty();
                        if drop {
                            *next_id += count(&field.selections);
                            continue;
                        }
                        prune(&mut field.selections, next_id, removed);
                        if had_children && field.selections.items.is_empty() {
                            field
                                .selections
                                .items
                                .push(SelectionItem::Field(FieldSelection {
                                    name: "__typename".into(),
                                    ..FieldSelection::default()
                                }));
                        }
                    }
                    SelectionItem::InlineFragment(fragment) => {
                        if drop {
                            *next_id += count(&fragment.selections);
                            continue;
                        }
                        prune(&mut fragment.selections, next_id, removed);
                        if fragment.selections.items.is_empty() {
                            continue;
                        }
                    }
                    SelectionItem::FragmentSpread(_) => {
                        if drop {
                            continue;
                        }
                    }
                }
                set.items.push(item);
            }
        }
        fn count(set: &SelectionSet) -> u32 {
            set.items
                .iter()
                .map(|item| match item {
                    SelectionItem::Field(f) => 1 + count(&f.selections),
                    SelectionItem::InlineFragment(f) => 1 + count(&f.selections),
                    SelectionItem::FragmentSpread(_) => 1,
                })
                .sum()
        }
        let mut operation = self.operation.clone();
        let mut next_id = 0;
        prune(&mut operation.selection_set, &mut next_id, removed);
        let only_typename = operation
            .selection_set
            .items
            .iter()
            .all(|item| matches!(item, SelectionItem::Field(f) if f.name == "__typename"));
        if only_typename {
            return None;
        }
        let text = operation.to_string();
        Some(NormalizedOperation { operation, text })
    }
}
