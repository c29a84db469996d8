//! Access rules from the supergraph: `@authenticated` and `@requiresScopes` on fields and types,
//! as composition writes them (`@link(url: "https://specs.apollo.dev/authenticated/v0.1",
//! for: SECURITY)`, possibly renamed with `as:`).
//!
//! A field selection needs everything its field, its parent type and its return type require; a
//! field of an interface also needs what the same field requires on any implementing type, so
//! asking through the interface is never a way around a rule. `@requiresScopes(scopes:
//! [["a", "b"], ["c"]])` means (a and b) or c, and implies `@authenticated`.

use ahash::AHashMap;
use graphql_tools::parser::query::Value as AstValue;
use graphql_tools::parser::schema::{Definition, TypeDefinition};
use graphql_tools::static_graphql::schema as ast;

use super::Identity;
use crate::graphql::schema::Schema;

/// What a selection needs from the caller. Every listed scope set must be satisfied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Requirement {
    pub(crate) authenticated: bool,
    /// One entry per `@requiresScopes`: alternatives (OR) of scope sets (AND).
    pub(crate) scopes: Vec<Vec<Vec<String>>>,
}

impl Requirement {
    pub(crate) fn is_empty(&self) -> bool {
        !self.authenticated && self.scopes.is_empty()
    }

    fn add(&mut self, other: &Requirement) {
        self.authenticated |= other.authenticated;
        for alternatives in &other.scopes {
            if !self.scopes.contains(alternatives) {
                self.scopes.push(alternatives.clone());
            }
        }
    }

    /// Whether `identity` (with its scopes in `scopes_claim`) meets this requirement.
    pub(crate) fn allows(&self, identity: Option<&Identity>, scopes_claim: &str) -> bool {
        let Some(identity) = identity else {
            return self.is_empty();
        };
        let held = identity.scopes(scopes_claim);
        self.scopes.iter().all(|alternatives| {
            alternatives
                .iter()
                .any(|set| set.iter().all(|scope| held.contains(&scope.as_str())))
        })
    }
}

/// The rules of one supergraph.
#[derive(Debug, Default)]
pub(crate) struct AccessRules {
    types: AHashMap<String, Requirement>,
    fields: AHashMap<(String, String), Requirement>,
}

/// The name `directive` of a linked `feature` has in this supergraph, per the link spec: an
/// imported directive keeps its import name (or its `as`); the directive named like the feature
/// is `@<as or feature>`; any other is `@<as or feature>__<directive>`. `None` when the
/// feature is not linked.
pub(crate) fn linked_directive_name(
    document: &ast::Document,
    feature: &str,
    directive: &str,
) -> Option<String> {
    schema_links(document).find_map(|(url, alias, imports)| {
        let mut parts = url.trim_end_matches('/').rsplitn(3, '/');
        let _version = parts.next();
        if parts.next() != Some(feature) {
            return None;
        }
        let imported = imports.iter().find_map(|(name, renamed)| {
            (name.trim_start_matches('@') == directive).then(|| {
                renamed
                    .as_deref()
                    .unwrap_or(name)
                    .trim_start_matches('@')
                    .to_string()
            })
        });
        let namespace = alias.unwrap_or_else(|| feature.to_string());
        Some(imported.unwrap_or_else(|| {
            if directive == feature {
                namespace
            } else {
                format!("{namespace}__{directive}")
            }
        }))
    })
}

