//! Stage 0, request: an HTTP request becomes a GraphQL request, per GraphQL over HTTP.
//!
//! POST takes `application/json` bodies; GET takes `query`, `variables`, `operationName` and
//! `extensions` URL parameters. The `Accept` header picks the response media type, which in turn
//! decides status codes (see `respond`). Every malformed request gets a 4xx and a GraphQL error.
//! CSRF prevention (`check_csrf`) also happens here, before the body is read.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderName};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Map, Value as Json};

use crate::error::{GraphQLError, codes};
use crate::operation::{GraphQLRequest, PipelineError};

/// The media type the response is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaType {
    /// `application/graphql-response+json`: request errors get 4xx statuses.
    GraphQLResponseJson,
    /// `application/json` (legacy): every GraphQL response is a 200.
    Json,
}

impl MediaType {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            MediaType::GraphQLResponseJson => "application/graphql-response+json; charset=utf-8",
            MediaType::Json => "application/json; charset=utf-8",
        }
    }
}

/// Chooses the response media type from `Accept`. No `Accept` (or only wildcards) means the
/// legacy `application/json`; asking only for types we cannot produce is a 406.
pub(crate) fn negotiate(headers: &HeaderMap) -> Result<MediaType, PipelineError> {
    let mut best: Option<(MediaType, f32)> = None;
    let mut saw_any = false;
    for value in headers.get_all(ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if media.is_empty() {
                continue;
            }
            saw_any = true;
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q <= 0.0 {
                continue;
            }
            let candidate = match media.as_str() {
                "application/graphql-response+json" => MediaType::GraphQLResponseJson,
                "application/json" | "application/*" | "*/*" => MediaType::Json,
                _ => continue,
            };
            // Higher q wins; on a tie the GraphQL media type wins over the legacy one.
            let better = match best {
                None => true,
                Some((current, current_q)) => {
                    q > current_q
                        || (q == current_q
                            && candidate == MediaType::GraphQLResponseJson
                            && current != candidate)
                }
            };
            if better {
                best = Some((candidate, q));
            }
        }
    }
    match best {
        Some((media, _)) => Ok(media),
        None if !saw_any => Ok(MediaType::Json),
        None => Err(PipelineError::bad_request(
            StatusCode::NOT_ACCEPTABLE,
            "The Accept header allows neither application/graphql-response+json nor application/json",
        )),
    }
}

/// Reads a GET request's URL parameters.
pub(crate) fn from_get(query_string: Option<&str>) -> Result<GraphQLRequest, PipelineError> {
    let mut query = None;
    let mut operation_name = None;
    let mut variables = None;
    let mut extensions = None;
    let mut document_id = None;
    for (key, value) in form_urlencoded::parse(query_string.unwrap_or("").as_bytes()) {
        let slot = match key.as_ref() {
            "query" => &mut query,
            "documentId" => &mut document_id,
            "operationName" => &mut operation_name,
            "variables" => &mut variables,
            "extensions" => &mut extensions,
            _ => continue,
        };
        if slot.is_some() {
            return Err(PipelineError::bad_request(
                StatusCode::BAD_REQUEST,
                format!("The `{key}` parameter is repeated"),
            ));
        }
        *slot = Some(value.into_owned());
    }
    let query = query.filter(|q| !q.trim().is_empty());
    let document_id = document_id.filter(|id| !id.is_empty());
    let parse_object =
        |name: &str, text: Option<String>| -> Result<Map<String, Json>, PipelineError> {
            match text.as_deref().map(str::trim) {
                None | Some("") | Some("null") => Ok(Map::new()),
                Some(text) => match serde_json::from_str::<Json>(text) {
                    Ok(Json::Object(map)) => Ok(map),
                    Ok(_) => Err(PipelineError::bad_request(
                        StatusCode::BAD_REQUEST,
                        format!("The `{name}` parameter must be a JSON object"),
                    )),
                    Err(_) => Err(PipelineError::bad_request(
                        StatusCode::BAD_REQUEST,
                        format!("The `{name}` parameter is not valid JSON"),
                    )),
                },
            }
        };
    let request = GraphQLRequest {
        query,
        document_id,
        operation_name: operation_name.filter(|n| !n.is_empty()),
        variables: parse_object("variables", variables)?,
        extensions: parse_object("extensions", extensions)?,
        is_get: true,
    };
    if !request.names_an_operation() {
        return Err(PipelineError::bad_request(
            StatusCode::BAD_REQUEST,
            "The `query` parameter is missing",
        ));
    }
    Ok(request)
}

