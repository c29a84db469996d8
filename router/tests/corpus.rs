//! The router's federation test corpus: small async-graphql subgraphs started in-process, the
//! supergraphs composed from them (committed under `tests/corpus/supergraphs/`), and checks whose
//! expected responses are derived by hand from each case's data. See `tests/corpus/README.md`.

#[path = "corpus/cases/mod.rs"]
mod cases;
#[path = "corpus/harness/mod.rs"]
mod harness;
#[path = "common/mock.rs"]
mod mock;

use harness::supergraph;

/// Checks (`case/check`) that fail against our router today, each a router bug the lead should
/// see. The case tests fail when a check listed here passes, or one not listed fails. Empty: the
/// last entry (a client variable named `$representations`) was fixed by renaming client variables
/// that collide with the planner's before planning.
pub const KNOWN_FAILURES: &[&str] = &[];

#[tokio::test]
async fn abstract_types() {
    cases::abstract_types::run().await;
}

#[tokio::test]
async fn aliases() {
    cases::aliases::run().await;
}

#[tokio::test]
async fn arguments() {
    cases::arguments::run().await;
}

#[tokio::test]
async fn entities() {
    cases::entities::run().await;
}

#[tokio::test]
async fn fed1() {
    cases::fed1::run().await;
}

#[tokio::test]
async fn inaccessible() {
    cases::inaccessible::run().await;
}

#[tokio::test]
async fn inaccessible_types() {
    cases::inaccessible_types::run().await;
}

#[tokio::test]
async fn interface_object() {
    cases::interface_object::run().await;
}

#[tokio::test]
async fn mutations() {
    cases::mutations::run().await;
}

#[tokio::test]
async fn nulls() {
    cases::nulls::run().await;
}

#[tokio::test]
async fn overrides() {
    cases::overrides::run().await;
}

#[tokio::test]
async fn provides() {
    cases::provides::run().await;
}

#[tokio::test]
async fn requires() {
    cases::requires::run().await;
}

#[tokio::test]
async fn shared_root() {
    cases::shared_root::run().await;
}

#[tokio::test]
async fn skip_include() {
    cases::skip_include::run().await;
}

/// Every case's committed SDL equals what its async-graphql schemas export now, and every
/// committed supergraph was composed from exactly that SDL. With `CORPUS_UPDATE=1` the SDL files
/// are rewritten instead; then run `npm --prefix router/tests/corpus run compose`.
#[test]
fn supergraphs_are_fresh() {
    let update = std::env::var_os("CORPUS_UPDATE").is_some();
    let mut problems = Vec::new();
    for (case, subgraphs) in cases::ALL {
        let mut exported = Vec::new();
        for subgraph in subgraphs() {
            let sdl = subgraph.exported_sdl();
            let path = supergraph::sdl_path(case, subgraph.name());
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                if std::fs::read_to_string(&path).ok().as_deref() != Some(sdl.as_str()) {
                    std::fs::write(&path, &sdl).unwrap();
                }
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(sdl.as_str()) {
                problems.push(format!("{} differs from the exported SDL", path.display()));
            }
            exported.push((subgraph.name().to_owned(), sdl));
        }
        let names: Vec<String> = exported
            .iter()
            .map(|(n, _)| format!("{n}.graphql"))
            .collect();
        if let Ok(entries) = std::fs::read_dir(supergraph::dir().join(case)) {
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                if !names.contains(&file) {
                    if update {
                        std::fs::remove_file(entry.path()).unwrap();
                    } else {
                        problems.push(format!("{case}/{file} belongs to no subgraph of the case"));
                    }
                }
            }
        }
        let digest = supergraph::inputs_digest(&mut exported);
        let path = supergraph::supergraph_path(case);
        match std::fs::read_to_string(&path) {
            Ok(text) if supergraph::recorded_digest(&text) == Some(digest.as_str()) => {}
            Ok(_) => problems.push(format!("{} is stale", path.display())),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    if !problems.is_empty() && !update {
        panic!(
            "{}\n\nRegenerate: CORPUS_UPDATE=1 cargo test -p shippy-router --test corpus supergraphs_are_fresh; \
             npm --prefix router/tests/corpus ci; npm --prefix router/tests/corpus run compose",
            problems.join("\n")
        );
    }
}

/// Every `KNOWN_FAILURES` entry names a case of the corpus (entries of a case are checked
/// against its checks when it runs).
#[test]
fn known_failures_name_cases() {
    for id in KNOWN_FAILURES {
        let case = id.split('/').next().unwrap_or_default();
        assert!(
            cases::ALL.iter().any(|(name, _)| *name == case),
            "KNOWN_FAILURES entry {id} names no case"
        );
    }
}
