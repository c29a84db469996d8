//! Order-aware JSON comparison: is a response *the* expected response, field order included?
//!
//! GraphQL responses must list fields in the order the client selected them, so `serde_json::Value`
//! (whose objects are sorted maps unless `preserve_order` is on workspace-wide) cannot judge them.
//! [`Json`] keeps objects as ordered key/value lists, and [`first_difference`] names the first place
//! two documents part, which is what a failing benchmark run needs to print.
//!
//! This is the one order-keeping JSON tree of the workspace: the router's federation corpus
//! (`router/tests/corpus/harness/json.rs`) includes this file for its tree and adds its own
//! response comparison on top.

use std::fmt::{self, Write as _};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON document that remembers the order of object keys.
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
    /// Parses JSON text (a `&str` or bytes), keeping object key order. A duplicate key is an
    /// error: it would make the order of a response ambiguous.
    pub fn parse(bytes: impl AsRef<[u8]>) -> Result<Json, serde_json::Error> {
        serde_json::from_slice(bytes.as_ref())
    }

    /// The value under `key` if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
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

    /// A one-line description for error messages, short even for large values.
    fn describe(&self) -> String {
        match self {
            Json::Null => "null".into(),
            Json::Bool(b) => b.to_string(),
            Json::Number(n) => n.to_string(),
            Json::String(s) if s.chars().count() > 40 => {
                format!("{:?}...", s.chars().take(40).collect::<String>())
            }
            Json::String(s) => format!("{s:?}"),
            Json::Array(items) => format!("an array of {}", items.len()),
            Json::Object(fields) => {
                let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
                format!("an object with keys [{}]", keys.join(", "))
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

/// Where and how two JSON documents differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// JSONPath-like location, e.g. `$.data.users[0].name`.
    pub path: String,
    pub expected: String,
    pub actual: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at {}: expected {}, got {}",
            self.path, self.expected, self.actual
        )
    }
}

/// The first place (depth first, in document order) where `actual` is not `expected`; `None` when
/// they are the same document, with object keys in the same order.
pub fn first_difference(expected: &Json, actual: &Json) -> Option<Difference> {
    let mut path = String::from("$");
    diff_at(&mut path, expected, actual)
}

fn diff_at(path: &mut String, expected: &Json, actual: &Json) -> Option<Difference> {
    let differ = |path: &str, expected: String, actual: String| {
        Some(Difference {
            path: path.to_owned(),
            expected,
            actual,
        })
    };
    match (expected, actual) {
        (Json::Null, Json::Null) => None,
        (Json::Bool(a), Json::Bool(b)) if a == b => None,
        (Json::String(a), Json::String(b)) if a == b => None,
        (Json::Number(a), Json::Number(b)) if numbers_equal(a, b) => None,
        (Json::Array(a), Json::Array(b)) => {
            if a.len() != b.len() {
                return differ(path, expected.describe(), actual.describe());
            }
            a.iter().zip(b).enumerate().find_map(|(i, (a, b))| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = diff_at(path, a, b);
                path.truncate(len);
                found
            })
        }
        (Json::Object(a), Json::Object(b)) => {
            for (i, (key, a)) in a.iter().enumerate() {
                let Some((actual_key, b)) = b.get(i) else {
                    return differ(
                        path,
                        format!("key {key:?} at position {i}"),
                        "no more keys".into(),
                    );
                };
                if key != actual_key {
                    return differ(
                        path,
                        format!("key {key:?} at position {i}"),
                        format!("key {actual_key:?}"),
                    );
                }
                let len = path.len();
                path.push('.');
                path.push_str(key);
                let found = diff_at(path, a, b);
                path.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
            let (extra, _) = b.get(a.len())?;
            differ(path, "no more keys".into(), format!("extra key {extra:?}"))
        }
        _ => differ(path, expected.describe(), actual.describe()),
    }
}

