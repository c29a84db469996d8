//! Converts the planner crate's plan into ours, once per planned operation.

use hive_router_query_planner::ast::selection_item::SelectionItem as HiveSelectionItem;
use hive_router_query_planner::ast::selection_set::SelectionSet as HiveSelectionSet;
use hive_router_query_planner::planner::plan_nodes::{
    FetchNode as HiveFetchNode, FetchNodePathSegment, FetchRewrite, FlattenNodePath,
    FlattenNodePathSegment, PlanNode as HivePlanNode, QueryPlan as HiveQueryPlan,
};

use super::plan::*;
use super::{PlannerError, SubgraphDefinition, operation_kind};

pub(super) fn convert_plan(
    plan: &HiveQueryPlan,
    subgraphs: &[SubgraphDefinition],
) -> Result<QueryPlan, PlannerError> {
    let root = plan
        .node
        .as_ref()
        .map(|node| convert_node(node, subgraphs))
        .transpose()?;
    let root = root
        .map(serialize_mutations)
        .map(hoist_subscription)
        .transpose()?;
    Ok(QueryPlan {
        root,
        text: plan.to_string(),
    })
}

/// The planner puts a subscription's primary fetch first in a `Sequence` with the entity fetches
/// that complete each event; ours keeps those as the subscription node's `rest`, so the executor
/// can run them per event. A primary fetch anywhere else cannot be executed.
fn hoist_subscription(root: PlanNode) -> Result<PlanNode, PlannerError> {
    let misplaced =
        || PlannerError::Planning("a subscription's primary fetch is not first in its plan".into());
    match root {
        PlanNode::Sequence(mut nodes)
            if matches!(nodes.first(), Some(PlanNode::Subscription(_))) =>
        {
            let PlanNode::Subscription(mut subscription) = nodes.remove(0) else {
                return Err(misplaced());
            };
            if nodes.iter().any(contains_subscription) {
                return Err(misplaced());
            }
            subscription.rest = match nodes.len() {
                0 => None,
                1 => nodes.pop().map(Box::new),
                _ => Some(Box::new(PlanNode::Sequence(nodes))),
            };
            Ok(PlanNode::Subscription(subscription))
        }
        PlanNode::Subscription(subscription) => Ok(PlanNode::Subscription(subscription)),
        other if contains_subscription(&other) => Err(misplaced()),
        other => Ok(other),
    }
}

fn contains_subscription(node: &PlanNode) -> bool {
    match node {
        PlanNode::Subscription(_) => true,
        PlanNode::Sequence(nodes) | PlanNode::Parallel(nodes) => {
            nodes.iter().any(contains_subscription)
        }
        PlanNode::Condition(condition) => condition
            .if_clause
            .iter()
            .chain(condition.else_clause.iter())
            .any(|node| contains_subscription(node)),
        PlanNode::Fetch(_) | PlanNode::Flatten(_) | PlanNode::BatchFetch(_) | PlanNode::Defer => {
            false
        }
    }
}

fn is_mutation_fetch(node: &PlanNode) -> bool {
    matches!(node, PlanNode::Fetch(fetch) if fetch.operation_kind == OperationKind::Mutation)
}

/// Mutation root fields must complete, sub-selections included, before the next one starts.
/// The planner may put a later root field's mutation in a `Parallel` with entity fetches of an
/// earlier field's selection. Such entity fetches can only belong to earlier fields (a later
/// field's entities do not exist before its mutation ran), so they run first, then the
/// mutations in their planned order.
fn serialize_mutations(node: PlanNode) -> PlanNode {
    match node {
        PlanNode::Sequence(nodes) => {
            PlanNode::Sequence(nodes.into_iter().map(serialize_mutations).collect())
        }
        PlanNode::Parallel(nodes) if nodes.iter().any(is_mutation_fetch) => {
            let (mutations, others): (Vec<PlanNode>, Vec<PlanNode>) =
                nodes.into_iter().partition(is_mutation_fetch);
            let mut sequence = Vec::with_capacity(mutations.len() + 1);
            match others.len() {
                0 => {}
                1 => sequence.extend(others.into_iter().map(serialize_mutations)),
                _ => sequence.push(PlanNode::Parallel(
                    others.into_iter().map(serialize_mutations).collect(),
                )),
            }
            sequence.extend(mutations);
            PlanNode::Sequence(sequence)
        }
        PlanNode::Parallel(nodes) => {
            PlanNode::Parallel(nodes.into_iter().map(serialize_mutations).collect())
        }
        PlanNode::Condition(mut condition) => {
            condition.if_clause = condition
                .if_clause
                .map(|n| Box::new(serialize_mutations(*n)));
            condition.else_clause = condition
                .else_clause
                .map(|n| Box::new(serialize_mutations(*n)));
            PlanNode::Condition(condition)
        }
        other => other,
    }
}

