//! Stage 4, authorize: fields and types the caller may not see (`@authenticated`,
//! `@requiresScopes`) are removed from the normalized operation before planning and answered as
//! null with an `UNAUTHORIZED_FIELD_OR_TYPE` error at their path; the rest of the operation runs.
//!
//! The selections that carry a rule (an access requirement or a rate limit) are found once per
//! prepared operation ([`Guards`]); per request only those are checked, with the caller's
//! identity and the variables that decide `@skip`/`@include`. A selection skipped by its
//! variables is neither refused nor counted. The `rate_limit` stage then checks the guards that
//! survived this one.
//!
//! Error paths use `"@"` for list positions (`["users", "@", "email"]`): the field is refused for
//! every element, once.

use std::time::Duration;

use serde_json::{Map, Value as Json};

use crate::auth::Identity;
use crate::auth::rules::{AccessRules, Requirement};
use crate::error::{GraphQLError, PathElement, codes};
use crate::graphql::schema::{Schema, TypeRef};
use crate::query_planner::{NodeKind, OperationNode};
use crate::rate_limit::RateLimits;

/// A selection with a rule on it.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    /// Its id in the normalized operation.
    pub(crate) node: u32,
    /// The nearest guard above it: when that one is removed, this one does not matter.
    pub(crate) parent_guard: Option<usize>,
    /// `(client variable, value it must have)` of each `@skip`/`@include` on the way down.
    pub(crate) conditions: Vec<(String, bool)>,
    /// Response path, `"@"` for list positions.
    pub(crate) path: Vec<PathElement>,
    /// `Type.field`, or `... on Type` for a fragment.
    pub(crate) coordinate: String,
    pub(crate) requirement: Option<Requirement>,
    /// Index of the rate limit rule (in the `RateLimits` the guards were built with).
    pub(crate) rate_limit: Option<usize>,
    /// A field at the root of the operation.
    pub(crate) root: bool,
}

/// The guards of one prepared operation.
#[derive(Debug, Default)]
pub(crate) struct Guards {
    pub(crate) list: Vec<Guard>,
    /// Conditions of each root data field, guarded or not (to tell when all are rate-limited).
    pub(crate) root_fields: Vec<Vec<(String, bool)>>,
}

impl Guards {
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Finds the guarded selections of `nodes`. `renames` maps variables the plan renamed back
    /// to the client's names (conditions are decided on the client's variables).
    pub(crate) fn build(
        schema: &Schema,
        nodes: &[OperationNode],
        root_type: &str,
        rules: &AccessRules,
        limits: &RateLimits,
        renames: &[(String, String)],
    ) -> Guards {
        struct Info {
            child_type: String,
            path: Vec<PathElement>,
            conditions: Vec<(String, bool)>,
            nearest_guard: Option<usize>,
            at_root: bool,
        }
        let client_name = |name: &String| {
            renames
                .iter()
                .find(|(new, _)| new == name)
                .map(|(_, old)| old.clone())
                .unwrap_or_else(|| name.clone())
        };
        let mut guards = Guards::default();
        if rules.is_empty() && limits.is_empty() {
            return guards;
        }
        let mut infos: Vec<Info> = Vec::with_capacity(nodes.len());
        for (id, node) in nodes.iter().enumerate() {
            let parent = node.parent.map(|p| &infos[p as usize]);
            let parent_type = parent
                .map_or(root_type, |p| p.child_type.as_str())
                .to_string();
            let mut path = parent.map(|p| p.path.clone()).unwrap_or_default();
            let mut conditions = parent.map(|p| p.conditions.clone()).unwrap_or_default();
            let nearest = parent.and_then(|p| p.nearest_guard);
            let parent_at_root = parent.is_none_or(|p| p.at_root);
            if let Some(v) = &node.skip_if {
                conditions.push((client_name(v), false));
            }
            if let Some(v) = &node.include_if {
                conditions.push((client_name(v), true));
            }
            let (child_type, own_path, coordinate, requirement, rate_limit, at_root, is_root_field) =
                match &node.kind {
                    NodeKind::Field { name, response_key } => {
                        let ty = schema
                            .get_type(&parent_type)
                            .and_then(|t| t.field(name))
                            .map(|f| f.ty.clone());
                        path.push(PathElement::Key(response_key.clone()));
                        let own_path = path.clone();
                        let mut wrapper = ty.as_ref();
                        while let Some(t) = wrapper {
                            wrapper = match t {
                                TypeRef::NonNull(inner) => Some(inner),
                                TypeRef::List(inner) => {
                                    path.push(PathElement::Key("@".into()));
                                    Some(inner)
                                }
                                TypeRef::Named(_) => None,
                            };
                        }
                        let is_data = !name.starts_with("__");
                        (
                            ty.map(|t| t.named().to_string()).unwrap_or_default(),
                            own_path,
                            format!("{parent_type}.{name}"),
                            rules.for_field(schema, &parent_type, name),
                            limits.rule_for(&parent_type, name),
                            false,
                            parent_at_root && is_data,
                        )
                    }
                    NodeKind::Fragment { type_condition } => (
                        type_condition.clone(),
                        path.clone(),
                        format!("... on {type_condition}"),
                        rules.for_type(type_condition),
                        None,
                        parent_at_root,
                        false,
                    ),
                    NodeKind::Spread => (
                        parent_type.clone(),
                        path.clone(),
                        String::new(),
                        None,
                        None,
                        false,
                        false,
                    ),
                };
            if is_root_field {
                guards.root_fields.push(conditions.clone());
            }
            let nearest_guard = if requirement.is_some() || rate_limit.is_some() {
                guards.list.push(Guard {
                    node: id as u32,
                    parent_guard: nearest,
                    conditions: conditions.clone(),
                    path: own_path,
                    coordinate,
                    requirement,
                    rate_limit,
                    root: is_root_field,
                });
                Some(guards.list.len() - 1)
            } else {
                nearest
            };
            infos.push(Info {
                child_type,
                path,
                conditions,
                nearest_guard,
                at_root,
            });
        }
        guards
    }
}

