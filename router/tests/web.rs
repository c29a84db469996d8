//! The router's browser side over HTTP: the web UI and its assets (content types, ETags, CSP), the
//! playground only for browser page loads of the GraphQL endpoint, the on/off switches, and the
//! vendored GraphiQL files being exactly what the lockfile installs.

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use shippy_router::{Router, RouterConfig};
use tower::ServiceExt;

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn app(configure: impl FnOnce(&mut RouterConfig)) -> axum::Router {
    let sdl = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/bench.supergraph.graphql"
    ))
    .unwrap();
    let mut config = RouterConfig::default();
    configure(&mut config);
    Router::from_supergraph_sdl(&sdl, config).unwrap().app()
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn get(app: &axum::Router, uri: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

#[tokio::test]
async fn the_ui_and_its_assets_are_served_with_types_etags_and_csp() {
    let app = app(|_| {});
    let index = get(&app, "/", &[]).await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(
        index.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert!(
        index
            .body
            .contains("<script src=\"/assets/app.js\" type=\"module\">")
    );
    let csp = index.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");

    for (path, content_type) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        (
            "/assets/graphql-client.js",
            "text/javascript; charset=utf-8",
        ),
        ("/assets/style.css", "text/css; charset=utf-8"),
        ("/assets/graphiql.min.js", "text/javascript; charset=utf-8"),
        ("/assets/graphiql.min.css", "text/css; charset=utf-8"),
    ] {
        let asset = get(&app, path, &[]).await;
        assert_eq!(asset.status, StatusCode::OK, "{path}");
        assert_eq!(asset.headers[header::CONTENT_TYPE], content_type, "{path}");
        assert_eq!(asset.headers[header::CACHE_CONTROL], "no-cache", "{path}");
        let etag = asset.headers[header::ETAG].to_str().unwrap().to_owned();
        // The browser's copy is current: no body again.
        let revalidated = get(&app, path, &[("if-none-match", &etag)]).await;
        assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(revalidated.body.is_empty());
    }
    assert_eq!(
        get(&app, "/assets/nothing.js", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    // The pages are not served as assets, and nothing outside /assets/ is.
    assert_eq!(
        get(&app, "/assets/index.html", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/assets/../Cargo.toml", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn browsers_get_the_playground_and_graphql_clients_get_graphql() {
    let app = app(|_| {});
    let page = get(&app, "/graphql", &[("accept", BROWSER_ACCEPT)]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert!(page.headers.contains_key(header::CONTENT_SECURITY_POLICY));
    // Every asset from the router itself: no CDN.
    assert!(page.body.contains("/assets/graphiql.min.js"));
    assert!(!page.body.contains("https://"), "{}", page.body);

    // A GraphQL GET, even from a browser, is a GraphQL request.
    let query = get(
        &app,
        "/graphql?query=%7B__typename%7D",
        &[
            ("accept", BROWSER_ACCEPT),
            ("apollo-require-preflight", "1"),
        ],
    )
    .await;
    assert_ne!(
        query
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap()),
        Some("text/html; charset=utf-8")
    );
    let json = get(
        &app,
        "/graphql?query=%7B__typename%7D",
        &[
            ("accept", "application/json"),
            ("apollo-require-preflight", "1"),
        ],
    )
    .await;
    assert_eq!(json.status, StatusCode::OK);
    assert_eq!(json.body, r#"{"data":{"__typename":"Query"}}"#);
    // A GET without a query and without HTML is still the endpoint's error, not the page.
    let bare = get(&app, "/graphql", &[("accept", "application/json")]).await;
    assert_eq!(bare.status, StatusCode::BAD_REQUEST);
    // The playground only answers on the GraphQL path.
    let elsewhere = get(&app, "/somewhere", &[("accept", BROWSER_ACCEPT)]).await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_ui_and_the_playground_can_be_turned_off() {
    let app = app(|config| {
        config.http.ui = false;
        config.http.playground = false;
    });
    assert_eq!(get(&app, "/", &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, "/assets/app.js", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    let page = get(&app, "/graphql", &[("accept", BROWSER_ACCEPT)]).await;
    assert_ne!(page.status, StatusCode::OK);

    // The playground alone: its files, not the UI's.
    let app = self::app(|config| config.http.ui = false);
    assert_eq!(get(&app, "/", &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, "/assets/app.js", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/assets/playground.js", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, "/graphql", &[("accept", BROWSER_ACCEPT)])
            .await
            .status,
        StatusCode::OK
    );
}

/// `npm ci` of router/web/vendor/package-lock.json into a scratch directory must install exactly the
/// files vendored next to it (needs node and npm, and the npm registry or its cache).
#[test]
fn vendored_graphiql_matches_the_lockfile() {
    let vendor = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/vendor");
    let scratch = tempfile::tempdir().unwrap();
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(vendor.join(file), scratch.path().join(file)).unwrap();
    }
    let install = std::process::Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(scratch.path())
        .output()
        .expect("npm runs (install Node.js and npm)");
    assert!(
        install.status.success(),
        "npm ci failed: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let check = std::process::Command::new("node")
        .arg(vendor.join("sync.mjs"))
        .arg("--check")
        .arg(scratch.path().join("node_modules"))
        .output()
        .expect("node runs");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
