//! Turns a subgraph's SDL (with federation directives) into an executable async-graphql dynamic
//! schema whose fields read from JSON data.
//!
//! Cases declare each subgraph the way federation users write them: as SDL. The derive macros
//! cannot express everything the corpus needs (`@key` on an interface for `@interfaceObject`,
//! the same resolver code over many small schemas), while async-graphql's dynamic schema can,
//! so the SDL is translated into dynamic types and the SDL that composition sees is the one
//! async-graphql exports back from that schema. Every field resolves from its parent's JSON
//! object unless the case registers a resolver for `Type.field`; entities are found in the
//! subgraph's rows by any `@key` the representation satisfies.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_graphql::{
    Name, Value,
    dynamic::{
        Directive, Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue,
        Interface, InterfaceField, Object, ResolverContext, Scalar, Schema, SchemaError, TypeRef,
        Union,
    },
    indexmap,
    parser::{
        parse_schema,
        types::{
            BaseType, ConstDirective, FieldDefinition, InputValueDefinition, Type, TypeDefinition,
            TypeKind, TypeSystemDefinition,
        },
    },
};
use serde_json::Value as JsonValue;

/// A resolver registered by a case for one `Type.field`.
pub type Resolver = Arc<dyn Fn(&mut Ctx<'_>) -> Result<JsonValue, String> + Send + Sync>;

/// What a case resolver sees.
pub struct Ctx<'a> {
    /// The parent object's JSON (the subgraph's root data for root fields).
    pub parent: &'a JsonValue,
    /// The field's arguments as a JSON object (argument defaults applied; input-field defaults
    /// are not: async-graphql's dynamic schema skips them).
    pub args: &'a JsonValue,
    /// The subgraph's rows, writable so mutations change what later reads see.
    pub rows: &'a mut HashMap<String, Vec<JsonValue>>,
    journal: &'a Journal,
    subgraph: &'a str,
}

impl Ctx<'_> {
    /// The argument `name` (JSON null when absent).
    pub fn arg(&self, name: &str) -> &JsonValue {
        self.args.get(name).unwrap_or(&JsonValue::Null)
    }

    /// All rows of `type_name`, as a JSON list.
    pub fn all(&self, type_name: &str) -> JsonValue {
        JsonValue::Array(self.rows.get(type_name).cloned().unwrap_or_default())
    }

    /// The first row of `type_name` whose `field` equals `value` (JSON null when none).
    pub fn find(&self, type_name: &str, field: &str, value: &JsonValue) -> JsonValue {
        self.rows
            .get(type_name)
            .and_then(|rows| rows.iter().find(|row| row.get(field) == Some(value)))
            .cloned()
            .unwrap_or(JsonValue::Null)
    }

    /// The rows of `type_name` that satisfy `keep`, as a JSON list.
    pub fn filter(&self, type_name: &str, keep: impl Fn(&JsonValue) -> bool) -> JsonValue {
        JsonValue::Array(
            self.rows
                .get(type_name)
                .into_iter()
                .flatten()
                .filter(|row| keep(row))
                .cloned()
                .collect(),
        )
    }

    /// Appends `entry` (prefixed by this subgraph's name) to the case-wide journal and returns
    /// its 1-based position: the order in which subgraphs ran side effects, across subgraphs.
    pub fn journal(&self, entry: &str) -> usize {
        self.journal.push(format!("{}:{entry}", self.subgraph))
    }
}

/// An append-only log shared by every subgraph of a case.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, entry: String) -> usize {
        let mut entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries.push(entry);
        entries.len()
    }

    /// Everything logged so far.
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The data and behaviour behind one subgraph schema.
#[derive(Default, Clone)]
pub struct Behaviour {
    /// The value root fields read from (`Query` and `Mutation` share it).
    pub root: JsonValue,
    /// Entity rows by concrete type name.
    pub rows: HashMap<String, Vec<JsonValue>>,
    /// Case resolvers by `Type.field`.
    pub resolvers: HashMap<String, Resolver>,
    /// Artificial latency by `Type.field`, to make ordering bugs visible.
    pub delays: HashMap<String, Duration>,
    /// Entity types this subgraph resolves from the representation alone (it only adds fields
    /// computed from the key, and keeps no rows).
    pub key_only: HashSet<String>,
}

