//! Stage 1b, limit: the parsed document's shape against `limits` (depth, aliases, root fields,
//! directives per field), before validation and planning spend any work on it.
//!
//! Fragment spreads are followed, each fragment measured once (memoized), so a document that
//! spreads fragments exponentially costs linear work to measure, and counts what it would
//! really select. Fragment cycles are cut here (validation rejects them right after). Every
//! operation in the document is measured, not only the one selected.

use ahash::AHashMap;
use graphql_tools::parser::query::{Definition, Selection};
use graphql_tools::static_graphql::query;

use super::validate::operation_parts;
use crate::config::LimitsConfig;
use crate::error::{GraphQLError, codes};

#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    depth: usize,
    aliases: u64,
    root_fields: u64,
    max_directives: usize,
}

struct Measure<'d> {
    fragments: AHashMap<&'d str, &'d query::FragmentDefinition>,
    /// `None` while a fragment is being measured (a cycle), `Some` once done.
    memo: AHashMap<&'d str, Option<Shape>>,
}

impl<'d> Measure<'d> {
    fn selection_set(&mut self, items: &'d [query::Selection]) -> Shape {
        let mut shape = Shape::default();
        for item in items {
            let (inner, directives, is_field, aliased) = match item {
                Selection::Field(field) => {
                    let inner = self.selection_set(&field.selection_set.items);
                    (
                        Shape {
                            depth: inner.depth + 1,
                            root_fields: 1,
                            ..inner
                        },
                        field.directives.len(),
                        true,
                        field.alias.is_some(),
                    )
                }
                Selection::InlineFragment(fragment) => (
                    self.selection_set(&fragment.selection_set.items),
                    fragment.directives.len(),
                    false,
                    false,
                ),
                Selection::FragmentSpread(spread) => (
                    self.fragment(&spread.fragment_name),
                    spread.directives.len(),
                    false,
                    false,
                ),
            };
            shape.depth = shape.depth.max(inner.depth);
            shape.aliases = shape
                .aliases
                .saturating_add(inner.aliases)
                .saturating_add(u64::from(aliased));
            // A field counts once at its own level; fragments add the fields they bring.
            shape.root_fields =
                shape
                    .root_fields
                    .saturating_add(if is_field { 1 } else { inner.root_fields });
            shape.max_directives = shape
                .max_directives
                .max(inner.max_directives)
                .max(directives);
        }
        shape
    }

    fn fragment(&mut self, name: &str) -> Shape {
        match self.memo.get(name) {
            Some(Some(shape)) => return *shape,
            Some(None) => return Shape::default(),
            None => {}
        }
        let Some((&key, &definition)) = self.fragments.get_key_value(name) else {
            return Shape::default();
        };
        self.memo.insert(key, None);
        let shape = self.selection_set(&definition.selection_set.items);
        self.memo.insert(key, Some(shape));
        shape
    }
}

