//! The response shape: what the client asked for, compiled from its operation, so that `respond`
//! can write the response from the merged subgraph data without interpreting the query again.
//!
//! Fields are collected per the GraphQL spec's CollectFields for every object type a value can
//! have at run time: fragments are resolved against that type, fields with the same response key
//! are merged in first-seen order, and `@skip`/`@include` are decided for the given variable
//! values (so a shape is compiled per combination of condition variables, see `ShapeCache`).

use std::sync::{Arc, OnceLock};

use ahash::AHashMap;
use graphql_tools::parser::query::{Definition, Selection, TypeCondition, Value as AstValue};
use graphql_tools::static_graphql::query;
use serde_json::{Map, Value as Json};

use super::validate::{operation_at, operation_parts};
use crate::graphql::schema::{Schema, TypeKind, TypeRef};

/// The selection of one object, fields in response order.
#[derive(Debug, Default)]
pub(crate) struct ObjectShape {
    pub(crate) fields: Vec<FieldShape>,
}

#[derive(Debug)]
pub(crate) struct FieldShape {
    pub(crate) response_key: Box<str>,
    pub(crate) field_name: Box<str>,
    pub(crate) kind: FieldKind,
}

#[derive(Debug)]
pub(crate) enum FieldKind {
    /// `__typename`: the object's runtime type name, written by the router.
    Typename,
    Output(Output),
}

/// A field's output type with the client's sub-selection compiled in.
#[derive(Debug)]
pub(crate) enum Output {
    NonNull(Box<Output>),
    List(Box<Output>),
    /// Built-in and custom scalars: the subgraph's value is copied as it is.
    Scalar,
    /// Enum values outside the API schema (e.g. `@inaccessible` ones) are replaced by an error.
    Enum(Arc<[String]>),
    Object {
        type_name: Arc<str>,
        shape: Arc<ObjectShape>,
    },
    Abstract(Arc<AbstractShape>),
}

/// An interface or union position: the shape depends on the value's `__typename`.
#[derive(Debug)]
pub(crate) struct AbstractShape {
    pub(crate) type_name: Box<str>,
    pub(crate) by_type: Vec<(Box<str>, Arc<ObjectShape>)>,
    /// Used when `__typename` is missing or unknown: only what applies to every possible type.
    pub(crate) fallback: Arc<ObjectShape>,
    /// Members the API schema hides (`@inaccessible`): their values are answered null.
    pub(crate) hidden: Box<[Box<str>]>,
}

impl AbstractShape {
    /// Whether a value whose `__typename` is `type_name` can be represented here: not when it
    /// is an `@inaccessible` member of the interface or union.
    pub(crate) fn represents(&self, type_name: &str) -> bool {
        !self.hidden.iter().any(|name| name.as_ref() == type_name)
    }

    pub(crate) fn shape_for(&self, type_name: Option<&str>) -> &Arc<ObjectShape> {
        type_name
            .and_then(|t| self.by_type.iter().find(|(name, _)| name.as_ref() == t))
            .map(|(_, shape)| shape)
            .unwrap_or(&self.fallback)
    }
}

/// The compiled shape of a whole response.
#[derive(Debug)]
pub(crate) struct ResponseShape {
    pub(crate) root_type: Arc<str>,
    pub(crate) root: Arc<ObjectShape>,
}

/// Shapes of one operation, one per combination of the boolean variables its `@skip`/`@include`
/// use, compiled on first use. Operations with many condition variables compile per request.
pub(crate) struct ShapeCache {
    condition_variables: Vec<String>,
    slots: Vec<OnceLock<Arc<ResponseShape>>>,
}

/// Above this many condition variables the 2^n cache slots are not worth keeping.
const MAX_CACHED_CONDITION_VARIABLES: usize = 6;

impl ShapeCache {
    pub(crate) fn new(document: &query::Document, operation_index: usize) -> ShapeCache {
        let condition_variables = condition_variables(document, operation_index);
        let slots = if condition_variables.len() <= MAX_CACHED_CONDITION_VARIABLES {
            (0..1usize << condition_variables.len())
                .map(|_| OnceLock::new())
                .collect()
        } else {
            Vec::new()
        };
        ShapeCache {
            condition_variables,
            slots,
        }
    }

    /// The shape for these (coerced) variable values.
    pub(crate) fn get(
        &self,
        schema: &Schema,
        document: &query::Document,
        operation_index: usize,
        variables: &Map<String, Json>,
    ) -> Arc<ResponseShape> {
        let mut mask = 0usize;
        for (i, name) in self.condition_variables.iter().enumerate() {
            if variables.get(name).and_then(Json::as_bool).unwrap_or(false) {
                mask |= 1 << i;
            }
        }
        let compile = || Arc::new(compile(schema, document, operation_index, variables));
        match self.slots.get(mask) {
            Some(slot) => slot.get_or_init(compile).clone(),
            None => compile(),
        }
    }
}