/// Integers compare exactly; anything with a fraction compares as `f64` (GraphQL `Float`).
fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return a == b;
    }
    a.as_f64() == b.as_f64()
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

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        Json::deserialize(deserializer)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(value)
            .map(Json::Number)
            .ok_or_else(|| E::custom("JSON numbers must be finite"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Json, E> {
        Ok(Json::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields: Vec<(String, Json)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            fields.push((key, value));
        }
        Ok(Json::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Json {
        Json::parse(text.as_bytes()).unwrap()
    }

    fn diff(expected: &str, actual: &str) -> Option<String> {
        first_difference(&json(expected), &json(actual)).map(|d| d.to_string())
    }

    #[test]
    fn identical_documents_have_no_difference() {
        let expected = json(r#"{"data":{"users":[{"id":"1","name":"Ada"}]},"errors":[]}"#);
        assert_eq!(first_difference(&expected, &expected.clone()), None);
        assert_eq!(
            diff(
                r#"{"a": [1, 2.5, null, true, "x"]}"#,
                r#"{"a":[1,2.5,null,true,"x"]}"#
            ),
            None
        );
    }

    #[test]
    fn field_order_matters() {
        assert_eq!(
            diff(r#"{"a": 1, "b": 2}"#, r#"{"b": 2, "a": 1}"#).unwrap(),
            r#"at $: expected key "a" at position 0, got key "b""#
        );
    }

    #[test]
    fn missing_and_extra_fields_are_named() {
        assert_eq!(
            diff(r#"{"a": 1, "b": 2}"#, r#"{"a": 1}"#).unwrap(),
            r#"at $: expected key "b" at position 1, got no more keys"#
        );
        assert_eq!(
            diff(r#"{"a": 1}"#, r#"{"a": 1, "errors": []}"#).unwrap(),
            r#"at $: expected no more keys, got extra key "errors""#
        );
    }

    #[test]
    fn nested_values_report_their_path() {
        assert_eq!(
            diff(
                r#"{"data": {"users": [{"id": "1"}, {"id": "2"}]}}"#,
                r#"{"data": {"users": [{"id": "1"}, {"id": 2}]}}"#
            )
            .unwrap(),
            r#"at $.data.users[1].id: expected "2", got 2"#
        );
        assert_eq!(
            diff(r#"{"a": [1, 2]}"#, r#"{"a": [1]}"#).unwrap(),
            "at $.a: expected an array of 2, got an array of 1"
        );
        assert_eq!(
            diff(r#"{"a": null}"#, r#"{"a": {"b": 1}}"#).unwrap(),
            "at $.a: expected null, got an object with keys [b]"
        );
    }

    #[test]
    fn numbers_compare_by_value() {
        assert_eq!(diff("[1, 100000, 1.5]", "[1, 100000, 1.5]"), None);
        assert!(diff("[1]", "[2]").is_some());
        assert!(diff("[1]", "[1.5]").is_some());
        assert!(diff("[-1]", "[18446744073709551615]").is_some());
    }

    #[test]
    fn long_strings_are_shortened_in_messages() {
        let long = "x".repeat(100);
        let message = diff(&format!("[\"{long}\"]"), "[\"y\"]").unwrap();
        assert!(message.len() < 100, "{message}");
    }

    #[test]
    fn text_keeps_key_order_and_duplicates_are_refused() {
        let text = r#"{"b":1,"a":[true,null,"x"]}"#;
        assert_eq!(Json::parse(text).unwrap().to_compact(), text);
        assert!(
            Json::parse(r#"{"a":1,"a":2}"#).is_err(),
            "a duplicate key is an error"
        );
    }

    #[test]
    fn get_reads_object_fields() {
        let doc = json(r#"{"data": null, "errors": [1]}"#);
        assert_eq!(doc.get("data"), Some(&Json::Null));
        assert_eq!(
            doc.get("errors"),
            Some(&Json::Array(vec![Json::Number(1.into())]))
        );
        assert_eq!(doc.get("extensions"), None);
        assert_eq!(Json::Null.get("data"), None);
    }
}