/// Whether a selection with these conditions runs for these variables.
pub(crate) fn active(conditions: &[(String, bool)], variables: &Map<String, Json>) -> bool {
    conditions.iter().all(|(name, wanted)| {
        variables.get(name).and_then(Json::as_bool).unwrap_or(false) == *wanted
    })
}

/// Why a guarded selection was removed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Removal {
    Unauthorized,
    RateLimited { retry_after: Duration },
}

/// Per-request state of the guards: which ones are removed, and why.
#[derive(Debug, Default)]
pub(crate) struct Verdicts {
    /// Indexed like `Guards::list`; `None`: kept (or not applicable).
    pub(crate) removals: Vec<Option<Removal>>,
    /// Skipped by its variables, or under a removed guard: not checked at all.
    pub(crate) inactive: Vec<bool>,
}

impl Verdicts {
    pub(crate) fn new(guards: &Guards, variables: &Map<String, Json>) -> Verdicts {
        let mut inactive = Vec::with_capacity(guards.list.len());
        for guard in &guards.list {
            inactive.push(!active(&guard.conditions, variables));
        }
        Verdicts {
            removals: vec![None; guards.list.len()],
            inactive,
        }
    }

    /// Whether guard `index` still needs checking: active and no guard above it removed.
    pub(crate) fn pending(&self, guards: &Guards, index: usize) -> bool {
        if self.inactive[index] || self.removals[index].is_some() {
            return false;
        }
        let mut parent = guards.list[index].parent_guard;
        while let Some(p) = parent {
            if self.removals[p].is_some() {
                return false;
            }
            parent = guards.list[p].parent_guard;
        }
        true
    }

    /// Node ids to remove from the operation, sorted.
    pub(crate) fn removed_nodes(&self, guards: &Guards) -> Vec<u32> {
        let mut nodes: Vec<u32> = guards
            .list
            .iter()
            .zip(&self.removals)
            .filter(|(_, r)| r.is_some())
            .map(|(g, _)| g.node)
            .collect();
        nodes.sort_unstable();
        nodes
    }

    /// One error per removed path (abstract types expand into several selections per path).
    pub(crate) fn errors(&self, guards: &Guards) -> Vec<GraphQLError> {
        let mut errors: Vec<GraphQLError> = Vec::new();
        for (guard, removal) in guards.list.iter().zip(&self.removals) {
            let Some(removal) = removal else { continue };
            let error = match removal {
                Removal::Unauthorized => GraphQLError::new(
                    "Unauthorized field or type",
                    codes::UNAUTHORIZED_FIELD_OR_TYPE,
                ),
                Removal::RateLimited { retry_after } => {
                    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                    GraphQLError::new(
                        format!(
                            "Rate limit exceeded for {}; retry in {seconds}s",
                            guard.coordinate
                        ),
                        codes::RATE_LIMITED,
                    )
                    .with_extension("retryAfter", seconds)
                }
            }
            .with_path(guard.path.clone());
            let duplicate = errors
                .iter()
                .any(|e| e.path == error.path && e.code() == error.code());
            if !duplicate {
                errors.push(error);
            }
        }
        errors
    }
}

