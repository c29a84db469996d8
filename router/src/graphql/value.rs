//! The executor's JSON value: borrows strings from subgraph response bodies instead of copying them.
//!
//! Subgraph responses are parsed once (sonic-rs) into `Value<'a>`, whose strings and keys point into
//! the response bytes kept alive by the execution's arena (see `execute`). Objects are small
//! vectors of `(key, value)` pairs: GraphQL objects rarely have more than a few dozen fields, so a
//! linear scan beats hashing, and the pairs keep the order fields arrived in.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use sonic_rs::format::{CompactFormatter, Formatter};

/// A JSON value whose strings borrow from the buffer it was parsed from where possible.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Value<'a> {
    #[default]
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

impl<'a> Value<'a> {
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value of `key` when this is an object that has it.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(fields) => object_get(fields, key),
            _ => None,
        }
    }

    /// The object's `__typename`, if it is an object that carries one.
    #[inline]
    pub(crate) fn typename(&self) -> Option<&str> {
        self.get("__typename").and_then(Value::as_str)
    }

    /// Appends this value as compact JSON.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::I64(n) => write_i64(out, *n),
            Value::U64(n) => write_u64(out, *n),
            Value::F64(n) => write_f64(out, *n),
            Value::String(s) => write_str(out, s),
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Value::Object(fields) => {
                out.push(b'{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, key);
                    out.push(b':');
                    value.write_json(out);
                }
                out.push(b'}');
            }
        }
    }

    /// Compact JSON text of this value.
    #[cfg(test)]
    pub(crate) fn to_json_string(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        // Only valid UTF-8 is ever written: keys and strings are `str`, the rest is ASCII.
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Key equality for the executor's hot lookups. Keys are short and often share a length
/// (`id`, `upc`, `name`, `body`): comparing the first byte inline rejects most mismatches
/// without a call into `memcmp`.
#[inline(always)]
pub(crate) fn key_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.first() == b.first() && a == b
}

/// Looks `key` up in an object's pairs.
#[inline]
pub(crate) fn object_get<'v, 'a>(
    fields: &'v [(Cow<'a, str>, Value<'a>)],
    key: &str,
) -> Option<&'v Value<'a>> {
    fields.iter().find(|(k, _)| key_eq(k, key)).map(|(_, v)| v)
}

/// Deep-merges `source` into `target`: objects field by field, lists element by element.
///
/// A `null` coming from a later fetch never erases an object an earlier fetch produced (an entity
/// the subgraph could not resolve leaves its already-known fields alone); scalars are replaced,
/// which lets an entity fetch correct an `@interfaceObject`'s `__typename`.
pub(crate) fn deep_merge<'a>(target: &mut Value<'a>, source: Value<'a>) {
    match (target, source) {
        (Value::Object(target_fields), Value::Object(source_fields)) => {
            for (key, value) in source_fields {
                match target_fields.iter_mut().find(|(k, _)| key_eq(k, &key)) {
                    Some((_, existing)) => deep_merge(existing, value),
                    None => target_fields.push((key, value)),
                }
            }
        }
        (Value::Array(target_items), Value::Array(source_items)) => {
            for (existing, value) in target_items.iter_mut().zip(source_items) {
                deep_merge(existing, value);
            }
        }
        (Value::Object(_) | Value::Array(_), Value::Null) => {}
        (target, source) => *target = source,
    }
}

/// [`deep_merge`] of a copy of `source`, copying only what `target` lacks: an entity result
/// shared by several entities is merged into all but the last of them this way, instead of
/// cloning the whole result and then merging (and dropping) the clone.
pub(crate) fn deep_merge_ref<'a>(target: &mut Value<'a>, source: &Value<'a>) {
    match (target, source) {
        (Value::Object(target_fields), Value::Object(source_fields)) => {
            for (key, value) in source_fields {
                match target_fields.iter_mut().find(|(k, _)| key_eq(k, key)) {
                    Some((_, existing)) => deep_merge_ref(existing, value),
                    None => target_fields.push((key.clone(), value.clone())),
                }
            }
        }
        (Value::Array(target_items), Value::Array(source_items)) => {
            for (existing, value) in target_items.iter_mut().zip(source_items) {
                deep_merge_ref(existing, value);
            }
        }
        (Value::Object(_) | Value::Array(_), Value::Null) => {}
        (target, source) => *target = source.clone(),
    }
}

/// Appends `s` as a JSON string literal (quoted, escaped).
#[inline]
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = CompactFormatter.write_string_fast(out, s, true);
}

