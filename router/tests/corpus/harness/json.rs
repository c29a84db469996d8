//! An order-preserving JSON tree, and the comparison of a router response against an expectation.
//!
//! GraphQL fixes the order of response keys (selection order), but this workspace's `serde_json`
//! is built without `preserve_order`, so its `Value` sorts object keys. Parsing responses into our
//! own tree keeps the order the router sent, so a wrong field order is a visible failure. Expected
//! responses are written as JSON text for the same reason (`json!` would sort them).

use std::fmt::{self, Write as _};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Marks, inside an expected error, a value that must be present but may be anything.
pub const ANY: &str = "<any>";

/// A JSON value whose objects keep their keys in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses JSON text, keeping object key order.
    pub fn parse(text: &str) -> Result<Json, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The value under `key` when this is an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The mutable value under `key` when this is an object.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        match self {
            Json::Object(entries) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a path of object keys and array indexes (given as decimal strings).
    pub fn pointer_mut(&mut self, path: &[&str]) -> Option<&mut Json> {
        let mut current = self;
        for segment in path {
            current = match current {
                Json::Object(_) => current.get_mut(segment)?,
                Json::Array(items) => items.get_mut(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(current)
    }

    /// Reverses the key order of every object in the tree and adds `key: value` to each object
    /// that has no such key: a subgraph answering out of selection order and with fields nobody
    /// asked for, which a router must neither pass on nor depend on.
    pub fn scramble(&mut self, key: &str, value: &Json) {
        match self {
            Json::Object(entries) => {
                entries.reverse();
                for (_, child) in entries.iter_mut() {
                    child.scramble(key, value);
                }
                if !entries.iter().any(|(k, _)| k == key) {
                    entries.push((key.to_owned(), value.clone()));
                }
            }
            Json::Array(items) => items.iter_mut().for_each(|item| item.scramble(key, value)),
            _ => {}
        }
    }

    /// Compact JSON text, keys in their stored order.
    pub fn to_compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None, 0);
        out
    }

    /// Indented JSON text, keys in their stored order.
    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(2), 0);
        out
    }

    fn write(&self, out: &mut String, indent: Option<usize>, depth: usize) {
        let newline = |out: &mut String, depth: usize| {
            if let Some(width) = indent {
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', width * depth));
            }
        };
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Json::Number(n) => {
                let _ = write!(out, "{n}");
            }
            Json::String(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
            Json::Array(items) if items.is_empty() => out.push_str("[]"),
            Json::Object(entries) if entries.is_empty() => out.push_str("{}"),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    item.write(out, indent, depth + 1);
                }
                newline(out, depth);
                out.push(']');
            }
            Json::Object(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    out.push_str(&serde_json::Value::String(key.clone()).to_string());
                    out.push(':');
                    if indent.is_some() {
                        out.push(' ');
                    }
                    value.write(out, indent, depth + 1);
                }
                newline(out, depth);
                out.push('}');
            }
        }
    }
}

impl From<&serde_json::Value> for Json {
    fn from(value: &serde_json::Value) -> Json {
        match value {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => Json::Number(n.clone()),
            serde_json::Value::String(s) => Json::String(s.clone()),
            serde_json::Value::Array(items) => Json::Array(items.iter().map(Json::from).collect()),
            serde_json::Value::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Json::from(v)))
                    .collect(),
            ),
        }
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_compact())
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries: Vec<(String, Json)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

