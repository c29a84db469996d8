//! Progressive `@override` (Federation 2.7 labels): the pinned planner cannot take labels from
//! outside, so the supergraph is resolved before planning, once per combination of the labels in
//! use, into ordinary supergraphs where each labelled override is either in effect (the field is
//! served by the overriding subgraph only) or not (by the overridden one only). A request picks
//! its combination (`percent(N)` labels by a random draw, others from a header or a claim) and
//! plans with that planner.

use std::collections::HashMap;
use std::sync::Arc;

use graphql_tools::parser::schema::{Definition, TypeDefinition, Value};
use graphql_tools::static_graphql::schema;

use super::{PlannerError, QueryPlanner};

/// One label of the supergraph.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Label {
    pub(crate) name: String,
    /// For `percent(N)`: the share of requests (0 to 100) the override applies to.
    pub(crate) percent: Option<f64>,
}

/// The planners of one supergraph: one per combination of its labels (bit `i` of the index on
/// means `labels[i]` is in effect). Without labels there is one.
pub(crate) struct Planners {
    labels: Vec<Label>,
    planners: Vec<Arc<QueryPlanner>>,
}

impl Planners {
    /// Builds the planners; more than `max_labels` labels (2^labels planners) is an error.
    pub(crate) fn new(sdl: &str, max_labels: usize) -> Result<Planners, PlannerError> {
        let document = graphql_tools::parser::parse_schema::<String>(sdl)
            .map_err(|e| PlannerError::SupergraphSyntax(e.to_string()))?
            .into_static();
        let labels = labels_in(&document)?;
        if labels.is_empty() {
            return Ok(Planners {
                labels,
                planners: vec![Arc::new(QueryPlanner::new(sdl)?)],
            });
        }
        if labels.len() > max_labels {
            return Err(PlannerError::TooManyOverrideLabels {
                count: labels.len(),
                max: max_labels,
            });
        }
        let graphs = graph_names(&document);
        let planners = (0..1usize << labels.len())
            .map(|variant| {
                let on: Vec<&str> = labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| variant & (1 << i) != 0)
                    .map(|(_, label)| label.name.as_str())
                    .collect();
                let resolved = resolve(&document, &graphs, &on);
                QueryPlanner::new(&resolved.to_string()).map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Planners { labels, planners })
    }

    /// The planner with every label off: the supergraph as it was before any progressive
    /// override (its API schema is every variant's).
    pub(crate) fn base(&self) -> &Arc<QueryPlanner> {
        &self.planners[0]
    }

    /// The planner of combination `variant` (an index from [`Planners::choose`]).
    pub(crate) fn get(&self, variant: usize) -> &Arc<QueryPlanner> {
        self.planners.get(variant).unwrap_or(&self.planners[0])
    }

    pub(crate) fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// The combination for one request: a label is on when `enabled` names it, else a
    /// `percent(N)` label is on for N% of the draws (`draw` returns a number in [0, 100)).
    pub(crate) fn choose(&self, enabled: &[&str], mut draw: impl FnMut() -> f64) -> usize {
        let mut variant = 0;
        for (i, label) in self.labels.iter().enumerate() {
            let on = enabled.contains(&label.name.as_str())
                || label.percent.is_some_and(|percent| draw() < percent);
            if on {
                variant |= 1 << i;
            }
        }
        variant
    }
}

/// The `overrideLabel`s of the supergraph's `@join__field`s, sorted.
fn labels_in(document: &schema::Document) -> Result<Vec<Label>, PlannerError> {
    let mut names: Vec<String> = Vec::new();
    for_each_join_field(document, |arguments| {
        if let Some(label) = string_argument(arguments, "overrideLabel")
            && !names.iter().any(|n| n == label)
        {
            names.push(label.to_string());
        }
    });
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let percent = match name
                .strip_prefix("percent(")
                .and_then(|r| r.strip_suffix(')'))
            {
                None => None,
                Some(number) => match number.trim().parse::<f64>() {
                    Ok(p) if (0.0..=100.0).contains(&p) => Some(p),
                    _ => {
                        return Err(PlannerError::SupergraphInvalid(format!(
                            "override label `{name}`: the percentage must be 0 to 100"
                        )));
                    }
                },
            };
            Ok(Label { name, percent })
        })
        .collect()
}

