//! `first`/`after` list arguments, checked once for every subgraph.
//!
//! Lists are ordered by id; our ids are UUIDv7 (time-ordered), so that is creation order. `after` is the id
//! of the last item the client has seen.

use async_graphql::ID;
use uuid::Uuid;

use crate::error;

/// Items returned when `first` is omitted.
pub const DEFAULT_PAGE_SIZE: u64 = 20;
/// Most items one request may ask for.
pub const MAX_PAGE_SIZE: u64 = 100;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// How many items to return.
    pub limit: u64,
    /// Return items after this id.
    pub after: Option<Uuid>,
}

impl Page {
    /// Checks `first` (1..=[`MAX_PAGE_SIZE`]) and `after` (an id), giving `BAD_USER_INPUT` naming the argument.
    pub fn parse(first: Option<i32>, after: Option<&ID>) -> async_graphql::Result<Self> {
        let limit = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n >= 1 && (n as u64) <= MAX_PAGE_SIZE => n as u64,
            Some(_) => {
                return Err(error::bad_input(
                    "first",
                    format!("must be between 1 and {MAX_PAGE_SIZE}"),
                ));
            }
        };
        let after = after.map(|id| parse_id("after", id)).transpose()?;
        Ok(Self { limit, after })
    }
}

/// Parses a GraphQL `ID` that must be one of our UUIDs; `BAD_USER_INPUT` naming `field` otherwise.
pub fn parse_id(field: &str, id: &ID) -> async_graphql::Result<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| error::bad_input(field, "is not a valid id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(Page::parse(None, None).unwrap().limit, DEFAULT_PAGE_SIZE);
        assert_eq!(Page::parse(Some(100), None).unwrap().limit, 100);
        assert!(Page::parse(Some(0), None).is_err());
        assert!(Page::parse(Some(101), None).is_err());
        assert!(Page::parse(Some(-1), None).is_err());
        let id = Uuid::now_v7();
        assert_eq!(
            Page::parse(None, Some(&ID(id.to_string()))).unwrap().after,
            Some(id)
        );
        let err = Page::parse(None, Some(&ID("nope".into()))).unwrap_err();
        assert!(err.message.starts_with("after:"), "{}", err.message);
    }
}
