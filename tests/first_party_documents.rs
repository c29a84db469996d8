//! The router's first-party manifest (`router/web/persisted-documents.json`) lists exactly the
//! operations Shippy's own clients send, generated from their source: the web UI's (listed by
//! `router/web/operations.js` through `router/web/list-operations.mjs`, run with node) and
//! `shippy demo`'s. The router trusts it beside any configured manifest, so the clients keep
//! working under `persisted_documents.only`. Regenerate with
//! `UPDATE_DOCUMENTS=1 cargo test --test first_party_documents`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The web UI's operations, as its own module enumerates them.
fn web_operations() -> Vec<String> {
    let script = root().join("router/web/list-operations.mjs");
    let output = Command::new("node")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("node {} could not run: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON array of operation texts")
}

fn expected_manifest() -> String {
    let mut texts: Vec<String> = web_operations();
    texts.extend(shippy::demo::OPERATIONS.iter().map(|t| t.to_string()));
    texts.sort();
    texts.dedup();
    let operations: Vec<Value> = texts
        .iter()
        .map(|body| {
            let kind = body.split_whitespace().next().unwrap_or("query");
            let name = body
                .split_whitespace()
                .nth(1)
                .map(|n| n.split(['(', '{']).next().unwrap_or(n).to_string());
            json!({ "id": shippy::demo::document_id(body), "body": body, "name": name, "type": kind })
        })
        .collect();
    let manifest = json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": operations,
    });
    serde_json::to_string_pretty(&manifest).unwrap() + "\n"
}

#[test]
fn the_first_party_manifest_is_current() {
    let path = root().join("router/web/persisted-documents.json");
    let expected = expected_manifest();
    if std::env::var_os("UPDATE_DOCUMENTS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} is stale: run `UPDATE_DOCUMENTS=1 cargo test --test first_party_documents`",
        path.display()
    );
}