fn string_argument<'a>(
    arguments: &'a [(String, Value<'static, String>)],
    name: &str,
) -> Option<&'a str> {
    arguments.iter().find_map(|(n, v)| match v {
        Value::String(s) if n == name => Some(s.as_str()),
        _ => None,
    })
}

fn enum_argument<'a>(
    arguments: &'a [(String, Value<'static, String>)],
    name: &str,
) -> Option<&'a str> {
    arguments.iter().find_map(|(n, v)| match v {
        Value::Enum(s) if n == name => Some(s.as_str()),
        _ => None,
    })
}

fn for_each_join_field(
    document: &schema::Document,
    mut f: impl FnMut(&[(String, Value<'static, String>)]),
) {
    for definition in &document.definitions {
        let fields = match definition {
            Definition::TypeDefinition(TypeDefinition::Object(o)) => &o.fields,
            Definition::TypeDefinition(TypeDefinition::Interface(i)) => &i.fields,
            _ => continue,
        };
        for field in fields {
            for directive in field.directives.iter().filter(|d| d.name == "join__field") {
                f(&directive.arguments);
            }
        }
    }
}

/// Subgraph name (`join__graph(name:)`) to its `join__Graph` value.
fn graph_names(document: &schema::Document) -> HashMap<String, String> {
    let mut graphs = HashMap::new();
    for definition in &document.definitions {
        if let Definition::TypeDefinition(TypeDefinition::Enum(e)) = definition
            && e.name == "join__Graph"
        {
            for value in &e.values {
                for directive in value.directives.iter().filter(|d| d.name == "join__graph") {
                    if let Some(name) = string_argument(&directive.arguments, "name") {
                        graphs.insert(name.to_string(), value.name.clone());
                    }
                }
            }
        }
    }
    graphs
}

/// The supergraph with labels `on` in effect and every other label not.
fn resolve(
    document: &schema::Document,
    graphs: &HashMap<String, String>,
    on: &[&str],
) -> schema::Document {
    let mut resolved = document.clone();
    for definition in &mut resolved.definitions {
        let fields = match definition {
            Definition::TypeDefinition(TypeDefinition::Object(o)) => &mut o.fields,
            Definition::TypeDefinition(TypeDefinition::Interface(i)) => &mut i.fields,
            _ => continue,
        };
        for field in fields {
            // (label, overridden graph) of each labelled override on this field.
            let overrides: Vec<(String, String)> = field
                .directives
                .iter()
                .filter(|d| d.name == "join__field")
                .filter_map(|d| {
                    let label = string_argument(&d.arguments, "overrideLabel")?;
                    let from = string_argument(&d.arguments, "override")?;
                    Some((label.to_string(), graphs.get(from)?.clone()))
                })
                .collect();
            for (label, from_graph) in overrides {
                let in_effect = on.contains(&label.as_str());
                let is_overriding = |d: &schema::Directive| {
                    string_argument(&d.arguments, "overrideLabel") == Some(label.as_str())
                        && string_argument(&d.arguments, "override").is_some()
                };
                let is_overridden = |d: &schema::Directive| {
                    enum_argument(&d.arguments, "graph") == Some(from_graph.as_str())
                        && string_argument(&d.arguments, "override").is_none()
                };
                if in_effect {
                    // Served by the overriding subgraph alone, as with a plain `@override`.
                    field
                        .directives
                        .retain(|d| d.name != "join__field" || !is_overridden(d));
                } else {
                    field
                        .directives
                        .retain(|d| d.name != "join__field" || !is_overriding(d));
                    let kept = field
                        .directives
                        .iter()
                        .any(|d| d.name == "join__field" && is_overridden(d));
                    if !kept {
                        // Composition may leave the overridden side implicit; say it.
                        let mut directive = field
                            .directives
                            .iter()
                            .find(|d| d.name == "join__field")
                            .cloned()
                            .unwrap_or_else(|| schema::Directive {
                                position: field.position,
                                name: "join__field".to_string(),
                                arguments: Vec::new(),
                            });
                        directive.arguments =
                            vec![("graph".to_string(), Value::Enum(from_graph.clone()))];
                        field.directives.push(directive);
                    }
                }
                for directive in field
                    .directives
                    .iter_mut()
                    .filter(|d| d.name == "join__field")
                {
                    if string_argument(&directive.arguments, "overrideLabel")
                        == Some(label.as_str())
                    {
                        directive
                            .arguments
                            .retain(|(name, _)| name != "overrideLabel");
                    }
                }
            }
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SUPERGRAPH: &str = r#"
schema @link(url: "https://specs.apollo.dev/link/v1.0") @link(url: "https://specs.apollo.dev/join/v0.4", for: EXECUTION) {
  query: Query
}
directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean, overrideLabel: String) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE
directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION
scalar join__FieldSet
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
scalar link__Import
enum link__Purpose { SECURITY EXECUTION }
enum join__Graph {
  NEW @join__graph(name: "new", url: "http://new")
  OLD @join__graph(name: "old", url: "http://old")
}
type Query @join__type(graph: NEW) @join__type(graph: OLD) {
  hello: String @join__field(graph: NEW, override: "old", overrideLabel: "percent(50)") @join__field(graph: OLD)
  other: String @join__field(graph: NEW, override: "old", overrideLabel: "beta") @join__field(graph: OLD, overrideLabel: "beta")
  legacy: Int @join__field(graph: OLD)
}
"#;

    fn subgraph_of(planner: &QueryPlanner, query: &str) -> String {
        let document = graphql_tools::parser::parse_query::<String>(query)
            .unwrap()
            .into_static();
        let operation = planner.normalize(&document, None).unwrap();
        let plan = planner
            .plan(&operation, std::time::Duration::from_secs(5))
            .unwrap();
        plan.text.clone()
    }

    #[test]
    fn one_planner_per_combination_resolving_each_label() {
        let planners = Planners::new(SUPERGRAPH, 4).unwrap();
        assert_eq!(
            planners.labels(),
            [
                Label {
                    name: "beta".into(),
                    percent: None
                },
                Label {
                    name: "percent(50)".into(),
                    percent: Some(50.0)
                }
            ]
        );
        // Bit 0: beta, bit 1: percent(50).
        let hello = |variant| subgraph_of(planners.get(variant), "{ hello }");
        let other = |variant| subgraph_of(planners.get(variant), "{ other }");
        assert!(hello(0).contains("\"old\""), "{}", hello(0));
        assert!(hello(2).contains("\"new\""), "{}", hello(2));
        assert!(other(0).contains("\"old\""), "{}", other(0));
        assert!(other(1).contains("\"new\""), "{}", other(1));
        assert!(hello(1).contains("\"old\""), "beta does not move hello");
        assert_eq!(
            planners.base().api_schema().to_string(),
            planners.get(3).api_schema().to_string()
        );
    }

    #[test]
    fn choosing_a_combination() {
        let planners = Planners::new(SUPERGRAPH, 4).unwrap();
        assert_eq!(planners.choose(&[], || 99.0), 0);
        assert_eq!(
            planners.choose(&[], || 10.0),
            2,
            "a draw under 50 turns percent(50) on"
        );
        assert_eq!(planners.choose(&["beta"], || 99.0), 1);
        assert_eq!(planners.choose(&["beta", "percent(50)"], || 99.0), 3);
    }

    #[test]
    fn too_many_labels_or_a_bad_percentage_refuse_the_supergraph() {
        assert!(matches!(
            Planners::new(SUPERGRAPH, 1),
            Err(PlannerError::TooManyOverrideLabels { count: 2, max: 1 })
        ));
        let bad = SUPERGRAPH.replace("percent(50)", "percent(150)");
        assert!(matches!(
            Planners::new(&bad, 4),
            Err(PlannerError::SupergraphInvalid(_))
        ));
    }
}