fn convert_node(
    node: &HivePlanNode,
    subgraphs: &[SubgraphDefinition],
) -> Result<PlanNode, PlannerError> {
    Ok(match node {
        HivePlanNode::Fetch(fetch) => PlanNode::Fetch(convert_fetch(fetch, subgraphs)?),
        HivePlanNode::Flatten(flatten) => match flatten.node.as_ref() {
            HivePlanNode::Fetch(fetch) => PlanNode::Flatten(FlattenNode {
                path: convert_path(&flatten.path),
                fetch: convert_fetch(fetch, subgraphs)?,
            }),
            other => {
                return Err(PlannerError::Planning(format!(
                    "unexpected node inside Flatten: {}",
                    node_kind(other)
                )));
            }
        },
        HivePlanNode::BatchFetch(batch) => {
            let fetch = FetchNode {
                service: batch.service_name.clone(),
                subgraph: subgraph_index(&batch.service_name, subgraphs)?,
                operation_kind: operation_kind(batch.operation_kind.as_ref()),
                query: batch.operation.document_str.clone(),
                query_json: json_string(&batch.operation.document_str),
                variable_usages: batch.variable_usages.iter().flatten().cloned().collect(),
                requires: None,
                input_rewrites: Vec::new(),
                output_rewrites: Vec::new(),
            };
            let aliases = batch
                .entity_batch
                .aliases
                .iter()
                .map(|alias| BatchAlias {
                    alias: alias.alias.clone(),
                    representations_variable: alias.representations_variable_name.clone(),
                    paths: alias.merge_paths.iter().map(convert_path).collect(),
                    requires: convert_selection_set(&alias.requires),
                    input_rewrites: convert_rewrites(alias.input_rewrites.as_deref()),
                    output_rewrites: convert_rewrites(alias.output_rewrites.as_deref()),
                })
                .collect();
            PlanNode::BatchFetch(BatchFetchNode { fetch, aliases })
        }
        HivePlanNode::Sequence(sequence) => PlanNode::Sequence(
            sequence
                .nodes
                .iter()
                .map(|n| convert_node(n, subgraphs))
                .collect::<Result<_, _>>()?,
        ),
        HivePlanNode::Parallel(parallel) => PlanNode::Parallel(
            parallel
                .nodes
                .iter()
                .map(|n| convert_node(n, subgraphs))
                .collect::<Result<_, _>>()?,
        ),
        HivePlanNode::Condition(condition) => PlanNode::Condition(ConditionNode {
            variable: condition.condition.clone(),
            if_clause: condition
                .if_clause
                .as_deref()
                .map(|n| convert_node(n, subgraphs).map(Box::new))
                .transpose()?,
            else_clause: condition
                .else_clause
                .as_deref()
                .map(|n| convert_node(n, subgraphs).map(Box::new))
                .transpose()?,
        }),
        HivePlanNode::Subscription(subscription) => PlanNode::Subscription(SubscriptionNode {
            primary: convert_fetch(&subscription.primary, subgraphs)?,
            rest: None,
        }),
        HivePlanNode::Defer(_) => PlanNode::Defer,
    })
}

