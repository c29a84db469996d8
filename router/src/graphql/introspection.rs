//! Introspection (`__schema`, `__type`) answered by the router from the API schema.
//!
//! The API schema has no `join__`/`link__` internals and no `@inaccessible` elements, so neither
//! does anything introspection returns. The resolver produces every field the selection names
//! (through any fragment); `respond` then shapes the result exactly like subgraph data.

use std::borrow::Cow;

use graphql_tools::parser::query::{Definition, Selection, Value as AstValue};
use graphql_tools::static_graphql::query;
use serde_json::{Map, Value as Json};

use crate::graphql::schema::{
    DirectiveDef, EnumValueDef, FieldDef, InputValueDef, Schema, TypeDef, TypeKind, TypeRef,
};
use crate::graphql::value::{Value, deep_merge};

/// Resolves the `__schema`/`__type` fields of a root selection set into `(response key, value)`
/// pairs to merge into the response data.
pub(crate) fn resolve_root<'s>(
    schema: &'s Schema,
    document: &'s query::Document,
    root: &'s query::SelectionSet,
    variables: &Map<String, Json>,
) -> Vec<(Cow<'static, str>, Value<'static>)> {
    let resolver = Resolver {
        schema,
        document,
        variables,
    };
    let mut out = Vec::new();
    resolver.root_items(&root.items, &mut out, 0);
    out
}

struct Resolver<'s, 'v> {
    schema: &'s Schema,
    document: &'s query::Document,
    variables: &'v Map<String, Json>,
}