/// What the translator learned about one named type.
#[derive(Debug, Clone)]
struct TypeInfo {
    kind: Kind,
    /// Top-level field names of each `@key`.
    keys: Vec<Vec<String>>,
    /// For interfaces: the object types implementing them here.
    implementers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Interface,
    Union,
    Leaf,
    Input,
}

struct Runtime {
    name: String,
    types: HashMap<String, TypeInfo>,
    rows: Mutex<HashMap<String, Vec<JsonValue>>>,
    root: JsonValue,
    resolvers: HashMap<String, Resolver>,
    delays: HashMap<String, Duration>,
    key_only: HashSet<String>,
    journal: Journal,
}

/// Builds the executable schema of subgraph `name` from `sdl`.
///
/// Panics on SDL the corpus does not support: that is a mistake in a case, not a test outcome.
pub fn build(name: &str, sdl: &str, behaviour: Behaviour, journal: Journal) -> Schema {
    let doc = parse_schema(sdl).unwrap_or_else(|e| panic!("subgraph {name}: bad SDL: {e}"));
    let definitions: Vec<&TypeDefinition> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            TypeSystemDefinition::Type(t) => Some(&t.node),
            // `extend schema @link(...)` is written by async-graphql's export itself.
            TypeSystemDefinition::Schema(_) => None,
            TypeSystemDefinition::Directive(d) => {
                panic!(
                    "subgraph {name}: directive definitions are not supported ({})",
                    d.node.name.node
                )
            }
        })
        .collect();

    let mut types: HashMap<String, TypeInfo> = HashMap::new();
    for def in &definitions {
        let kind = match &def.kind {
            TypeKind::Object(_) => Kind::Object,
            TypeKind::Interface(_) => Kind::Interface,
            TypeKind::Union(_) => Kind::Union,
            TypeKind::Scalar | TypeKind::Enum(_) => Kind::Leaf,
            TypeKind::InputObject(_) => Kind::Input,
        };
        let keys = directives(&def.directives, "key")
            .map(|d| top_level_fields(&string_arg(d, "fields")))
            .collect();
        types.insert(
            def.name.node.to_string(),
            TypeInfo {
                kind,
                keys,
                implementers: Vec::new(),
            },
        );
    }
    for def in &definitions {
        if let TypeKind::Object(object) = &def.kind {
            for interface in &object.implements {
                if let Some(info) = types.get_mut(interface.node.as_str()) {
                    info.implementers.push(def.name.node.to_string());
                }
            }
        }
    }
    for scalar in ["Int", "Float", "String", "Boolean", "ID"] {
        types.insert(
            scalar.to_owned(),
            TypeInfo {
                kind: Kind::Leaf,
                keys: Vec::new(),
                implementers: Vec::new(),
            },
        );
    }

    let has_mutation = types.contains_key("Mutation");
    let runtime = Arc::new(Runtime {
        name: name.to_owned(),
        types,
        rows: Mutex::new(behaviour.rows),
        root: behaviour.root,
        resolvers: behaviour.resolvers,
        delays: behaviour.delays,
        key_only: behaviour.key_only,
        journal,
    });

    let mut builder = Schema::build("Query", has_mutation.then_some("Mutation"), None)
        .enable_federation()
        .entity_resolver({
            let runtime = runtime.clone();
            move |ctx| {
                let runtime = runtime.clone();
                FieldFuture::new(async move { runtime.resolve_entities(&ctx) })
            }
        });
    if !runtime.types.contains_key("Query") {
        // Federation still needs a query root for `_service` and `_entities`; async-graphql
        // leaves an otherwise empty one out of the exported SDL.
        builder = builder.register(Object::new("Query"));
    }
    for def in &definitions {
        builder = register_type(builder, def, &runtime);
    }
    builder
        .finish()
        .unwrap_or_else(|e: SchemaError| panic!("subgraph {name}: schema does not build: {e}"))
}