/// `(url, as, imports as (name, renamed))` of each `@link` on the schema definition.
#[allow(clippy::type_complexity)]
fn schema_links(
    document: &ast::Document,
) -> impl Iterator<Item = (String, Option<String>, Vec<(String, Option<String>)>)> + '_ {
    document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::SchemaDefinition(s) => Some(s),
            _ => None,
        })
        .flat_map(|s| s.directives.iter().filter(|d| d.name == "link"))
        .filter_map(|directive| {
            let argument = |name: &str| {
                directive
                    .arguments
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v)
            };
            let url = match argument("url")? {
                AstValue::String(url) => url.clone(),
                _ => return None,
            };
            let alias = match argument("as") {
                Some(AstValue::String(alias)) => Some(alias.clone()),
                _ => None,
            };
            let imports = match argument("import") {
                Some(AstValue::List(items)) => items
                    .iter()
                    .filter_map(|item| match item {
                        AstValue::String(name) => Some((name.clone(), None)),
                        AstValue::Object(fields) => {
                            let get =
                                |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v);
                            match (get("name"), get("as")) {
                                (Some(AstValue::String(name)), Some(AstValue::String(renamed))) => {
                                    Some((name.clone(), Some(renamed.clone())))
                                }
                                (Some(AstValue::String(name)), None) => Some((name.clone(), None)),
                                _ => None,
                            }
                        }
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Some((url, alias, imports))
        })
}

impl AccessRules {
    /// Reads the rules of a supergraph document.
    pub(crate) fn from_supergraph(document: &ast::Document) -> AccessRules {
        let authenticated = linked_directive_name(document, "authenticated", "authenticated");
        let requires_scopes = linked_directive_name(document, "requiresScopes", "requiresScopes");
        let mut rules = AccessRules::default();
        if authenticated.is_none() && requires_scopes.is_none() {
            return rules;
        }
        let read = |directives: &[ast::Directive]| -> Requirement {
            let mut requirement = Requirement::default();
            for directive in directives {
                if Some(&directive.name) == authenticated.as_ref() {
                    requirement.authenticated = true;
                } else if Some(&directive.name) == requires_scopes.as_ref() {
                    requirement.authenticated = true;
                    requirement.scopes.push(scope_sets(directive));
                }
            }
            requirement
        };
        for definition in &document.definitions {
            let Definition::TypeDefinition(ty) = definition else {
                continue;
            };
            let (name, directives, fields) = match ty {
                TypeDefinition::Object(o) => (&o.name, &o.directives, Some(&o.fields)),
                TypeDefinition::Interface(i) => (&i.name, &i.directives, Some(&i.fields)),
                TypeDefinition::Scalar(s) => (&s.name, &s.directives, None),
                TypeDefinition::Enum(e) => (&e.name, &e.directives, None),
                TypeDefinition::Union(u) => (&u.name, &u.directives, None),
                TypeDefinition::InputObject(_) => continue,
            };
            let requirement = read(directives);
            if !requirement.is_empty() {
                rules.types.insert(name.clone(), requirement);
            }
            for field in fields.into_iter().flatten() {
                let requirement = read(&field.directives);
                if !requirement.is_empty() {
                    rules
                        .fields
                        .insert((name.clone(), field.name.clone()), requirement);
                }
            }
        }
        rules
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.types.is_empty() && self.fields.is_empty()
    }

    /// What selecting `parent.field` needs (`None`: nothing).
    pub(crate) fn for_field(
        &self,
        schema: &Schema,
        parent: &str,
        field: &str,
    ) -> Option<Requirement> {
        if self.is_empty() || field.starts_with("__") {
            return None;
        }
        let mut requirement = Requirement::default();
        if let Some(r) = self.types.get(parent) {
            requirement.add(r);
        }
        if let Some(r) = self.fields.get(&(parent.to_string(), field.to_string())) {
            requirement.add(r);
        }
        if let Some(parent_type) = schema.get_type(parent) {
            if let Some(return_type) = parent_type.field(field).map(|f| f.ty.named())
                && let Some(r) = self.types.get(return_type)
            {
                requirement.add(r);
            }
            if parent_type.is_abstract() {
                for implementation in &parent_type.possible_types {
                    if let Some(r) = self
                        .fields
                        .get(&(implementation.clone(), field.to_string()))
                    {
                        requirement.add(r);
                    }
                }
            }
        }
        (!requirement.is_empty()).then_some(requirement)
    }

    /// What a fragment on `type_condition` needs (`None`: nothing).
    pub(crate) fn for_type(&self, type_condition: &str) -> Option<Requirement> {
        self.types.get(type_condition).cloned()
    }
}