/// What an introspection value is about.
#[derive(Clone)]
enum Node<'s> {
    Schema,
    Type(IntrospectedType<'s>),
    Field(&'s FieldDef),
    InputValue(&'s InputValueDef),
    EnumValue(&'s EnumValueDef),
    Directive(&'s DirectiveDef),
}

#[derive(Clone)]
enum IntrospectedType<'s> {
    Named(&'s TypeDef),
    List(Box<IntrospectedType<'s>>),
    NonNull(Box<IntrospectedType<'s>>),
}

type Fields = Vec<(Cow<'static, str>, Value<'static>)>;

fn string(s: &str) -> Value<'static> {
    Value::String(Cow::Owned(s.to_string()))
}

fn optional_string(s: Option<&str>) -> Value<'static> {
    s.map(string).unwrap_or(Value::Null)
}

fn insert(out: &mut Fields, key: &str, value: Value<'static>) {
    match out.iter_mut().find(|(k, _)| k == key) {
        Some((_, existing)) => deep_merge(existing, value),
        None => out.push((Cow::Owned(key.to_string()), value)),
    }
}

impl<'s> Resolver<'s, '_> {
    fn fragment(&self, name: &str) -> Option<&'s query::FragmentDefinition> {
        self.document.definitions.iter().find_map(|d| match d {
            Definition::Fragment(f) if f.name == name => Some(f),
            _ => None,
        })
    }

    fn root_items(&self, items: &'s [query::Selection], out: &mut Fields, depth: usize) {
        if depth > 64 {
            return;
        }
        for item in items {
            match item {
                Selection::Field(field) => {
                    let key = field.alias.as_deref().unwrap_or(&field.name);
                    match field.name.as_str() {
                        "__schema" => {
                            let value = self.object(&Node::Schema, &field.selection_set.items);
                            insert(out, key, value);
                        }
                        "__type" => {
                            let name = self
                                .argument(field, "name")
                                .and_then(|v| v.as_str().map(str::to_string));
                            let value = match name.as_deref().and_then(|n| self.schema.get_type(n))
                            {
                                Some(t) => self.object(
                                    &Node::Type(IntrospectedType::Named(t)),
                                    &field.selection_set.items,
                                ),
                                None => Value::Null,
                            };
                            insert(out, key, value);
                        }
                        _ => {}
                    }
                }
                Selection::InlineFragment(inline) => {
                    self.root_items(&inline.selection_set.items, out, depth + 1)
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(f) = self.fragment(&spread.fragment_name) {
                        self.root_items(&f.selection_set.items, out, depth + 1);
                    }
                }
            }
        }
    }

    fn argument(&self, field: &query::Field, name: &str) -> Option<Json> {
        let (_, value) = field.arguments.iter().find(|(n, _)| n == name)?;
        Some(match value {
            AstValue::Variable(v) => self.variables.get(v).cloned().unwrap_or(Json::Null),
            other => super::ast::ast_to_json(other),
        })
    }

    fn include_deprecated(&self, field: &query::Field) -> bool {
        self.argument(field, "includeDeprecated")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    fn object(&self, node: &Node<'s>, items: &'s [query::Selection]) -> Value<'static> {
        let mut out = Vec::new();
        self.fields(node, items, &mut out, 0);
        Value::Object(out)
    }

    fn fields(
        &self,
        node: &Node<'s>,
        items: &'s [query::Selection],
        out: &mut Fields,
        depth: usize,
    ) {
        if depth > 64 {
            return;
        }
        for item in items {
            match item {
                Selection::Field(field) => {
                    let key = field.alias.as_deref().unwrap_or(&field.name);
                    let value = self.field(node, field);
                    insert(out, key, value);
                }
                // Type conditions are checked when the response is shaped; resolve everything.
                Selection::InlineFragment(inline) => {
                    self.fields(node, &inline.selection_set.items, out, depth + 1)
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(f) = self.fragment(&spread.fragment_name) {
                        self.fields(node, &f.selection_set.items, out, depth + 1);
                    }
                }
            }
        }
    }

    fn list(
        &self,
        nodes: impl Iterator<Item = Node<'s>>,
        items: &'s [query::Selection],
    ) -> Value<'static> {
        Value::Array(nodes.map(|n| self.object(&n, items)).collect())
    }

    fn named(&self, name: &str, items: &'s [query::Selection]) -> Value<'static> {
        match self.schema.get_type(name) {
            Some(t) => self.object(&Node::Type(IntrospectedType::Named(t)), items),
            None => Value::Null,
        }
    }

    fn type_ref(&self, ty: &TypeRef) -> Option<IntrospectedType<'s>> {
        Some(match ty {
            TypeRef::Named(name) => IntrospectedType::Named(self.schema.get_type(name)?),
            TypeRef::List(inner) => IntrospectedType::List(Box::new(self.type_ref(inner)?)),
            TypeRef::NonNull(inner) => IntrospectedType::NonNull(Box::new(self.type_ref(inner)?)),
        })
    }

    fn type_value(&self, ty: &TypeRef, items: &'s [query::Selection]) -> Value<'static> {
        match self.type_ref(ty) {
            Some(t) => self.object(&Node::Type(t), items),
            None => Value::Null,
        }
    }

    fn field(&self, node: &Node<'s>, field: &'s query::Field) -> Value<'static> {
        let items = &field.selection_set.items[..];
        let name = field.name.as_str();
        if name == "__typename" {
            // Written by `respond` from the static type; any value here is ignored.
            return Value::Null;
        }
        match node {
            Node::Schema => match name {
                "description" => Value::Null,
                "types" => self.list(
                    self.schema
                        .types
                        .iter()
                        .map(|t| Node::Type(IntrospectedType::Named(t))),
                    items,
                ),
                "queryType" => self.named(&self.schema.query_type, items),
                "mutationType" => match &self.schema.mutation_type {
                    Some(t) => self.named(t, items),
                    None => Value::Null,
                },
                "subscriptionType" => match &self.schema.subscription_type {
                    Some(t) => self.named(t, items),
                    None => Value::Null,
                },
                "directives" => {
                    self.list(self.schema.directives.iter().map(Node::Directive), items)
                }
                _ => Value::Null,
            },
            Node::Type(t) => self.type_field(t, name, field, items),
            Node::Field(f) => match name {
                "name" => string(&f.name),
                "description" => optional_string(f.description.as_deref()),
                "args" => {
                    let all = self.include_deprecated(field);
                    self.list(
                        f.args
                            .iter()
                            .filter(|a| all || a.deprecation.is_none())
                            .map(Node::InputValue),
                        items,
                    )
                }
                "type" => self.type_value(&f.ty, items),
                "isDeprecated" => Value::Bool(f.deprecation.is_some()),
                "deprecationReason" => optional_string(f.deprecation.as_deref()),
                _ => Value::Null,
            },
            Node::InputValue(v) => match name {
                "name" => string(&v.name),
                "description" => optional_string(v.description.as_deref()),
                "type" => self.type_value(&v.ty, items),
                "defaultValue" => match &v.default_value {
                    Some(default) => string(&default.to_string()),
                    None => Value::Null,
                },
                "isDeprecated" => Value::Bool(v.deprecation.is_some()),
                "deprecationReason" => optional_string(v.deprecation.as_deref()),
                _ => Value::Null,
            },
            Node::EnumValue(v) => match name {
                "name" => string(&v.name),
                "description" => optional_string(v.description.as_deref()),
                "isDeprecated" => Value::Bool(v.deprecation.is_some()),
                "deprecationReason" => optional_string(v.deprecation.as_deref()),
                _ => Value::Null,
            },
            Node::Directive(d) => match name {
                "name" => string(&d.name),
                "description" => optional_string(d.description.as_deref()),
                "locations" => Value::Array(d.locations.iter().map(|l| string(l)).collect()),
                "args" => {
                    let all = self.include_deprecated(field);
                    self.list(
                        d.args
                            .iter()
                            .filter(|a| all || a.deprecation.is_none())
                            .map(Node::InputValue),
                        items,
                    )
                }
                "isRepeatable" => Value::Bool(d.repeatable),
                _ => Value::Null,
            },
        }
    }

    fn type_field(
        &self,
        t: &IntrospectedType<'s>,
        name: &str,
        field: &'s query::Field,
        items: &'s [query::Selection],
    ) -> Value<'static> {
        let named = match t {
            IntrospectedType::List(inner) | IntrospectedType::NonNull(inner) => {
                return match name {
                    "kind" => string(if matches!(t, IntrospectedType::List(_)) {
                        "LIST"
                    } else {
                        "NON_NULL"
                    }),
                    "ofType" => self.object(&Node::Type((**inner).clone()), items),
                    // Every other field of a wrapper type is null (or an empty-free null list).
                    _ => Value::Null,
                };
            }
            IntrospectedType::Named(named) => *named,
        };
        let all = self.include_deprecated(field);
        let has_fields = matches!(named.kind, TypeKind::Object | TypeKind::Interface);
        match name {
            "kind" => string(named.kind.introspection_name()),
            "name" => string(&named.name),
            "description" => optional_string(named.description.as_deref()),
            "specifiedByURL" => optional_string(named.specified_by_url.as_deref()),
            "isOneOf" if named.kind == TypeKind::InputObject => Value::Bool(named.one_of),
            "fields" if has_fields => self.list(
                named
                    .fields
                    .iter()
                    // Meta-fields (`__schema`, `__type` on the query type) are not listed.
                    .filter(|f| !f.name.starts_with("__") && (all || f.deprecation.is_none()))
                    .map(Node::Field),
                items,
            ),
            "interfaces" if has_fields => Value::Array(
                named
                    .interfaces
                    .iter()
                    .filter_map(|i| self.schema.get_type(i))
                    .map(|i| self.object(&Node::Type(IntrospectedType::Named(i)), items))
                    .collect(),
            ),
            "possibleTypes" if named.is_abstract() => Value::Array(
                named
                    .possible_types
                    .iter()
                    .filter_map(|p| self.schema.get_type(p))
                    .map(|p| self.object(&Node::Type(IntrospectedType::Named(p)), items))
                    .collect(),
            ),
            "enumValues" if named.kind == TypeKind::Enum => self.list(
                named
                    .enum_values
                    .iter()
                    .filter(|v| all || v.deprecation.is_none())
                    .map(Node::EnumValue),
                items,
            ),
            "inputFields" if named.kind == TypeKind::InputObject => self.list(
                named
                    .input_fields
                    .iter()
                    .filter(|f| all || f.deprecation.is_none())
                    .map(Node::InputValue),
                items,
            ),
            _ => Value::Null,
        }
    }
}