fn register_type(
    builder: async_graphql::dynamic::SchemaBuilder,
    def: &TypeDefinition,
    runtime: &Arc<Runtime>,
) -> async_graphql::dynamic::SchemaBuilder {
    let name = def.name.node.as_str();
    match &def.kind {
        TypeKind::Object(object) => {
            let mut ty = Object::new(name);
            if def.extend {
                ty = ty.extends();
            }
            for directive in &def.directives {
                ty = match directive.node.name.node.as_str() {
                    "key" => {
                        let fields = string_arg(&directive.node, "fields");
                        if bool_arg(&directive.node, "resolvable") == Some(false) {
                            ty.unresolvable(fields)
                        } else {
                            ty.key(fields)
                        }
                    }
                    "shareable" => ty.shareable(),
                    "inaccessible" => ty.inaccessible(),
                    "interfaceObject" => ty.interface_object(),
                    "extends" => ty.extends(),
                    "tag" => ty.tags([string_arg(&directive.node, "name")]),
                    other => panic!("type {name}: unsupported directive @{other}"),
                };
            }
            for interface in &object.implements {
                ty = ty.implement(interface.node.as_str());
            }
            for field in &object.fields {
                ty = ty.field(object_field(name, &field.node, runtime));
            }
            builder.register(ty)
        }
        TypeKind::Interface(interface) => {
            let mut ty = Interface::new(name);
            if def.extend {
                ty = ty.extends();
            }
            for directive in &def.directives {
                ty = match directive.node.name.node.as_str() {
                    // Written as a plain directive: the dynamic schema would put an entity
                    // interface into its `_Entity` union, which it then rejects as a non-object
                    // member. Representations of the interface resolve to implementing objects.
                    "key" => ty.directive(Directive::new("key").argument(
                        "fields",
                        Value::String(string_arg(&directive.node, "fields")),
                    )),
                    "inaccessible" => ty.inaccessible(),
                    "tag" => ty.tags([string_arg(&directive.node, "name")]),
                    other => panic!("interface {name}: unsupported directive @{other}"),
                };
            }
            for parent in &interface.implements {
                ty = ty.implement(parent.node.as_str());
            }
            for field in &interface.fields {
                ty = ty.field(interface_field(name, &field.node));
            }
            builder.register(ty)
        }
        TypeKind::Union(union) => {
            let mut ty = Union::new(name);
            for directive in &def.directives {
                ty = match directive.node.name.node.as_str() {
                    "inaccessible" => ty.inaccessible(),
                    "tag" => ty.tags([string_arg(&directive.node, "name")]),
                    other => panic!("union {name}: unsupported directive @{other}"),
                };
            }
            for member in &union.members {
                ty = ty.possible_type(member.node.as_str());
            }
            builder.register(ty)
        }
        TypeKind::Enum(values) => {
            let mut ty = Enum::new(name);
            for directive in &def.directives {
                ty = match directive.node.name.node.as_str() {
                    "inaccessible" => ty.inaccessible(),
                    "tag" => ty.tags([string_arg(&directive.node, "name")]),
                    other => panic!("enum {name}: unsupported directive @{other}"),
                };
            }
            for value in &values.values {
                let mut item = EnumItem::new(value.node.value.node.as_str());
                for directive in &value.node.directives {
                    item = match directive.node.name.node.as_str() {
                        "inaccessible" => item.inaccessible(),
                        "tag" => item.tags([string_arg(&directive.node, "name")]),
                        other => panic!("enum value {name}: unsupported directive @{other}"),
                    };
                }
                ty = ty.item(item);
            }
            builder.register(ty)
        }
        TypeKind::InputObject(input) => {
            let mut ty = InputObject::new(name);
            for directive in &def.directives {
                ty = match directive.node.name.node.as_str() {
                    "inaccessible" => ty.inaccessible(),
                    "tag" => ty.tags([string_arg(&directive.node, "name")]),
                    other => panic!("input {name}: unsupported directive @{other}"),
                };
            }
            for field in &input.fields {
                ty = ty.field(input_value(name, &field.node));
            }
            builder.register(ty)
        }
        TypeKind::Scalar => {
            let mut ty = Scalar::new(name);
            for directive in &def.directives {
                ty = match directive.node.name.node.as_str() {
                    "inaccessible" => ty.inaccessible(),
                    "tag" => ty.tags([string_arg(&directive.node, "name")]),
                    other => panic!("scalar {name}: unsupported directive @{other}"),
                };
            }
            builder.register(ty)
        }
    }
}

