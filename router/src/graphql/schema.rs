//! An index over the API schema (what clients see), built once per supergraph.
//!
//! Response shaping, variable coercion, rewrites and introspection all ask the same questions:
//! what does this field return, which object types can this abstract type be, what are the
//! values of this enum. This answers them from hash maps instead of walking the SDL document.

use std::sync::Arc;

use ahash::{AHashMap, AHashSet};
use graphql_tools::parser::schema::{Definition, TypeDefinition};
use graphql_tools::static_graphql::schema::{self as ast};

/// A type reference: `Named`, `[T]` or `T!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TypeRef {
    Named(String),
    List(Box<TypeRef>),
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    pub(crate) fn from_ast(ty: &ast::Type) -> TypeRef {
        match ty {
            ast::Type::NamedType(name) => TypeRef::Named(name.clone()),
            ast::Type::ListType(inner) => TypeRef::List(Box::new(TypeRef::from_ast(inner))),
            ast::Type::NonNullType(inner) => TypeRef::NonNull(Box::new(TypeRef::from_ast(inner))),
        }
    }

    /// The named type at the bottom of the wrappers.
    pub(crate) fn named(&self) -> &str {
        match self {
            TypeRef::Named(name) => name,
            TypeRef::List(inner) | TypeRef::NonNull(inner) => inner.named(),
        }
    }

    pub(crate) fn is_non_null(&self) -> bool {
        matches!(self, TypeRef::NonNull(_))
    }
}