/// Removes the guards the caller does not meet.
pub(crate) fn authorize(
    guards: &Guards,
    verdicts: &mut Verdicts,
    identity: Option<&Identity>,
    scopes_claim: &str,
) {
    for index in 0..guards.list.len() {
        let Some(requirement) = &guards.list[index].requirement else {
            continue;
        };
        if verdicts.pending(guards, index) && !requirement.allows(identity, scopes_claim) {
            verdicts.removals[index] = Some(Removal::Unauthorized);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::config::RateLimitConfig;
    use crate::query_planner::QueryPlanner;

    const SUPERGRAPH: &str = r#"
schema
  @link(url: "https://specs.apollo.dev/link/v1.0")
  @link(url: "https://specs.apollo.dev/join/v0.3", for: EXECUTION)
  @link(url: "https://specs.apollo.dev/authenticated/v0.1", for: SECURITY)
  @link(url: "https://specs.apollo.dev/requiresScopes/v0.1", for: SECURITY) {
  query: Query
}
directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
directive @authenticated on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM
directive @requiresScopes(scopes: [[requiresScopes__Scope!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM
scalar requiresScopes__Scope
scalar join__FieldSet
scalar link__Import
enum link__Purpose { SECURITY EXECUTION }
enum join__Graph { A @join__graph(name: "a", url: "http://127.0.0.1:1/graphql") }
type Query @join__type(graph: A) {
  me: User @authenticated
  users: [User!] @requiresScopes(scopes: [["admin"]])
  open: Int
}
type User @join__type(graph: A, key: "id") {
  id: ID!
  email: String @authenticated
  friends: [User]
}
"#;

    fn guards(query: &str) -> (Guards, Arc<QueryPlanner>) {
        let planner = Arc::new(QueryPlanner::new(SUPERGRAPH).unwrap());
        let schema = Schema::new(Arc::clone(planner.api_schema()));
        let rules = AccessRules::from_supergraph(planner.supergraph());
        let document = crate::operation::parse::parse(query, 1000).unwrap();
        let normalized = planner.normalize(&document, None).unwrap();
        let limits = RateLimits::new(&RateLimitConfig::default(), Vec::new()).unwrap();
        let guards = Guards::build(
            &schema,
            &normalized.selections(),
            "Query",
            &rules,
            &limits,
            &[],
        );
        (guards, planner)
    }

    #[test]
    fn finds_guarded_selections_with_list_paths() {
        let (guards, _) = guards("{ open me { id email } users { friends { email } } }");
        let coordinates: Vec<&str> = guards.list.iter().map(|g| g.coordinate.as_str()).collect();
        assert_eq!(
            coordinates,
            vec!["Query.me", "User.email", "Query.users", "User.email"]
        );
        assert_eq!(guards.list[1].parent_guard, Some(0));
        assert_eq!(
            serde_json::to_value(&guards.list[3].path).unwrap(),
            json!(["users", "@", "friends", "@", "email"])
        );
        assert_eq!(guards.root_fields.len(), 3);
        assert!(guards.list[0].root && !guards.list[1].root);
    }

    #[test]
    fn anonymous_callers_lose_guarded_fields_and_nested_ones_are_moot() {
        let (guards, _) = guards("{ open me { id email } users { id } }");
        let mut verdicts = Verdicts::new(&guards, &Map::new());
        authorize(&guards, &mut verdicts, None, "scopes");
        // `me` is removed; `me.email` under it is not reported separately.
        assert_eq!(verdicts.removals[0], Some(Removal::Unauthorized));
        assert_eq!(verdicts.removals[1], None);
        assert_eq!(verdicts.removals[2], Some(Removal::Unauthorized));
        let errors = verdicts.errors(&guards);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].code(), Some(codes::UNAUTHORIZED_FIELD_OR_TYPE));
    }

    #[test]
    fn scopes_decide_and_skipped_selections_are_not_checked() {
        let (guards, _) =
            guards("query($x: Boolean!) { users @include(if: $x) { id } me { email } }");
        let user = Identity::new(
            json!({"sub": "u", "scopes": []})
                .as_object()
                .unwrap()
                .clone(),
        );
        let variables = json!({"x": false}).as_object().unwrap().clone();
        let mut verdicts = Verdicts::new(&guards, &variables);
        authorize(&guards, &mut verdicts, Some(&user), "scopes");
        assert!(verdicts.removals.iter().all(Option::is_none));
        let variables = json!({"x": true}).as_object().unwrap().clone();
        let mut verdicts = Verdicts::new(&guards, &variables);
        authorize(&guards, &mut verdicts, Some(&user), "scopes");
        let removed: Vec<&str> = guards
            .list
            .iter()
            .zip(&verdicts.removals)
            .filter(|(_, r)| r.is_some())
            .map(|(g, _)| g.coordinate.as_str())
            .collect();
        assert_eq!(removed, vec!["Query.users"]);
    }

    #[test]
    fn removal_keeps_the_operation_valid() {
        let (guards, planner) = guards("{ open me { email } }");
        let document = crate::operation::parse::parse("{ open me { email } }", 1000).unwrap();
        let normalized = planner.normalize(&document, None).unwrap();
        let email = guards
            .list
            .iter()
            .find(|g| g.coordinate == "User.email")
            .unwrap();
        let compact = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        let without = normalized.without(&[email.node]).unwrap();
        assert_eq!(compact(without.text()), "{open me{__typename}}");
        let me = guards
            .list
            .iter()
            .find(|g| g.coordinate == "Query.me")
            .unwrap();
        let without = normalized.without(&[me.node]).unwrap();
        assert_eq!(compact(without.text()), "{open}");
        let open = normalized
            .selections()
            .iter()
            .position(|n| matches!(&n.kind, NodeKind::Field { name, .. } if name == "open"))
            .unwrap() as u32;
        let mut both = vec![open, me.node];
        both.sort_unstable();
        assert!(normalized.without(&both).is_none());
    }
}