fn object_field(parent: &str, def: &FieldDefinition, runtime: &Arc<Runtime>) -> Field {
    let name = def.name.node.to_string();
    let ty = def.ty.node.clone();
    let path = format!("{parent}.{name}");
    let is_root = parent == "Query" || parent == "Mutation";
    let runtime = runtime.clone();
    let mut field = Field::new(name.clone(), type_ref(&def.ty.node), move |ctx| {
        let runtime = runtime.clone();
        let (name, ty, path) = (name.clone(), ty.clone(), path.clone());
        FieldFuture::new(async move {
            runtime
                .resolve_field(&ctx, &name, &path, &ty, is_root)
                .await
        })
    });
    for arg in &def.arguments {
        field = field.argument(input_value(parent, &arg.node));
    }
    for directive in &def.directives {
        let d = &directive.node;
        field = match d.name.node.as_str() {
            "external" => field.external(),
            "requires" => field.requires(string_arg(d, "fields")),
            "provides" => field.provides(string_arg(d, "fields")),
            "shareable" => field.shareable(),
            "inaccessible" => field.inaccessible(),
            "override" => field.override_from(string_arg(d, "from")),
            "tag" => field.tags([string_arg(d, "name")]),
            other => panic!(
                "field {parent}.{}: unsupported directive @{other}",
                def.name.node
            ),
        };
    }
    field
}

fn interface_field(parent: &str, def: &FieldDefinition) -> InterfaceField {
    let mut field = InterfaceField::new(def.name.node.as_str(), type_ref(&def.ty.node));
    for arg in &def.arguments {
        field = field.argument(input_value(parent, &arg.node));
    }
    for directive in &def.directives {
        let d = &directive.node;
        field = match d.name.node.as_str() {
            "external" => field.external(),
            "requires" => field.requires(string_arg(d, "fields")),
            "provides" => field.provides(string_arg(d, "fields")),
            "shareable" => field.shareable(),
            "inaccessible" => field.inaccessible(),
            "override" => field.override_from(string_arg(d, "from")),
            "tag" => field.tags([string_arg(d, "name")]),
            other => panic!(
                "field {parent}.{}: unsupported directive @{other}",
                def.name.node
            ),
        };
    }
    field
}

fn input_value(parent: &str, def: &InputValueDefinition) -> InputValue {
    let mut value = InputValue::new(def.name.node.as_str(), type_ref(&def.ty.node));
    if let Some(default) = &def.default_value {
        value = value.default_value(default.node.clone());
    }
    for directive in &def.directives {
        let d = &directive.node;
        value = match d.name.node.as_str() {
            "inaccessible" => value.inaccessible(),
            "tag" => value.tags([string_arg(d, "name")]),
            other => panic!(
                "argument {parent}.{}: unsupported directive @{other}",
                def.name.node
            ),
        };
    }
    value
}

fn type_ref(ty: &Type) -> TypeRef {
    let base = match &ty.base {
        BaseType::Named(name) => TypeRef::Named(name.to_string().into()),
        BaseType::List(inner) => TypeRef::List(Box::new(type_ref(inner))),
    };
    if ty.nullable {
        base
    } else {
        TypeRef::NonNull(Box::new(base))
    }
}

fn directives<'a>(
    list: &'a [async_graphql::Positioned<ConstDirective>],
    name: &'a str,
) -> impl Iterator<Item = &'a ConstDirective> {
    list.iter()
        .map(|d| &d.node)
        .filter(move |d| d.name.node == name)
}

fn string_arg(directive: &ConstDirective, arg: &str) -> String {
    match directive.get_argument(arg).map(|v| &v.node) {
        Some(Value::String(s)) => s.clone(),
        other => panic!(
            "@{}({arg}:) must be a string, got {other:?}",
            directive.name.node
        ),
    }
}

fn bool_arg(directive: &ConstDirective, arg: &str) -> Option<bool> {
    match directive.get_argument(arg).map(|v| &v.node) {
        Some(Value::Boolean(b)) => Some(*b),
        _ => None,
    }
}

/// The field names at the top level of a field set such as `id organization { id }`.
fn top_level_fields(field_set: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut word = String::new();
    let mut args = 0usize;
    let flush = |word: &mut String, names: &mut Vec<String>, depth: usize| {
        if depth == 0 && !word.is_empty() {
            names.push(std::mem::take(word));
        }
        word.clear();
    };
    for c in field_set.chars() {
        match c {
            '{' => {
                flush(&mut word, &mut names, depth);
                depth += 1;
            }
            '}' => {
                flush(&mut word, &mut names, depth);
                depth -= 1;
            }
            '(' => {
                flush(&mut word, &mut names, depth);
                args += 1;
            }
            ')' => args -= 1,
            c if c.is_alphanumeric() || c == '_' => {
                if args == 0 {
                    word.push(c);
                }
            }
            _ => flush(&mut word, &mut names, depth),
        }
    }
    flush(&mut word, &mut names, depth);
    names
}