fn node_kind(node: &HivePlanNode) -> &'static str {
    match node {
        HivePlanNode::Fetch(_) => "Fetch",
        HivePlanNode::BatchFetch(_) => "BatchFetch",
        HivePlanNode::Sequence(_) => "Sequence",
        HivePlanNode::Parallel(_) => "Parallel",
        HivePlanNode::Flatten(_) => "Flatten",
        HivePlanNode::Condition(_) => "Condition",
        HivePlanNode::Subscription(_) => "Subscription",
        HivePlanNode::Defer(_) => "Defer",
    }
}

fn subgraph_index(name: &str, subgraphs: &[SubgraphDefinition]) -> Result<usize, PlannerError> {
    subgraphs
        .iter()
        .position(|s| s.name == name)
        .ok_or_else(|| PlannerError::Planning(format!("plan references unknown subgraph `{name}`")))
}

fn convert_fetch(
    fetch: &HiveFetchNode,
    subgraphs: &[SubgraphDefinition],
) -> Result<FetchNode, PlannerError> {
    Ok(FetchNode {
        service: fetch.service_name.clone(),
        subgraph: subgraph_index(&fetch.service_name, subgraphs)?,
        operation_kind: operation_kind(fetch.operation_kind.as_ref()),
        query: fetch.operation.document_str.clone(),
        query_json: json_string(&fetch.operation.document_str),
        variable_usages: fetch.variable_usages.iter().flatten().cloned().collect(),
        requires: fetch.requires.as_ref().map(convert_selection_set),
        input_rewrites: convert_rewrites(fetch.input_rewrites.as_deref()),
        output_rewrites: convert_rewrites(fetch.output_rewrites.as_deref()),
    })
}

fn json_string(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 8);
    crate::graphql::value::write_str(&mut out, s);
    String::from_utf8(out).unwrap_or_default()
}

fn convert_path(path: &FlattenNodePath) -> Vec<PathSegment> {
    path.as_slice()
        .iter()
        .map(|segment| match segment {
            FlattenNodePathSegment::Field(name) => PathSegment::Field(name.clone()),
            FlattenNodePathSegment::List => PathSegment::List,
            FlattenNodePathSegment::TypeCondition(types) => {
                PathSegment::TypeCondition(types.iter().cloned().collect())
            }
        })
        .collect()
}

fn convert_selection_set(set: &HiveSelectionSet) -> SelectionSet {
    SelectionSet {
        items: set
            .items
            .iter()
            .filter_map(|item| match item {
                HiveSelectionItem::Field(field) => Some(Selection::Field(FieldSelection {
                    name: field.name.clone(),
                    alias: field.alias.clone(),
                    selections: convert_selection_set(&field.selections),
                })),
                HiveSelectionItem::InlineFragment(fragment) => {
                    Some(Selection::InlineFragment(InlineFragment {
                        type_condition: fragment.type_condition.clone(),
                        selections: convert_selection_set(&fragment.selections),
                    }))
                }
                // `requires` are built from fields and inline fragments only.
                HiveSelectionItem::FragmentSpread(_) => None,
            })
            .collect(),
    }
}

