//! The GraphQL engine pieces that know nothing of requests: the API schema index (`schema`),
//! the introspection resolver over it (`introspection`), the executor's JSON tree (`value`) and
//! helpers over the document AST (`ast`).

pub(crate) mod ast;
pub(crate) mod introspection;
pub(crate) mod schema;
pub(crate) mod value;

/// The kind of a GraphQL operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OperationKind {
    Query,
    Mutation,
    Subscription,
}

impl OperationKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OperationKind::Query => "query",
            OperationKind::Mutation => "mutation",
            OperationKind::Subscription => "subscription",
        }
    }
}