#[inline]
pub(crate) fn write_i64(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

#[inline]
pub(crate) fn write_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends a float; JSON has no NaN or infinity, so those become `null`.
#[inline]
pub(crate) fn write_f64(out: &mut Vec<u8>, n: f64) {
    if n.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(n).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::I64(n) => serializer.serialize_i64(*n),
            Value::U64(n) => serializer.serialize_u64(*n),
            Value::F64(n) => serializer.serialize_f64(*n),
            Value::String(s) => serializer.serialize_str(s),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

/// Deepest nesting accepted when parsing. GraphQL data is about as deep as the query (the
/// parser allows about 50 levels of selections, lists add some); the limit keeps a malicious or
/// broken subgraph from exhausting the stack with `[[[[…`.
pub(crate) const MAX_DEPTH: usize = 128;

impl<'de: 'a, 'a> Deserialize<'de> for Value<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor(0, PhantomData))
    }
}

/// Visits one value at nesting depth `.0`.
struct ValueVisitor<'a>(usize, PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ValueVisitor<'a> {
    type Value = Value<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Value::I64(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Value::U64(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Value::F64(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Value::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Value::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Value::String(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(serde::de::Error::custom("JSON nesting is too deep"));
        }
        // Without a size hint, start where most GraphQL lists and objects end, to avoid
        // the 0 → 4 → 8 reallocations on every node.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(4096));
        while let Some(item) = seq.next_element_seed(ValueSeed(self.0 + 1, PhantomData))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if self.0 >= MAX_DEPTH {
            return Err(serde::de::Error::custom("JSON nesting is too deep"));
        }
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8).min(256));
        while let Some(key) = map.next_key_seed(KeySeed(PhantomData))? {
            let value = map.next_value_seed(ValueSeed(self.0 + 1, PhantomData))?;
            fields.push((key, value));
        }
        Ok(Value::Object(fields))
    }
}

struct ValueSeed<'a>(usize, PhantomData<&'a ()>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for ValueSeed<'a> {
    type Value = Value<'a>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ValueVisitor(self.0, PhantomData))
    }
}

/// Deserializes object keys, borrowing them when they contain no escapes.
struct KeySeed<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for KeySeed<'a> {
    type Value = Cow<'a, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor(PhantomData))
    }
}

struct KeyVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for KeyVisitor<'a> {
    type Value = Cow<'a, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_borrows_unescaped_strings() {
        let input = br#"{"a":"plain","b":"esc\"aped","c":[1,-2,3.5,true,null]}"#;
        let value: Value<'_> = sonic_rs::from_slice(input).unwrap();
        let Value::Object(fields) = &value else {
            panic!("object expected")
        };
        assert!(matches!(
            &fields[0].1,
            Value::String(Cow::Borrowed("plain"))
        ));
        assert!(matches!(&fields[1].1, Value::String(Cow::Owned(s)) if s == "esc\"aped"));
        assert_eq!(
            value.get("c"),
            Some(&Value::Array(vec![
                Value::U64(1),
                Value::I64(-2),
                Value::F64(3.5),
                Value::Bool(true),
                Value::Null
            ]))
        );
    }

    #[test]
    fn nesting_is_limited_instead_of_overflowing_the_stack() {
        // A worker thread's stack (2 MB) must hold the deepest accepted value.
        let outcome = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let parse = |depth: usize, open: &str, close: &str| {
                    let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
                    sonic_rs::from_str::<Value<'_>>(&text).is_ok()
                };
                (
                    parse(MAX_DEPTH - 1, "[", "]"),
                    parse(MAX_DEPTH + 1, "[", "]"),
                    parse(200_000, "[", "]"),
                    parse(100_000, "{\"a\":", "}"),
                )
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(outcome, (true, false, false, false));
    }

    #[test]
    fn writes_compact_json_with_escapes() {
        let input = br#"{"k\n":"line\nbreak \u00e9","n":[1,2.25,-3],"o":{}}"#;
        let value: Value<'_> = sonic_rs::from_slice(input).unwrap();
        assert_eq!(
            value.to_json_string(),
            "{\"k\\n\":\"line\\nbreak é\",\"n\":[1,2.25,-3],\"o\":{}}"
        );
        assert_eq!(Value::F64(f64::NAN).to_json_string(), "null");
    }

    #[test]
    fn deep_merge_merges_objects_and_lists_and_keeps_objects_over_null() {
        let mut target: Value<'_> =
            sonic_rs::from_str(r#"{"a":{"x":1},"l":[{"id":1},{"id":2}],"t":"I"}"#).unwrap();
        let source: Value<'_> =
            sonic_rs::from_str(r#"{"a":{"y":2},"l":[{"n":"a"},null],"t":"Impl","new":true}"#)
                .unwrap();
        deep_merge(&mut target, source);
        assert_eq!(
            target.to_json_string(),
            r#"{"a":{"x":1,"y":2},"l":[{"id":1,"n":"a"},{"id":2}],"t":"Impl","new":true}"#
        );
    }
}