fn convert_rewrites(rewrites: Option<&[FetchRewrite]>) -> Vec<Rewrite> {
    let convert_segments = |path: &[FetchNodePathSegment]| {
        path.iter()
            .map(|segment| match segment {
                FetchNodePathSegment::Key(key) => RewriteSegment::Key(key.clone()),
                FetchNodePathSegment::TypenameEquals(types) => {
                    RewriteSegment::TypenameEquals(types.iter().cloned().collect())
                }
            })
            .collect()
    };
    rewrites
        .unwrap_or_default()
        .iter()
        .map(|rewrite| match rewrite {
            FetchRewrite::ValueSetter(setter) => Rewrite::ValueSetter {
                path: convert_segments(&setter.path),
                value: setter.set_value_to.clone(),
            },
            FetchRewrite::KeyRenamer(renamer) => Rewrite::KeyRenamer {
                path: convert_segments(&renamer.path),
                rename_to: renamer.rename_key_to.clone(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(service: &str, kind: OperationKind) -> FetchNode {
        FetchNode {
            service: service.into(),
            subgraph: 0,
            operation_kind: kind,
            query: String::new(),
            query_json: String::new(),
            variable_usages: Vec::new(),
            requires: None,
            input_rewrites: Vec::new(),
            output_rewrites: Vec::new(),
        }
    }

    fn label(node: &PlanNode) -> String {
        match node {
            PlanNode::Fetch(f) => f.service.clone(),
            PlanNode::Flatten(f) => format!("flatten:{}", f.fetch.service),
            PlanNode::Sequence(nodes) => format!(
                "seq[{}]",
                nodes.iter().map(label).collect::<Vec<_>>().join(",")
            ),
            PlanNode::Parallel(nodes) => format!(
                "par[{}]",
                nodes.iter().map(label).collect::<Vec<_>>().join(",")
            ),
            _ => "other".into(),
        }
    }

    #[test]
    fn entity_fetches_of_earlier_mutation_fields_run_before_later_mutations() {
        let flatten = |service: &str| {
            PlanNode::Flatten(FlattenNode {
                path: vec![PathSegment::Field("a".into())],
                fetch: fetch(service, OperationKind::Query),
            })
        };
        let plan = PlanNode::Sequence(vec![
            PlanNode::Fetch(fetch("a", OperationKind::Mutation)),
            PlanNode::Parallel(vec![
                PlanNode::Fetch(fetch("b", OperationKind::Mutation)),
                flatten("x"),
                flatten("y"),
            ]),
            PlanNode::Fetch(fetch("c", OperationKind::Mutation)),
        ]);
        assert_eq!(
            label(&serialize_mutations(plan)),
            "seq[a,seq[par[flatten:x,flatten:y],b],c]"
        );
    }

    #[test]
    fn query_parallels_are_left_alone() {
        let plan = PlanNode::Parallel(vec![
            PlanNode::Fetch(fetch("a", OperationKind::Query)),
            PlanNode::Fetch(fetch("b", OperationKind::Query)),
        ]);
        assert_eq!(label(&serialize_mutations(plan)), "par[a,b]");
    }

    fn subscription() -> PlanNode {
        PlanNode::Subscription(SubscriptionNode {
            primary: fetch("events", OperationKind::Subscription),
            rest: None,
        })
    }

    fn flatten(service: &str) -> PlanNode {
        PlanNode::Flatten(FlattenNode {
            path: vec![PathSegment::Field("tick".into())],
            fetch: fetch(service, OperationKind::Query),
        })
    }

    #[test]
    fn a_subscription_keeps_the_rest_of_its_plan() {
        let hoisted =
            hoist_subscription(PlanNode::Sequence(vec![subscription(), flatten("names")])).unwrap();
        let PlanNode::Subscription(node) = hoisted else {
            panic!("not a subscription");
        };
        assert_eq!(node.primary.service, "events");
        assert_eq!(label(node.rest.as_deref().unwrap()), "flatten:names");

        let hoisted = hoist_subscription(PlanNode::Sequence(vec![
            subscription(),
            flatten("a"),
            flatten("b"),
        ]))
        .unwrap();
        let PlanNode::Subscription(node) = hoisted else {
            panic!("not a subscription");
        };
        assert_eq!(
            label(node.rest.as_deref().unwrap()),
            "seq[flatten:a,flatten:b]"
        );

        let PlanNode::Subscription(alone) = hoist_subscription(subscription()).unwrap() else {
            panic!("not a subscription");
        };
        assert!(alone.rest.is_none());
        assert_eq!(
            label(&hoist_subscription(flatten("q")).unwrap()),
            "flatten:q"
        );
    }

    #[test]
    fn a_primary_fetch_anywhere_but_first_is_refused() {
        for plan in [
            PlanNode::Sequence(vec![flatten("a"), subscription()]),
            PlanNode::Parallel(vec![subscription(), flatten("a")]),
            PlanNode::Sequence(vec![subscription(), subscription()]),
        ] {
            let error = hoist_subscription(plan).unwrap_err().to_string();
            assert!(error.contains("not first"), "{error}");
        }
    }
}