impl std::fmt::Display for TypeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TypeRef::Named(name) => f.write_str(name),
            TypeRef::List(inner) => write!(f, "[{inner}]"),
            TypeRef::NonNull(inner) => write!(f, "{inner}!"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeKind {
    Scalar,
    Object,
    Interface,
    Union,
    Enum,
    InputObject,
}

impl TypeKind {
    /// The `__TypeKind` enum value.
    pub(crate) fn introspection_name(self) -> &'static str {
        match self {
            TypeKind::Scalar => "SCALAR",
            TypeKind::Object => "OBJECT",
            TypeKind::Interface => "INTERFACE",
            TypeKind::Union => "UNION",
            TypeKind::Enum => "ENUM",
            TypeKind::InputObject => "INPUT_OBJECT",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct InputValueDef {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) ty: TypeRef,
    pub(crate) default_value: Option<ast::Value>,
    pub(crate) deprecation: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct FieldDef {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) args: Vec<InputValueDef>,
    pub(crate) ty: TypeRef,
    pub(crate) deprecation: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct EnumValueDef {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) deprecation: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct TypeDef {
    pub(crate) name: String,
    pub(crate) kind: TypeKind,
    pub(crate) description: Option<String>,
    /// Output fields (objects, interfaces), in SDL order.
    pub(crate) fields: Vec<FieldDef>,
    field_index: AHashMap<String, usize>,
    /// Interfaces an object or interface implements.
    pub(crate) interfaces: Vec<String>,
    /// Object types an interface or union can be, sorted.
    pub(crate) possible_types: Vec<String>,
    pub(crate) enum_values: Vec<EnumValueDef>,
    pub(crate) input_fields: Vec<InputValueDef>,
    pub(crate) specified_by_url: Option<String>,
    pub(crate) one_of: bool,
}

impl TypeDef {
    pub(crate) fn field(&self, name: &str) -> Option<&FieldDef> {
        self.field_index.get(name).map(|&i| &self.fields[i])
    }

    pub(crate) fn is_abstract(&self) -> bool {
        matches!(self.kind, TypeKind::Interface | TypeKind::Union)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct DirectiveDef {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) locations: Vec<String>,
    pub(crate) args: Vec<InputValueDef>,
    pub(crate) repeatable: bool,
}

/// The API schema, indexed.
#[derive(Debug)]
pub(crate) struct Schema {
    pub(crate) query_type: String,
    pub(crate) mutation_type: Option<String>,
    pub(crate) subscription_type: Option<String>,
    /// Types in SDL order.
    pub(crate) types: Vec<TypeDef>,
    type_index: AHashMap<String, usize>,
    pub(crate) directives: Vec<DirectiveDef>,
    /// The document it was built from.
    pub(crate) document: Arc<ast::Document>,
    /// Interfaces and unions with a member the API schema hides (an `@inaccessible` object of
    /// the supergraph): a value of theirs may be unrepresentable, so its `__typename` is always
    /// fetched (see `operation::normalize`).
    hiding: AHashMap<String, Vec<String>>,
}

fn directive_string_arg(
    directives: &[ast::Directive],
    directive: &str,
    arg: &str,
) -> Option<Option<String>> {
    let d = directives.iter().find(|d| d.name == directive)?;
    Some(d.arguments.iter().find_map(|(name, value)| match value {
        ast::Value::String(s) if name == arg => Some(s.clone()),
        _ => None,
    }))
}

fn deprecation(directives: &[ast::Directive]) -> Option<String> {
    directive_string_arg(directives, "deprecated", "reason")
        .map(|reason| reason.unwrap_or_else(|| "No longer supported".to_string()))
}

fn input_value(value: &ast::InputValue) -> InputValueDef {
    InputValueDef {
        name: value.name.clone(),
        description: value.description.clone(),
        ty: TypeRef::from_ast(&value.value_type),
        default_value: value.default_value.clone(),
        deprecation: deprecation(&value.directives),
    }
}

fn field_def(field: &ast::Field) -> FieldDef {
    FieldDef {
        name: field.name.clone(),
        description: field.description.clone(),
        args: field.arguments.iter().map(input_value).collect(),
        ty: TypeRef::from_ast(&field.field_type),
        deprecation: deprecation(&field.directives),
    }
}

fn new_type(name: &str, kind: TypeKind, description: &Option<String>) -> TypeDef {
    TypeDef {
        name: name.to_string(),
        kind,
        description: description.clone(),
        fields: Vec::new(),
        field_index: AHashMap::new(),
        interfaces: Vec::new(),
        possible_types: Vec::new(),
        enum_values: Vec::new(),
        input_fields: Vec::new(),
        specified_by_url: None,
        one_of: false,
    }
}

impl Schema {
    pub(crate) fn new(document: Arc<ast::Document>) -> Schema {
        let mut types = Vec::new();
        let mut directives = Vec::new();
        let mut query_type = None;
        let mut mutation_type = None;
        let mut subscription_type = None;

        for definition in &document.definitions {
            match definition {
                Definition::SchemaDefinition(s) => {
                    query_type = s.query.clone();
                    mutation_type = s.mutation.clone();
                    subscription_type = s.subscription.clone();
                }
                Definition::TypeDefinition(t) => types.push(type_def(t)),
                Definition::DirectiveDefinition(d) => directives.push(DirectiveDef {
                    name: d.name.clone(),
                    description: d.description.clone(),
                    locations: d.locations.iter().map(|l| l.as_str().to_string()).collect(),
                    args: d.arguments.iter().map(input_value).collect(),
                    repeatable: d.repeatable,
                }),
                Definition::TypeExtension(_) => {}
            }
        }

        let mut type_index = AHashMap::with_capacity(types.len());
        for (i, t) in types.iter().enumerate() {
            type_index.insert(t.name.clone(), i);
        }
        let has_type = |name: &str| type_index.contains_key(name);
        let query_type = query_type.unwrap_or_else(|| "Query".to_string());
        let mutation_type =
            mutation_type.or_else(|| has_type("Mutation").then(|| "Mutation".to_string()));
        let subscription_type = subscription_type
            .or_else(|| has_type("Subscription").then(|| "Subscription".to_string()));

        // Possible types: union members, and objects implementing an interface.
        let mut possible: AHashSet<(String, String)> = AHashSet::new();
        for t in &types {
            match t.kind {
                TypeKind::Object => {
                    for interface in &t.interfaces {
                        possible.insert((interface.clone(), t.name.clone()));
                    }
                }
                TypeKind::Union => {
                    for member in &t.possible_types {
                        possible.insert((t.name.clone(), member.clone()));
                    }
                }
                _ => {}
            }
        }
        for t in &mut types {
            if t.kind == TypeKind::Interface {
                let name = t.name.clone();
                let mut members: Vec<String> = possible
                    .iter()
                    .filter(|(a, _)| *a == name)
                    .map(|(_, o)| o.clone())
                    .collect();
                members.sort();
                t.possible_types = members;
            } else if t.kind == TypeKind::Union {
                // A member the API schema does not have (an `@inaccessible` type the union
                // still lists) is not a possible type: objects of it cannot be represented.
                t.possible_types
                    .retain(|member| type_index.contains_key(member.as_str()));
                t.possible_types.sort();
            }
        }

        Schema {
            query_type,
            mutation_type,
            subscription_type,
            types,
            type_index,
            directives,
            document,
            hiding: AHashMap::new(),
        }
    }

    /// Records which interfaces and unions of the API schema have members `supergraph` declares
    /// but the API schema does not.
    pub(crate) fn with_hidden_members_from(mut self, supergraph: &ast::Document) -> Schema {
        for definition in &supergraph.definitions {
            let Definition::TypeDefinition(ty) = definition else {
                continue;
            };
            match ty {
                TypeDefinition::Object(object) if self.get_type(&object.name).is_none() => {
                    for interface in &object.implements_interfaces {
                        if self.get_type(interface).is_some() {
                            self.hiding
                                .entry(interface.clone())
                                .or_default()
                                .push(object.name.clone());
                        }
                    }
                }
                TypeDefinition::Union(union) if self.get_type(&union.name).is_some() => {
                    let hidden: Vec<String> = union
                        .types
                        .iter()
                        .filter(|m| self.get_type(m).is_none())
                        .cloned()
                        .collect();
                    if !hidden.is_empty() {
                        self.hiding
                            .entry(union.name.clone())
                            .or_default()
                            .extend(hidden);
                    }
                }
                _ => {}
            }
        }
        self
    }

    /// The members of the abstract `type_name` that the API schema hides: values of these types
    /// cannot be represented.
    pub(crate) fn hidden_members(&self, type_name: &str) -> &[String] {
        self.hiding.get(type_name).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn get_type(&self, name: &str) -> Option<&TypeDef> {
        self.type_index.get(name).map(|&i| &self.types[i])
    }

    /// Can an object of type `object_type` appear where `type_condition` is expected?
    /// True when they are equal, or `object_type` is a possible type of the abstract condition.
    pub(crate) fn satisfies(&self, object_type: &str, type_condition: &str) -> bool {
        object_type == type_condition || self.is_possible_type(type_condition, object_type)
    }

    /// Is `object_type` a member of the abstract type (binary search over its sorted members)?
    pub(crate) fn is_possible_type(&self, abstract_type: &str, object_type: &str) -> bool {
        self.get_type(abstract_type).is_some_and(|t| {
            t.possible_types
                .binary_search_by(|p| p.as_str().cmp(object_type))
                .is_ok()
        })
    }

    /// The object types a type can be at run time: itself for objects, members for abstract types.
    pub(crate) fn possible_types<'s>(&'s self, type_name: &'s str) -> Vec<&'s str> {
        match self.get_type(type_name) {
            Some(t) if t.is_abstract() => t.possible_types.iter().map(String::as_str).collect(),
            Some(t) if t.kind == TypeKind::Object => vec![t.name.as_str()],
            _ => Vec::new(),
        }
    }

    pub(crate) fn root_type(&self, kind: crate::graphql::OperationKind) -> Option<&str> {
        use crate::graphql::OperationKind;
        match kind {
            OperationKind::Query => Some(self.query_type.as_str()),
            OperationKind::Mutation => self.mutation_type.as_deref(),
            OperationKind::Subscription => self.subscription_type.as_deref(),
        }
    }
}

fn type_def(definition: &ast::TypeDefinition) -> TypeDef {
    match definition {
        TypeDefinition::Scalar(s) => {
            let mut t = new_type(&s.name, TypeKind::Scalar, &s.description);
            t.specified_by_url =
                directive_string_arg(&s.directives, "specifiedBy", "url").flatten();
            t
        }
        TypeDefinition::Object(o) => {
            let mut t = new_type(&o.name, TypeKind::Object, &o.description);
            t.fields = o.fields.iter().map(field_def).collect();
            t.interfaces = o.implements_interfaces.clone();
            index_fields(t)
        }
        TypeDefinition::Interface(i) => {
            let mut t = new_type(&i.name, TypeKind::Interface, &i.description);
            t.fields = i.fields.iter().map(field_def).collect();
            t.interfaces = i.implements_interfaces.clone();
            index_fields(t)
        }
        TypeDefinition::Union(u) => {
            let mut t = new_type(&u.name, TypeKind::Union, &u.description);
            t.possible_types = u.types.clone();
            t
        }
        TypeDefinition::Enum(e) => {
            let mut t = new_type(&e.name, TypeKind::Enum, &e.description);
            t.enum_values = e
                .values
                .iter()
                .map(|v| EnumValueDef {
                    name: v.name.clone(),
                    description: v.description.clone(),
                    deprecation: deprecation(&v.directives),
                })
                .collect();
            t
        }
        TypeDefinition::InputObject(i) => {
            let mut t = new_type(&i.name, TypeKind::InputObject, &i.description);
            t.input_fields = i.fields.iter().map(input_value).collect();
            t.one_of = i.directives.iter().any(|d| d.name == "oneOf");
            t
        }
    }
}

fn index_fields(mut t: TypeDef) -> TypeDef {
    t.field_index = t
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.clone(), i))
        .collect();
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(sdl: &str) -> Schema {
        let doc = graphql_tools::parser::parse_schema::<String>(sdl)
            .unwrap()
            .into_static();
        Schema::new(Arc::new(doc))
    }

    #[test]
    fn indexes_possible_types_and_fields() {
        let s = schema(
            r#"
            type Query { node: Node, search: [Result!]! }
            interface Node { id: ID! }
            type User implements Node { id: ID!, name: String @deprecated }
            type Post implements Node { id: ID! }
            union Result = User | Post
            enum Color { RED GREEN @deprecated(reason: "ugly") }
            "#,
        );
        assert_eq!(
            s.get_type("Node").unwrap().possible_types,
            vec!["Post", "User"]
        );
        assert_eq!(
            s.get_type("Result").unwrap().possible_types,
            vec!["Post", "User"]
        );
        assert!(s.satisfies("User", "Node"));
        assert!(s.satisfies("User", "User"));
        assert!(!s.satisfies("Node", "User"));
        assert!(s.is_possible_type("Result", "Post"));
        let user = s.get_type("User").unwrap();
        assert_eq!(
            user.field("name").unwrap().deprecation.as_deref(),
            Some("No longer supported")
        );
        assert_eq!(
            s.get_type("Query")
                .unwrap()
                .field("search")
                .unwrap()
                .ty
                .to_string(),
            "[Result!]!"
        );
        assert_eq!(
            s.get_type("Color").unwrap().enum_values[1]
                .deprecation
                .as_deref(),
            Some("ugly")
        );
        assert_eq!(s.query_type, "Query");
        assert_eq!(s.mutation_type, None);
    }
}