/// Variables used as `if:` of `@skip`/`@include` anywhere in the document.
fn condition_variables(document: &query::Document, operation_index: usize) -> Vec<String> {
    fn visit_directives(directives: &[query::Directive], out: &mut Vec<String>) {
        for d in directives
            .iter()
            .filter(|d| d.name == "skip" || d.name == "include")
        {
            for (_, value) in &d.arguments {
                if let AstValue::Variable(v) = value
                    && !out.contains(v)
                {
                    out.push(v.clone());
                }
            }
        }
    }
    fn visit(items: &[query::Selection], out: &mut Vec<String>) {
        for item in items {
            match item {
                Selection::Field(f) => {
                    visit_directives(&f.directives, out);
                    visit(&f.selection_set.items, out);
                }
                Selection::InlineFragment(i) => {
                    visit_directives(&i.directives, out);
                    visit(&i.selection_set.items, out);
                }
                Selection::FragmentSpread(s) => visit_directives(&s.directives, out),
            }
        }
    }
    let mut out = Vec::new();
    for (i, definition) in document.definitions.iter().enumerate() {
        match definition {
            Definition::Fragment(f) => visit(&f.selection_set.items, &mut out),
            Definition::Operation(_) if i == operation_index => visit(
                &operation_parts(operation_at(document, i)).1.items,
                &mut out,
            ),
            Definition::Operation(_) => {}
        }
    }
    out
}

/// Compiles the response shape of the operation at `operation_index`.
pub(crate) fn compile(
    schema: &Schema,
    document: &query::Document,
    operation_index: usize,
    variables: &Map<String, Json>,
) -> ResponseShape {
    let operation = operation_at(document, operation_index);
    let (kind, selection_set, _, _) = operation_parts(operation);
    let root_type = schema
        .root_type(kind)
        .unwrap_or(&schema.query_type)
        .to_string();
    let fragments = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Fragment(f) => Some((f.name.as_str(), f)),
            Definition::Operation(_) => None,
        })
        .collect();
    let compiler = Compiler {
        schema,
        fragments,
        variables,
    };
    let root = compiler.object(&root_type, &[selection_set]);
    ResponseShape {
        root_type: root_type.into(),
        root,
    }
}

struct Compiler<'c> {
    schema: &'c Schema,
    fragments: AHashMap<&'c str, &'c query::FragmentDefinition>,
    variables: &'c Map<String, Json>,
}

/// Identity of a collected field list: each field node's address and its declared type.
type Signature = Vec<(usize, String)>;

/// Fields grouped by response key, in first-seen order.
type Grouped<'c> = Vec<(&'c str, Vec<&'c query::Field>)>;

impl<'c> Compiler<'c> {
    fn included(&self, directives: &[query::Directive]) -> bool {
        let condition = |d: &query::Directive| {
            d.arguments
                .iter()
                .find(|(n, _)| n == "if")
                .map(|(_, v)| match v {
                    AstValue::Boolean(b) => *b,
                    AstValue::Variable(name) => self
                        .variables
                        .get(name)
                        .and_then(Json::as_bool)
                        .unwrap_or(false),
                    _ => false,
                })
        };
        for d in directives {
            match d.name.as_str() {
                "skip" if condition(d) == Some(true) => return false,
                "include" if condition(d) == Some(false) => return false,
                _ => {}
            }
        }
        true
    }

    /// Does a fragment with this type condition apply to a value of `runtime_type`? For an
    /// abstract `runtime_type` (the fallback shape), only if it applies to all its possible types.
    fn applies(&self, runtime_type: &str, condition: &str) -> bool {
        if runtime_type == condition || self.schema.is_possible_type(condition, runtime_type) {
            return true;
        }
        match self.schema.get_type(runtime_type) {
            Some(t) if t.is_abstract() => {
                !t.possible_types.is_empty()
                    && t.possible_types
                        .iter()
                        .all(|p| self.schema.satisfies(p, condition))
            }
            _ => false,
        }
    }