/// Checks every operation of `document` against `limits`.
pub(crate) fn check(document: &query::Document, limits: &LimitsConfig) -> Result<(), GraphQLError> {
    let mut measure = Measure {
        fragments: document
            .definitions
            .iter()
            .filter_map(|d| match d {
                Definition::Fragment(f) => Some((f.name.as_str(), f)),
                Definition::Operation(_) => None,
            })
            .collect(),
        memo: AHashMap::new(),
    };
    for definition in &document.definitions {
        let Definition::Operation(operation) = definition else {
            continue;
        };
        let (_, selection_set, _, _) = operation_parts(operation);
        let shape = measure.selection_set(&selection_set.items);
        let exceeded = |what: String, code: &str, limit: usize| {
            Err(
                GraphQLError::new(format!("{what}; the limit is {limit}"), code)
                    .with_extension("limit", limit),
            )
        };
        if shape.depth > limits.max_depth {
            return exceeded(
                format!("The operation nests fields {} levels deep", shape.depth),
                codes::MAX_DEPTH_EXCEEDED,
                limits.max_depth,
            );
        }
        if shape.aliases > limits.max_aliases as u64 {
            return exceeded(
                format!("The operation has {} aliases", shape.aliases),
                codes::MAX_ALIASES_EXCEEDED,
                limits.max_aliases,
            );
        }
        if shape.root_fields > limits.max_root_fields as u64 {
            return exceeded(
                format!("The operation selects {} root fields", shape.root_fields),
                codes::MAX_ROOT_FIELDS_EXCEEDED,
                limits.max_root_fields,
            );
        }
        if shape.max_directives > limits.max_directives_per_field {
            return exceeded(
                format!(
                    "A field of the operation has {} directives",
                    shape.max_directives
                ),
                codes::MAX_DIRECTIVES_EXCEEDED,
                limits.max_directives_per_field,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::parse::parse;

    fn limits() -> LimitsConfig {
        LimitsConfig {
            max_tokens: 100_000,
            max_depth: 3,
            max_aliases: 2,
            max_root_fields: 3,
            max_directives_per_field: 2,
        }
    }

    fn run(query: &str) -> Result<(), String> {
        check(&parse(query, 100_000).unwrap(), &limits())
            .map_err(|e| e.code().unwrap_or_default().to_string())
    }

    #[test]
    fn depth_counts_field_levels_through_fragments() {
        assert_eq!(run("{ a { b { c } } }"), Ok(()));
        assert_eq!(
            run("{ a { b { c { d } } } }"),
            Err("MAX_DEPTH_EXCEEDED".into())
        );
        assert_eq!(
            run("{ a { ...F } } fragment F on T { b { ... on T { c { d } } } }"),
            Err("MAX_DEPTH_EXCEEDED".into())
        );
    }

    #[test]
    fn aliases_count_every_use_of_a_fragment() {
        assert_eq!(run("{ x: a y: b }"), Ok(()));
        assert_eq!(
            run("{ x: a y: b z: c }"),
            Err("MAX_ALIASES_EXCEEDED".into())
        );
        assert_eq!(
            run("{ a { ...F } b { ...F } } fragment F on T { x: f }"),
            Ok(())
        );
        assert_eq!(
            run("{ a { ...F } b { ...F } c { ...F } } fragment F on T { x: f }"),
            Err("MAX_ALIASES_EXCEEDED".into())
        );
    }

    #[test]
    fn root_fields_include_root_fragments() {
        assert_eq!(run("{ a b c }"), Ok(()));
        assert_eq!(run("{ a b c d }"), Err("MAX_ROOT_FIELDS_EXCEEDED".into()));
        assert_eq!(
            run("{ a ...F } fragment F on Query { b ... on Query { c d } }"),
            Err("MAX_ROOT_FIELDS_EXCEEDED".into())
        );
        // Nested fields are not root fields.
        assert_eq!(run("{ a { b c d e } }"), Ok(()));
    }

    #[test]
    fn directives_per_field() {
        assert_eq!(run("{ a @include(if: true) @skip(if: false) }"), Ok(()));
        assert_eq!(
            run("{ a @include(if: true) @skip(if: false) @include(if: true) }"),
            Err("MAX_DIRECTIVES_EXCEEDED".into())
        );
        assert_eq!(
            run("{ ...F @x @y @z } fragment F on Query { a }"),
            Err("MAX_DIRECTIVES_EXCEEDED".into())
        );
    }

    #[test]
    fn exponential_fragments_and_cycles_are_measured_cheaply() {
        // 2^40 fields if expanded; measured in linear time and rejected.
        let mut query = String::from("{ ...F0 }");
        for i in 0..40 {
            query.push_str(&format!(
                " fragment F{i} on Query {{ ...F{} ...F{} }}",
                i + 1,
                i + 1
            ));
        }
        query.push_str(" fragment F40 on Query { a }");
        assert_eq!(run(&query), Err("MAX_ROOT_FIELDS_EXCEEDED".into()));
        assert_eq!(
            run("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"),
            Ok(())
        );
    }

    #[test]
    fn errors_name_the_limit() {
        let error = check(&parse("{ x: a y: b z: c }", 100).unwrap(), &limits()).unwrap_err();
        assert_eq!(error.message, "The operation has 3 aliases; the limit is 2");
        assert_eq!(error.extensions["limit"], 2);
    }
}
