//! The router's browser side: the Shippy web UI at `/` with its files under `/assets/`, and the
//! GraphiQL playground on `GET <graphql_path>` for browsers (`Accept: text/html`).
//!
//! Everything is embedded in the binary (`router/web/`, plain ES modules with no build step, and
//! the pinned GraphiQL/React builds in `router/web/vendor/`), so neither needs Node nor the
//! internet at run time. Every file is served with an `ETag` (its content hash) and
//! `Cache-Control: no-cache`, so browsers revalidate cheaply and never run a stale UI after an
//! upgrade; pages carry a Content-Security-Policy that allows only this origin.

use axum::{
    body::Body,
    extract::{Path, Request},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use std::sync::LazyLock;

use crate::config::HttpConfig;

/// Which feature a file belongs to: it is served only while that feature is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Ui,
    Playground,
    /// Used by both (the GraphQL client).
    Both,
    /// A page, served at its own path rather than under `/assets/`.
    Page,
}

struct Asset {
    name: &'static str,
    content_type: &'static str,
    part: Part,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

/// The files under `/assets/`.
static ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: HTML,
        part: Part::Page,
        body: include_bytes!("../../web/index.html"),
    },
    Asset {
        name: "playground.html",
        content_type: HTML,
        part: Part::Page,
        body: include_bytes!("../../web/playground.html"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        part: Part::Ui,
        body: include_bytes!("../../web/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: CSS,
        part: Part::Ui,
        body: include_bytes!("../../web/style.css"),
    },
    Asset {
        name: "graphql-client.js",
        content_type: JS,
        part: Part::Both,
        body: include_bytes!("../../web/graphql-client.js"),
    },
    Asset {
        name: "operations.js",
        content_type: JS,
        part: Part::Ui,
        body: include_bytes!("../../web/operations.js"),
    },
    Asset {
        // The first-party manifest: the client sends these operations by id.
        name: "persisted-documents.json",
        content_type: JSON,
        part: Part::Both,
        body: include_bytes!("../../web/persisted-documents.json"),
    },
    Asset {
        name: "playground.js",
        content_type: JS,
        part: Part::Playground,
        body: include_bytes!("../../web/playground.js"),
    },
    Asset {
        name: "playground.css",
        content_type: CSS,
        part: Part::Playground,
        body: include_bytes!("../../web/playground.css"),
    },
    Asset {
        name: "graphiql.min.js",
        content_type: JS,
        part: Part::Playground,
        body: include_bytes!("../../web/vendor/graphiql.min.js"),
    },
    Asset {
        name: "graphiql.min.css",
        content_type: CSS,
        part: Part::Playground,
        body: include_bytes!("../../web/vendor/graphiql.min.css"),
    },
    Asset {
        name: "react.production.min.js",
        content_type: JS,
        part: Part::Playground,
        body: include_bytes!("../../web/vendor/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JS,
        part: Part::Playground,
        body: include_bytes!("../../web/vendor/react-dom.production.min.js"),
    },
];

/// The content hash of each of [`ASSETS`], a strong `ETag`; computed once, since hashing a few
/// MB per request would be wasteful.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(a.body)))
        .collect()
});

fn asset(part: Part, name: &str) -> Option<(&'static Asset, &'static str)> {
    let index = ASSETS
        .iter()
        .position(|a| a.part == part && a.name == name)?;
    Some((&ASSETS[index], ETAGS[index].as_str()))
}