/// Compares a whole GraphQL response with the expected one.
///
/// `data` must match exactly, key order included. `errors` are matched as a set (their order
/// depends on which fetch finished first): each expected error must match a different actual
/// error and the counts must be equal. An expected error lists only what it pins down: its keys
/// must be present with equal values (recursively for `extensions`), extra actual keys are
/// allowed, and the string [`ANY`] accepts any present value. Router-made messages differ
/// between routers, so expectations pin their `extensions.code` rather than their wording;
/// subgraph-made messages are ours and are pinned exactly. A missing `data` key in the
/// expectation (a request error) requires a missing `data` key in the response.
pub fn compare_response(expected: &Json, actual: &Json) -> Result<(), String> {
    let mut problems = Vec::new();
    check_response_shape(actual, &mut problems);

    match (expected.get("data"), actual.get("data")) {
        (Some(e), Some(a)) => compare_exact(e, a, "data", &mut problems),
        (None, None) => {}
        (Some(_), None) => problems.push("response has no `data` key".to_owned()),
        (None, Some(a)) => problems.push(format!(
            "expected no `data` key (a request error), got data: {a}"
        )),
    }

    let empty = Vec::new();
    let expected_errors = match expected.get("errors") {
        Some(Json::Array(items)) => items,
        _ => &empty,
    };
    let actual_errors = match actual.get("errors") {
        Some(Json::Array(items)) => items,
        _ => &empty,
    };
    if expected_errors.len() != actual_errors.len() {
        problems.push(format!(
            "expected {} error(s), got {}: {}",
            expected_errors.len(),
            actual_errors.len(),
            Json::Array(actual_errors.clone())
        ));
    } else if !errors_match(expected_errors, actual_errors) {
        problems.push(format!(
            "errors differ:\n  expected (subset per error): {}\n  actual: {}",
            Json::Array(expected_errors.clone()),
            Json::Array(actual_errors.clone())
        ));
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The spec's response shape: an object with `data`, `errors` and `extensions` only; every
/// error an object with a string `message` and, when present, a well-formed `path`.
fn check_response_shape(actual: &Json, problems: &mut Vec<String>) {
    let Json::Object(entries) = actual else {
        problems.push(format!("response is not a JSON object: {actual}"));
        return;
    };
    for (key, _) in entries {
        if !matches!(key.as_str(), "data" | "errors" | "extensions") {
            problems.push(format!("unexpected top-level key {key:?}"));
        }
    }
    match actual.get("errors") {
        None => {}
        Some(Json::Array(errors)) if errors.is_empty() => {
            problems.push("`errors` is present but empty (the spec forbids that)".to_owned());
        }
        Some(Json::Array(errors)) => {
            for error in errors {
                if !matches!(error.get("message"), Some(Json::String(_))) {
                    problems.push(format!("error without a string message: {error}"));
                }
                if let Some(path) = error.get("path") {
                    let ok = matches!(path, Json::Array(segments) if segments.iter().all(|s| matches!(s, Json::String(_) | Json::Number(_))));
                    if !ok {
                        problems.push(format!("error path is not a list of keys: {error}"));
                    }
                }
            }
        }
        Some(other) => problems.push(format!("`errors` is not a list: {other}")),
    }
}

fn compare_exact(expected: &Json, actual: &Json, at: &str, problems: &mut Vec<String>) {
    match (expected, actual) {
        (Json::Object(e), Json::Object(a)) => {
            let e_keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
            let a_keys: Vec<&str> = a.iter().map(|(k, _)| k.as_str()).collect();
            if e_keys != a_keys {
                problems.push(format!("{at}: keys {a_keys:?}, expected {e_keys:?}"));
                return;
            }
            for ((key, e), (_, a)) in e.iter().zip(a) {
                compare_exact(e, a, &format!("{at}.{key}"), problems);
            }
        }
        (Json::Array(e), Json::Array(a)) => {
            if e.len() != a.len() {
                problems.push(format!("{at}: {} items, expected {}", a.len(), e.len()));
                return;
            }
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                compare_exact(e, a, &format!("{at}[{i}]"), problems);
            }
        }
        (Json::Number(e), Json::Number(a)) => {
            if e.as_f64() != a.as_f64() {
                problems.push(format!("{at}: {a}, expected {e}"));
            }
        }
        (e, a) => {
            if e != a {
                problems.push(format!("{at}: {a}, expected {e}"));
            }
        }
    }
}

/// Whether `expected` is contained in `actual`: objects by key subset, arrays and scalars exactly.
fn is_subset(expected: &Json, actual: &Json) -> bool {
    match (expected, actual) {
        (Json::String(s), _) if s == ANY => !matches!(actual, Json::Null),
        (Json::Object(e), Json::Object(_)) => e
            .iter()
            .all(|(k, ev)| actual.get(k).is_some_and(|av| is_subset(ev, av))),
        (Json::Array(e), Json::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| is_subset(e, a))
        }
        (Json::Number(e), Json::Number(a)) => e.as_f64() == a.as_f64(),
        (e, a) => e == a,
    }
}

/// A perfect matching of expected errors onto distinct actual errors (lists are tiny, so a
/// backtracking search is plenty).
fn errors_match(expected: &[Json], actual: &[Json]) -> bool {
    fn assign(expected: &[Json], actual: &[Json], used: &mut Vec<bool>) -> bool {
        let Some((first, rest)) = expected.split_first() else {
            return true;
        };
        for (i, candidate) in actual.iter().enumerate() {
            if !used[i] && is_subset(first, candidate) {
                used[i] = true;
                if assign(rest, actual, used) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    assign(expected, actual, &mut vec![false; actual.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(text: &str) -> Json {
        Json::parse(text).unwrap()
    }

    #[test]
    fn key_order_is_kept_and_compared() {
        let parsed = j(r#"{"b":1,"a":2}"#);
        assert_eq!(parsed.to_compact(), r#"{"b":1,"a":2}"#);
        let err = compare_response(
            &j(r#"{"data":{"a":2,"b":1}}"#),
            &j(r#"{"data":{"b":1,"a":2}}"#),
        )
        .unwrap_err();
        assert!(err.contains("keys"), "{err}");
    }

    #[test]
    fn scramble_reverses_keys_and_adds_one() {
        let mut value = j(r#"{"a":1,"b":[{"c":2,"d":3}]}"#);
        value.scramble("x", &Json::Null);
        assert_eq!(
            value.to_compact(),
            r#"{"b":[{"d":3,"c":2,"x":null}],"a":1,"x":null}"#
        );
    }

    #[test]
    fn errors_match_as_subsets_in_any_order() {
        let expected = j(
            r#"{"data":null,"errors":[{"path":["b"]},{"message":"x","extensions":{"code":"<any>"}}]}"#,
        );
        let actual = j(
            r#"{"data":null,"errors":[{"message":"x","extensions":{"code":"C","service":"s"}},{"message":"y","path":["b"]}]}"#,
        );
        compare_response(&expected, &actual).unwrap();
        let wrong = j(r#"{"data":null,"errors":[{"message":"x"},{"message":"y","path":["b"]}]}"#);
        assert!(compare_response(&expected, &wrong).is_err());
    }

    #[test]
    fn missing_data_and_extra_errors_fail() {
        assert!(
            compare_response(&j(r#"{"data":{}}"#), &j(r#"{"errors":[{"message":"m"}]}"#)).is_err()
        );
        assert!(
            compare_response(
                &j(r#"{"errors":[{}]}"#),
                &j(r#"{"data":null,"errors":[{"message":"m"}]}"#)
            )
            .is_err()
        );
        assert!(
            compare_response(
                &j(r#"{"data":{"a":1}}"#),
                &j(r#"{"data":{"a":1},"errors":[{"message":"m"}]}"#)
            )
            .is_err()
        );
        assert!(
            compare_response(
                &j(r#"{"data":{"a":1}}"#),
                &j(r#"{"data":{"a":1},"errors":[]}"#)
            )
            .is_err()
        );
    }
}