/// Checks a POST's `Content-Type`: only JSON bodies are accepted.
pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), PipelineError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(PipelineError::bad_request(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "A POST needs `Content-Type: application/json`",
        ));
    };
    let media = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/json" {
        Ok(())
    } else {
        Err(PipelineError::bad_request(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type `{media}` is not supported; send `application/json`"),
        ))
    }
}

/// Parses a POST body (`{"query": ..., "operationName": ..., "variables": ..., "extensions": ...}`,
/// or `documentId` in place of `query`).
pub(crate) fn from_post(body: &Bytes) -> Result<GraphQLRequest, PipelineError> {
    // serde_json stops at 128 levels of nesting; a parser without a limit would overflow the
    // stack on `[[[[…` and take the process down.
    let parsed: Json = serde_json::from_slice(body).map_err(|_| {
        PipelineError::bad_request(
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON",
        )
    })?;
    let Json::Object(mut object) = parsed else {
        let message = if parsed.is_array() {
            "Batched requests are not supported; send one JSON object"
        } else {
            "The request body must be a JSON object"
        };
        return Err(PipelineError::bad_request(StatusCode::BAD_REQUEST, message));
    };
    let document_id = match object.remove("documentId") {
        None | Some(Json::Null) => None,
        Some(Json::String(id)) if !id.is_empty() => Some(id),
        Some(_) => {
            return Err(PipelineError::bad_request(
                StatusCode::BAD_REQUEST,
                "The `documentId` must be a non-empty string",
            ));
        }
    };
    let query = match object.remove("query") {
        Some(Json::String(q)) if !q.trim().is_empty() => Some(q),
        None | Some(Json::Null) => None,
        Some(Json::String(_)) => {
            return Err(PipelineError::bad_request(
                StatusCode::BAD_REQUEST,
                "The `query` is empty",
            ));
        }
        Some(_) => {
            return Err(PipelineError::bad_request(
                StatusCode::BAD_REQUEST,
                "The `query` must be a string",
            ));
        }
    };
    let operation_name = match object.remove("operationName") {
        None | Some(Json::Null) => None,
        Some(Json::String(name)) => Some(name).filter(|n| !n.is_empty()),
        Some(_) => {
            return Err(PipelineError::bad_request(
                StatusCode::BAD_REQUEST,
                "The `operationName` must be a string",
            ));
        }
    };
    let object_field = |value: Option<Json>, name: &str| match value {
        None | Some(Json::Null) => Ok(Map::new()),
        Some(Json::Object(map)) => Ok(map),
        Some(_) => Err(PipelineError::bad_request(
            StatusCode::BAD_REQUEST,
            format!("The `{name}` must be a JSON object"),
        )),
    };
    let request = GraphQLRequest {
        query,
        document_id,
        operation_name,
        variables: object_field(object.remove("variables"), "variables")?,
        extensions: object_field(object.remove("extensions"), "extensions")?,
        is_get: false,
    };
    if !request.names_an_operation() {
        return Err(PipelineError::bad_request(
            StatusCode::BAD_REQUEST,
            "The request has no `query`",
        ));
    }
    Ok(request)
}

/// CSRF prevention, as the established routers do it: a request a browser could send
/// cross-site without a CORS preflight (a GET, or a POST with no content type or a "simple"
/// one: `text/plain`, `application/x-www-form-urlencoded`, `multipart/form-data`) must carry
/// one of `required` headers, which no cross-site page can set without a preflight.
pub(crate) fn check_csrf(
    headers: &HeaderMap,
    required: &[HeaderName],
) -> Result<(), PipelineError> {
    let simple_content_type = match headers.get(CONTENT_TYPE) {
        None => true,
        Some(value) => {
            let media = value
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            matches!(
                media.as_str(),
                "" | "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data"
            )
        }
    };
    if !simple_content_type || required.iter().any(|name| headers.contains_key(name)) {
        return Ok(());
    }
    let names = required
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(" or ");
    Err(PipelineError::Request {
        status: StatusCode::BAD_REQUEST,
        error: GraphQLError::new(
            format!(
                "This request has been blocked as a possible cross-site request forgery: send \
                 `Content-Type: application/json`, or a {names} header"
            ),
            codes::CSRF_PREFLIGHT_REQUIRED,
        ),
    })
}