/// Only this origin, for scripts, styles, fetches and WebSockets (CSP level 3 `'self'` covers
/// `ws:`/`wss:` to the same host). GraphiQL's CodeMirror and React set styles through the CSSOM,
/// which `style-src` does not restrict, and its fonts and icons are `data:` URLs in its CSS.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// `/` and `/assets/{name}`, for the parts that are on. Empty when both are off.
pub(crate) fn routes(http: &HttpConfig) -> axum::Router {
    let (ui, playground) = (http.ui, http.playground);
    let mut router = axum::Router::new();
    if ui || playground {
        router = router.route(
            "/assets/{name}",
            get(
                move |Path(name): Path<String>, headers: HeaderMap| async move {
                    let served = [
                        (Part::Ui, ui),
                        (Part::Playground, playground),
                        (Part::Both, true),
                    ];
                    match served
                        .iter()
                        .filter(|(_, on)| *on)
                        .find_map(|(part, _)| asset(*part, &name))
                    {
                        Some(found) => file(found, &headers),
                        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
                    }
                },
            ),
        );
    }
    if ui {
        router = router.route(
            "/",
            get(|headers: HeaderMap| async move { page("index.html", &headers) }),
        );
    }
    router
}

/// Answers browser page loads of the GraphQL endpoint with the playground and passes every other
/// request (GraphQL GETs and POSTs, WebSocket upgrades) on to the endpoint. For `route_layer` on the
/// GraphQL route, so unmatched paths still get a 404.
pub(crate) async fn playground(request: Request, next: Next) -> Response {
    if wants_playground(&request) {
        return page("playground.html", request.headers());
    }
    next.run(request).await
}

/// A browser navigating to the endpoint: a GET that accepts HTML, is not a WebSocket upgrade and
/// carries no `query` parameter (a GET with one is a GraphQL request whatever its `Accept`).
fn wants_playground(request: &Request) -> bool {
    let headers = request.headers();
    request.method() == Method::GET
        && !headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|media| {
                media
                    .split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
            })
        && !request.uri().query().is_some_and(|query| {
            form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == "query")
        })
}

/// An HTML page, with the security headers pages need.
fn page(name: &str, request: &HeaderMap) -> Response {
    let Some(found) = asset(Part::Page, name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = file(found, request);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// An embedded file, or `304 Not Modified` when the browser's copy (`If-None-Match`) is current.
fn file((asset, etag): (&'static Asset, &'static str), request: &HeaderMap) -> Response {
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let status = if fresh {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if !fresh {
        response = response.header(header::CONTENT_TYPE, asset.content_type);
    }
    let body = if fresh {
        Body::empty()
    } else {
        Body::from(asset.body)
    };
    response
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str, accept: Option<&str>, upgrade: bool) -> Request {
        let mut builder = http::Request::builder().method(Method::GET).uri(uri);
        if let Some(accept) = accept {
            builder = builder.header(header::ACCEPT, accept);
        }
        if upgrade {
            builder = builder
                .header(header::UPGRADE, "websocket")
                .header(header::CONNECTION, "upgrade");
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn only_browser_page_loads_get_the_playground() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_playground(&get("/graphql", Some(browser), false)));
        assert!(wants_playground(&get("/graphql", Some("TEXT/HTML"), false)));
        // A GraphQL GET, a WebSocket upgrade, a JSON client, no Accept at all.
        assert!(!wants_playground(&get(
            "/graphql?query=%7B__typename%7D",
            Some(browser),
            false
        )));
        assert!(!wants_playground(&get("/graphql", Some(browser), true)));
        assert!(!wants_playground(&get(
            "/graphql",
            Some("application/graphql-response+json, application/json"),
            false
        )));
        assert!(!wants_playground(&get("/graphql", None, false)));
        let mut post = get("/graphql", Some(browser), false);
        *post.method_mut() = Method::POST;
        assert!(!wants_playground(&post));
    }

    #[test]
    fn every_asset_name_is_unique() {
        let mut names: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
    }

    #[test]
    fn etags_follow_content_and_match_if_none_match() {
        let index = asset(Part::Page, "index.html").unwrap();
        let playground = asset(Part::Page, "playground.html").unwrap();
        assert_ne!(index.1, playground.1);
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(index.1));
        let cached = file(index, &headers);
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(cached.headers()[header::ETAG], index.1);
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"0\", W/\"1\""),
        );
        assert_eq!(file(index, &headers).status(), StatusCode::OK);
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"0\", W/{}", index.1)).unwrap(),
        );
        assert_eq!(file(index, &headers).status(), StatusCode::NOT_MODIFIED);
    }
}