fn scope_sets(directive: &ast::Directive) -> Vec<Vec<String>> {
    let Some((_, AstValue::List(outer))) = directive.arguments.iter().find(|(n, _)| n == "scopes")
    else {
        return Vec::new();
    };
    outer
        .iter()
        .map(|inner| match inner {
            AstValue::List(scopes) => scopes
                .iter()
                .filter_map(|s| match s {
                    AstValue::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            AstValue::String(s) => vec![s.clone()],
            _ => Vec::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const SDL: &str = r#"
        schema @link(url: "https://specs.apollo.dev/link/v1.0")
          @link(url: "https://specs.apollo.dev/authenticated/v0.1", for: SECURITY)
          @link(url: "https://specs.apollo.dev/requiresScopes/v0.1", as: "scoped", for: SECURITY) {
          query: Query
        }
        type Query {
          me: User @authenticated
          users: [User] @scoped(scopes: [["admin"], ["read:users", "support"]])
          secret: Secret
          node: Node
          open: Int
        }
        type User implements Node { id: ID!, email: String @scoped(scopes: [["email"]]) }
        type Secret @authenticated { x: Int }
        interface Node { id: ID! email: String }
    "#;

    fn setup() -> (AccessRules, Schema) {
        let document = graphql_tools::parser::parse_schema::<String>(SDL)
            .unwrap()
            .into_static();
        let rules = AccessRules::from_supergraph(&document);
        (rules, Schema::new(Arc::new(document)))
    }

    fn identity(scopes: &[&str]) -> Identity {
        Identity::new(
            serde_json::json!({"sub": "u", "scopes": scopes})
                .as_object()
                .unwrap()
                .clone(),
        )
    }

    #[test]
    fn reads_renamed_directives_and_combines_requirements() {
        let (rules, schema) = setup();
        let me = rules.for_field(&schema, "Query", "me").unwrap();
        assert!(me.authenticated && me.scopes.is_empty());
        assert!(!me.allows(None, "scopes"));
        assert!(me.allows(Some(&identity(&[])), "scopes"));

        let users = rules.for_field(&schema, "Query", "users").unwrap();
        assert!(!users.allows(Some(&identity(&[])), "scopes"));
        assert!(users.allows(Some(&identity(&["admin"])), "scopes"));
        assert!(!users.allows(Some(&identity(&["read:users"])), "scopes"));
        assert!(users.allows(Some(&identity(&["support", "read:users"])), "scopes"));

        // The return type's own rule applies to the field returning it.
        assert!(
            rules
                .for_field(&schema, "Query", "secret")
                .unwrap()
                .authenticated
        );
        assert!(rules.for_type("Secret").is_some());
        // Asking through the interface carries the implementation's rule.
        let email = rules.for_field(&schema, "Node", "email").unwrap();
        assert_eq!(email.scopes, vec![vec![vec!["email".to_string()]]]);
        assert!(rules.for_field(&schema, "Query", "open").is_none());
        assert!(rules.for_field(&schema, "User", "__typename").is_none());
    }

    #[test]
    fn no_links_means_no_rules() {
        let document =
            graphql_tools::parser::parse_schema::<String>("type Query { me: Int @authenticated }")
                .unwrap()
                .into_static();
        assert!(AccessRules::from_supergraph(&document).is_empty());
    }

    #[test]
    fn imported_and_renamed_directives_are_found() {
        let document = graphql_tools::parser::parse_schema::<String>(
            r#"schema @link(url: "https://shippy.dev/rate-limit/v0.1", import: [{name: "@rateLimit", as: "@limit"}]) { query: Query } type Query { a: Int }"#,
        )
        .unwrap()
        .into_static();
        assert_eq!(
            linked_directive_name(&document, "rate-limit", "rateLimit"),
            Some("limit".to_string())
        );
        assert_eq!(
            linked_directive_name(&document, "rate-limit", "other"),
            Some("rate-limit__other".to_string())
        );
        assert_eq!(
            linked_directive_name(&document, "authenticated", "authenticated"),
            None
        );
    }
}