/// Methods other than GET and POST are refused before anything else.
pub(crate) fn check_method(method: &Method) -> Result<(), PipelineError> {
    if method == Method::GET || method == Method::POST {
        Ok(())
    } else {
        Err(PipelineError::bad_request(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Method {method} is not allowed; use GET or POST"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn negotiates_media_types() {
        assert_eq!(negotiate(&HeaderMap::new()).unwrap(), MediaType::Json);
        assert_eq!(negotiate(&accept("*/*")).unwrap(), MediaType::Json);
        assert_eq!(
            negotiate(&accept("application/json")).unwrap(),
            MediaType::Json
        );
        assert_eq!(
            negotiate(&accept("application/graphql-response+json")).unwrap(),
            MediaType::GraphQLResponseJson
        );
        assert_eq!(
            negotiate(&accept(
                "application/json, application/graphql-response+json"
            ))
            .unwrap(),
            MediaType::GraphQLResponseJson
        );
        assert_eq!(
            negotiate(&accept(
                "application/graphql-response+json;q=0.5, application/json"
            ))
            .unwrap(),
            MediaType::Json
        );
        let err = negotiate(&accept("text/html")).unwrap_err();
        assert_eq!(err.status(), StatusCode::NOT_ACCEPTABLE);
        assert!(negotiate(&accept("application/json;q=0")).is_err());
    }

    #[test]
    fn parses_post_bodies() {
        let request = from_post(&Bytes::from_static(
            br#"{"query":"{ a }","operationName":"Op","variables":{"x":1},"extensions":null}"#,
        ))
        .unwrap();
        assert_eq!(request.query.as_deref(), Some("{ a }"));
        assert_eq!(request.operation_name.as_deref(), Some("Op"));
        assert_eq!(request.variables.get("x"), Some(&Json::from(1)));
        assert!(!request.is_get);
    }

    #[test]
    fn deeply_nested_variables_are_a_bad_request_not_a_crash() {
        let depth = 200_000;
        let body = format!(
            r#"{{"query":"{{a}}","variables":{{"v":{}1{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let err = from_post(&Bytes::from(body)).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn rejects_malformed_post_bodies() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"42",
            b"{}",
            b"{\"query\":null}",
            b"{\"query\":1}",
            b"{\"query\":\"  \"}",
            b"{\"query\":\"{a}\",\"variables\":[1]}",
            b"{\"query\":\"{a}\",\"operationName\":3}",
        ] {
            let err = from_post(&Bytes::copy_from_slice(body)).unwrap_err();
            assert_eq!(
                err.status(),
                StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(err.code(), codes::BAD_REQUEST);
        }
    }

    #[test]
    fn parses_get_parameters() {
        let request = from_get(Some(
            "query=%7B%20a%20%7D&variables=%7B%22x%22%3A1%7D&operationName=Op",
        ))
        .unwrap();
        assert_eq!(request.query.as_deref(), Some("{ a }"));
        assert_eq!(request.variables.get("x"), Some(&Json::from(1)));
        assert_eq!(request.operation_name.as_deref(), Some("Op"));
        assert!(request.is_get);
        assert_eq!(
            from_get(None).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            from_get(Some("query={a}&variables=nope"))
                .unwrap_err()
                .status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            from_get(Some("query={a}&query={b}")).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn csrf_needs_a_preflight_header_on_simple_requests() {
        let required = [HeaderName::from_static("apollo-require-preflight")];
        let mut headers = HeaderMap::new();
        let err = check_csrf(&headers, &required).unwrap_err();
        assert_eq!(err.code(), codes::CSRF_PREFLIGHT_REQUIRED);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        assert!(check_csrf(&headers, &required).is_err());
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=x"),
        );
        assert!(check_csrf(&headers, &required).is_err());
        headers.insert("apollo-require-preflight", HeaderValue::from_static("true"));
        assert!(check_csrf(&headers, &required).is_ok());
        let mut json = HeaderMap::new();
        json.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(check_csrf(&json, &required).is_ok());
    }

    #[test]
    fn checks_content_type() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            check_content_type(&headers).unwrap_err().status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(check_content_type(&headers).is_ok());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(
            check_content_type(&headers).unwrap_err().status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