    fn collect(&self, runtime_type: &str, sets: &[&'c query::SelectionSet]) -> Grouped<'c> {
        let mut grouped: Grouped<'c> = Vec::new();
        let mut visited: Vec<&str> = Vec::new();
        for set in sets {
            self.collect_into(runtime_type, &set.items, &mut grouped, &mut visited);
        }
        grouped
    }

    fn collect_into(
        &self,
        runtime_type: &str,
        items: &'c [query::Selection],
        grouped: &mut Grouped<'c>,
        visited: &mut Vec<&'c str>,
    ) {
        for item in items {
            match item {
                Selection::Field(field) => {
                    if !self.included(&field.directives) {
                        continue;
                    }
                    let key = field.alias.as_deref().unwrap_or(&field.name);
                    match grouped.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, fields)) => fields.push(field),
                        None => grouped.push((key, vec![field])),
                    }
                }
                Selection::InlineFragment(inline) => {
                    if !self.included(&inline.directives) {
                        continue;
                    }
                    if let Some(TypeCondition::On(on)) = &inline.type_condition
                        && !self.applies(runtime_type, on)
                    {
                        continue;
                    }
                    self.collect_into(runtime_type, &inline.selection_set.items, grouped, visited);
                }
                Selection::FragmentSpread(spread) => {
                    if !self.included(&spread.directives)
                        || visited.contains(&spread.fragment_name.as_str())
                    {
                        continue;
                    }
                    visited.push(&spread.fragment_name);
                    let Some(fragment) = self.fragments.get(spread.fragment_name.as_str()) else {
                        continue;
                    };
                    let TypeCondition::On(on) = &fragment.type_condition;
                    if !self.applies(runtime_type, on) {
                        continue;
                    }
                    self.collect_into(
                        runtime_type,
                        &fragment.selection_set.items,
                        grouped,
                        visited,
                    );
                }
            }
        }
    }

    fn object(&self, type_name: &str, sets: &[&'c query::SelectionSet]) -> Arc<ObjectShape> {
        let grouped = self.collect(type_name, sets);
        self.object_from_grouped(type_name, grouped)
    }

    fn object_from_grouped(&self, type_name: &str, grouped: Grouped<'c>) -> Arc<ObjectShape> {
        let type_def = self.schema.get_type(type_name);
        let mut fields = Vec::with_capacity(grouped.len());
        for (key, nodes) in grouped {
            let name = nodes[0].name.as_str();
            let kind = if name == "__typename" {
                FieldKind::Typename
            } else {
                // Validation guarantees the field exists; for the fallback shape of a union it is
                // defined on the member types (through a fragment that applies to all of them).
                let definition = type_def.and_then(|t| t.field(name)).or_else(|| {
                    type_def.filter(|t| t.is_abstract()).and_then(|t| {
                        t.possible_types
                            .iter()
                            .find_map(|p| self.schema.get_type(p).and_then(|p| p.field(name)))
                    })
                });
                let Some(definition) = definition else {
                    continue;
                };
                let sub_sets: Vec<&query::SelectionSet> =
                    nodes.iter().map(|f| &f.selection_set).collect();
                FieldKind::Output(self.output(&definition.ty, &sub_sets))
            };
            fields.push(FieldShape {
                response_key: key.into(),
                field_name: name.into(),
                kind,
            });
        }
        Arc::new(ObjectShape { fields })
    }

    fn output(&self, ty: &TypeRef, sets: &[&'c query::SelectionSet]) -> Output {
        match ty {
            TypeRef::NonNull(inner) => Output::NonNull(Box::new(self.output(inner, sets))),
            TypeRef::List(inner) => Output::List(Box::new(self.output(inner, sets))),
            TypeRef::Named(name) => match self.schema.get_type(name) {
                Some(t) if t.kind == TypeKind::Enum => Output::Enum(
                    t.enum_values
                        .iter()
                        .map(|v| v.name.clone())
                        .collect::<Vec<_>>()
                        .into(),
                ),
                Some(t) if t.kind == TypeKind::Object => Output::Object {
                    type_name: name.as_str().into(),
                    shape: self.object(name, sets),
                },
                Some(t) if t.is_abstract() => Output::Abstract(self.abstract_shape(name, sets)),
                _ => Output::Scalar,
            },
        }
    }

    fn abstract_shape(
        &self,
        type_name: &str,
        sets: &[&'c query::SelectionSet],
    ) -> Arc<AbstractShape> {
        let possible = self.schema.possible_types(type_name);
        // Types whose collected fields and field types are identical share one compiled shape.
        let mut compiled: Vec<(Signature, Arc<ObjectShape>)> = Vec::new();
        let mut by_type = Vec::with_capacity(possible.len());
        for object_type in possible {
            let grouped = self.collect(object_type, sets);
            let type_def = self.schema.get_type(object_type);
            let signature: Signature = grouped
                .iter()
                .flat_map(|(_, nodes)| {
                    nodes.iter().map(move |f| {
                        let ty = type_def
                            .and_then(|t| t.field(&f.name))
                            .map(|d| d.ty.to_string())
                            .unwrap_or_default();
                        (std::ptr::from_ref::<query::Field>(f) as usize, ty)
                    })
                })
                .collect();
            let shape = match compiled.iter().find(|(s, _)| *s == signature) {
                Some((_, shape)) => shape.clone(),
                None => {
                    let shape = self.object_from_grouped(object_type, grouped);
                    compiled.push((signature, shape.clone()));
                    shape
                }
            };
            by_type.push((Box::<str>::from(object_type), shape));
        }
        let fallback = self.object(type_name, sets);
        Arc::new(AbstractShape {
            type_name: type_name.into(),
            by_type,
            fallback,
            hidden: self
                .schema
                .hidden_members(type_name)
                .iter()
                .map(|name| Box::<str>::from(name.as_str()))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::parse::parse;

    fn schema() -> Schema {
        let doc = graphql_tools::parser::parse_schema::<String>(
            r#"
            type Query { node(id: ID!): Node, search: [Result!], me: User! }
            interface Node { id: ID! }
            type User implements Node { id: ID!, name: String!, friends: [User!]!, color: Color }
            type Post implements Node { id: ID!, title: String }
            union Result = User | Post
            enum Color { RED GREEN }
            "#,
        )
        .unwrap()
        .into_static();
        Schema::new(Arc::new(doc))
    }

    fn keys(shape: &ObjectShape) -> Vec<&str> {
        shape
            .fields
            .iter()
            .map(|f| f.response_key.as_ref())
            .collect()
    }

    fn compile_query(query: &str, variables: Json) -> ResponseShape {
        let doc = parse(query, 10_000).unwrap();
        let index = doc
            .definitions
            .iter()
            .position(|d| matches!(d, Definition::Operation(_)))
            .unwrap();
        compile(&schema(), &doc, index, variables.as_object().unwrap())
    }

    #[test]
    fn merges_fields_by_response_key_in_first_seen_order() {
        let shape = compile_query(
            "{ me { name ...F id name a: id } } fragment F on User { id name }",
            serde_json::json!({}),
        );
        let Output::NonNull(inner) = field_output(&shape.root, "me") else {
            panic!()
        };
        let Output::Object { shape: me, .. } = inner.as_ref() else {
            panic!()
        };
        assert_eq!(keys(me), vec!["name", "id", "a"]);
    }

    fn field_output<'s>(shape: &'s ObjectShape, key: &str) -> &'s Output {
        match &shape
            .fields
            .iter()
            .find(|f| f.response_key.as_ref() == key)
            .unwrap()
            .kind
        {
            FieldKind::Output(o) => o,
            FieldKind::Typename => panic!("typename"),
        }
    }

    #[test]
    fn resolves_fragments_per_possible_type() {
        let shape = compile_query(
            "{ search { __typename ... on Node { id } ... on User { name } ... on Post { title id } } }",
            serde_json::json!({}),
        );
        let Output::List(item) = field_output(&shape.root, "search") else {
            panic!()
        };
        let Output::NonNull(item) = item.as_ref() else {
            panic!()
        };
        let Output::Abstract(abstract_shape) = item.as_ref() else {
            panic!()
        };
        assert_eq!(
            keys(abstract_shape.shape_for(Some("User"))),
            vec!["__typename", "id", "name"]
        );
        assert_eq!(
            keys(abstract_shape.shape_for(Some("Post"))),
            vec!["__typename", "id", "title"]
        );
        // Unknown type: only what applies to every member (`... on Node` does, as both implement it).
        assert_eq!(
            keys(abstract_shape.shape_for(None)),
            vec!["__typename", "id"]
        );
    }

    #[test]
    fn applies_skip_and_include_for_the_given_variables() {
        let query = "query($a: Boolean!, $b: Boolean!) { me { id @skip(if: $a) name @include(if: $b) ... @include(if: false) { friends { id } } } }";
        let with = compile_query(query, serde_json::json!({"a": false, "b": true}));
        let without = compile_query(query, serde_json::json!({"a": true, "b": false}));
        let me = |s: &ResponseShape| -> Vec<String> {
            let Output::NonNull(inner) = field_output(&s.root, "me") else {
                panic!()
            };
            let Output::Object { shape, .. } = inner.as_ref() else {
                panic!()
            };
            keys(shape).into_iter().map(String::from).collect()
        };
        assert_eq!(me(&with), vec!["id", "name"]);
        assert!(me(&without).is_empty());
    }

    #[test]
    fn shape_cache_compiles_once_per_condition_combination() {
        let doc = parse("query($a: Boolean!) { me { id @include(if: $a) } }", 1000).unwrap();
        let cache = ShapeCache::new(&doc, 0);
        assert_eq!(cache.condition_variables, vec!["a".to_string()]);
        let s = schema();
        let on = serde_json::json!({"a": true});
        let off = serde_json::json!({"a": false});
        let first = cache.get(&s, &doc, 0, on.as_object().unwrap());
        let again = cache.get(&s, &doc, 0, on.as_object().unwrap());
        let other = cache.get(&s, &doc, 0, off.as_object().unwrap());
        assert!(Arc::ptr_eq(&first, &again));
        assert!(!Arc::ptr_eq(&first, &other));
    }
}