impl Runtime {
    async fn resolve_field<'a>(
        &self,
        ctx: &ResolverContext<'a>,
        name: &str,
        path: &str,
        ty: &Type,
        is_root: bool,
    ) -> Result<Option<FieldValue<'a>>, async_graphql::Error> {
        if let Some(delay) = self.delays.get(path) {
            tokio::time::sleep(*delay).await;
        }
        let parent = if is_root {
            self.root.clone()
        } else {
            ctx.parent_value
                .downcast_ref::<JsonValue>()
                .cloned()
                .ok_or_else(|| async_graphql::Error::new(format!("{path}: parent is not JSON")))?
        };
        let value = match self.resolvers.get(path) {
            Some(resolver) => {
                let args = args_json(ctx.args.as_index_map())?;
                let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
                let mut case_ctx = Ctx {
                    parent: &parent,
                    args: &args,
                    rows: &mut rows,
                    journal: &self.journal,
                    subgraph: &self.name,
                };
                match resolver(&mut case_ctx) {
                    Ok(value) => value,
                    // The dynamic schema reports a failed resolver without a path and nulls the
                    // enclosing object. Subgraphs built on graphql-js or async-graphql's derive
                    // macros null just the field and give the error its path: a nullable field
                    // does that here. (A failing non-null field is only a case-data mistake.)
                    Err(message) if ty.nullable => {
                        let error =
                            async_graphql::Error::new(message).into_server_error(ctx.ctx.item.pos);
                        ctx.ctx.add_error(ctx.ctx.set_error_path(error));
                        return Ok(None);
                    }
                    Err(message) => return Err(async_graphql::Error::new(message)),
                }
            }
            None => parent.get(name).cloned().unwrap_or(JsonValue::Null),
        };
        self.field_value(ty, value)
    }

    /// Converts resolved JSON into what the dynamic schema expects for `ty`.
    fn field_value<'a>(
        &self,
        ty: &Type,
        value: JsonValue,
    ) -> Result<Option<FieldValue<'a>>, async_graphql::Error> {
        if value.is_null() {
            return Ok(None);
        }
        match &ty.base {
            BaseType::List(inner) => {
                let JsonValue::Array(items) = value else {
                    return Err(async_graphql::Error::new(format!(
                        "expected a list for {ty}"
                    )));
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    // The dynamic schema resolves every list item as a value (an object over
                    // `null`, a scalar `null` fails validation), so case data has no null items.
                    let value = self.field_value(inner, item)?.ok_or_else(|| {
                        async_graphql::Error::new(format!(
                            "corpus data has a null item in a {ty} list"
                        ))
                    })?;
                    out.push(value);
                }
                Ok(Some(FieldValue::list(out)))
            }
            BaseType::Named(name) => {
                let kind = self.types.get(name.as_str()).map(|t| t.kind);
                match kind {
                    Some(Kind::Object) => Ok(Some(FieldValue::owned_any(value))),
                    Some(Kind::Interface | Kind::Union) => {
                        let Some(concrete) = value.get("__typename").and_then(|t| t.as_str())
                        else {
                            return Err(async_graphql::Error::new(format!(
                                "data for abstract type {name} lacks __typename: {value}"
                            )));
                        };
                        let concrete = concrete.to_owned();
                        Ok(Some(FieldValue::owned_any(value).with_type(concrete)))
                    }
                    Some(Kind::Leaf) => Ok(Some(FieldValue::value(
                        Value::from_json(value)
                            .map_err(|e| async_graphql::Error::new(e.to_string()))?,
                    ))),
                    Some(Kind::Input) | None => Err(async_graphql::Error::new(format!(
                        "{name} is not an output type"
                    ))),
                }
            }
        }
    }

    fn resolve_entities<'a>(
        &self,
        ctx: &ResolverContext<'a>,
    ) -> Result<Option<FieldValue<'a>>, async_graphql::Error> {
        let representations = ctx.args.try_get("representations")?.list()?;
        let mut out = Vec::with_capacity(representations.len());
        for representation in representations.iter() {
            let representation = representation
                .as_value()
                .clone()
                .into_json()
                .map_err(|e| async_graphql::Error::new(e.to_string()))?;
            // The dynamic schema cannot put a null into the `_entities` list (it would resolve
            // a union over `null`), so an unknown entity fails the whole call, as it does in
            // subgraphs that throw from their reference resolvers.
            let (typename, value) = self.find_entity(&representation)?.ok_or_else(|| {
                async_graphql::Error::new(format!("entity not found: {representation}"))
            })?;
            out.push(FieldValue::owned_any(value).with_type(typename));
        }
        Ok(Some(FieldValue::list(out)))
    }

    /// Finds the row a representation points at: the first `@key` whose fields the
    /// representation carries selects the row whose key fields contain the representation's.
    /// The row is returned merged with the representation, so `@requires` fields (and
    /// `@external` key parts) are readable by field resolvers.
    fn find_entity(
        &self,
        representation: &JsonValue,
    ) -> Result<Option<(String, JsonValue)>, async_graphql::Error> {
        let typename = representation
            .get("__typename")
            .and_then(|t| t.as_str())
            .ok_or_else(|| async_graphql::Error::new("representation without __typename"))?;
        let info = self
            .types
            .get(typename)
            .ok_or_else(|| async_graphql::Error::new(format!("unknown entity type {typename}")))?;
        let key = info
            .keys
            .iter()
            .find(|key| key.iter().all(|f| representation.get(f).is_some()))
            .ok_or_else(|| {
                async_graphql::Error::new(format!("representation matches no @key of {typename}"))
            })?;
        // An interface entity is stored under its implementing types.
        let candidates: Vec<&str> = if info.kind == Kind::Interface {
            info.implementers.iter().map(String::as_str).collect()
        } else {
            vec![typename]
        };
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        for candidate in candidates {
            let found = rows.get(candidate).into_iter().flatten().find(|row| {
                key.iter()
                    .all(|f| contains(row.get(f).unwrap_or(&JsonValue::Null), &representation[f]))
            });
            if let Some(row) = found {
                let mut merged = row.clone();
                merge(&mut merged, representation);
                return Ok(Some((candidate.to_owned(), merged)));
            }
        }
        if self.key_only.contains(typename) {
            let mut value = representation.clone();
            if let Some(object) = value.as_object_mut() {
                object.remove("__typename");
            }
            return Ok(Some((typename.to_owned(), value)));
        }
        Ok(None)
    }
}

