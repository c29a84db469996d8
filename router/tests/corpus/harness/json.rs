//! The comparison of a router response against an expectation, over the workspace's one
//! order-preserving JSON tree (the bench's `json.rs`, included below).
//!
//! GraphQL fixes the order of response keys (selection order), but this workspace's `serde_json`
//! is built without `preserve_order`, so its `Value` sorts object keys. Parsing responses into the
//! order-keeping tree keeps the order the router sent, so a wrong field order is a visible
//! failure. Expected responses are written as JSON text for the same reason (`json!` would sort
//! them).

#[allow(dead_code)]
#[path = "../../../../bench/src/json.rs"]
mod tree;

pub use tree::Json;

/// Marks, inside an expected error, a value that must be present but may be anything.
pub const ANY: &str = "<any>";

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
