//! A bounded map from request body to response body, so a benchmark subgraph answers a repeated
//! request with one hash lookup instead of executing GraphQL again.
//!
//! Routers send the same few requests over and over (same plan, same representations), so a small
//! capacity holds them all; once full, new requests are simply not remembered (no eviction: the
//! working set of a benchmark is fixed, and a churning cache would only add cost).

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
};

use bytes::Bytes;

pub struct Memo {
    /// Read on every request, written at most `capacity` times: a read-write lock is uncontended in
    /// steady state. Never held across an `.await`.
    entries: RwLock<HashMap<Bytes, Bytes>>,
    capacity: usize,
}

impl Memo {
    pub fn new(capacity: usize) -> Memo {
        Memo {
            entries: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    pub fn get(&self, request: &[u8]) -> Option<Bytes> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.get(request).cloned()
    }

    /// Remembers `response` for `request` unless the memo is full.
    pub fn insert(&self, request: Bytes, response: Bytes) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() < self.capacity || entries.contains_key(&request) {
            entries.insert(request, response);
        }
    }

    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_what_it_was_given() {
        let memo = Memo::new(4);
        assert!(memo.is_empty());
        assert_eq!(memo.get(b"q1"), None);
        memo.insert(Bytes::from_static(b"q1"), Bytes::from_static(b"r1"));
        assert_eq!(memo.get(b"q1"), Some(Bytes::from_static(b"r1")));
        assert_eq!(memo.get(b"q2"), None);
    }

    #[test]
    fn stops_remembering_when_full() {
        let memo = Memo::new(2);
        for (q, r) in [("a", "1"), ("b", "2"), ("c", "3")] {
            memo.insert(Bytes::from(q), Bytes::from(r));
        }
        assert_eq!(memo.len(), 2);
        assert_eq!(memo.get(b"c"), None);
        // Replacing a known entry is allowed at capacity.
        memo.insert(Bytes::from("a"), Bytes::from("9"));
        assert_eq!(memo.get(b"a"), Some(Bytes::from("9")));
    }
}