/// Whether `big` contains `small`: objects by key subset, everything else by equality.
fn contains(big: &JsonValue, small: &JsonValue) -> bool {
    match (big, small) {
        (JsonValue::Object(b), JsonValue::Object(s)) => s
            .iter()
            .all(|(k, sv)| b.get(k).is_some_and(|bv| contains(bv, sv))),
        _ => big == small,
    }
}

/// Deep-merges the representation into the row (representation values win: the router sends
/// what the owning subgraph said about `@external` fields).
fn merge(row: &mut JsonValue, representation: &JsonValue) {
    let (Some(row), Some(representation)) = (row.as_object_mut(), representation.as_object())
    else {
        return;
    };
    for (key, value) in representation {
        if key == "__typename" {
            continue;
        }
        match row.get_mut(key) {
            Some(existing) if existing.is_object() && value.is_object() => merge(existing, value),
            _ => {
                row.insert(key.clone(), value.clone());
            }
        }
    }
}

fn args_json(args: &indexmap::IndexMap<Name, Value>) -> Result<JsonValue, async_graphql::Error> {
    let mut object = serde_json::Map::new();
    for (name, value) in args {
        let json = value
            .clone()
            .into_json()
            .map_err(|e| async_graphql::Error::new(e.to_string()))?;
        object.insert(name.to_string(), json);
    }
    Ok(JsonValue::Object(object))
}

#[cfg(test)]
mod tests {
    use super::top_level_fields;

    #[test]
    fn key_field_sets_split_at_the_top_level() {
        assert_eq!(top_level_fields("id"), ["id"]);
        assert_eq!(
            top_level_fields("id organization { id }"),
            ["id", "organization"]
        );
        assert_eq!(top_level_fields("a b{c d{e}} f"), ["a", "b", "f"]);
        assert_eq!(
            top_level_fields("price(currency: \"USD\") weight"),
            ["price", "weight"]
        );
    }
}
