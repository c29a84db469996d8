//! `schema/<name>.graphql` must be exactly what each subgraph exports; `cargo run -- schema export` fixes it.

use shippy::services::SUBGRAPHS;

#[test]
fn committed_sdl_matches_the_subgraphs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut drifted = Vec::new();
    for subgraph in SUBGRAPHS {
        let path = format!("{root}/schema/{}.graphql", subgraph.name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != (subgraph.sdl)() {
            drifted.push(path);
        }
    }
    assert!(
        drifted.is_empty(),
        "schema drift in {drifted:?}: run `cargo run -- schema export` and commit the result"
    );
}

#[test]
fn every_subgraph_declares_federation_v2() {
    for subgraph in SUBGRAPHS {
        let sdl = (subgraph.sdl)();
        assert!(
            sdl.contains("@link(") && sdl.contains("https://specs.apollo.dev/federation/v2"),
            "{}",
            subgraph.name
        );
        assert!(
            sdl.contains("@key(fields: \"id\")"),
            "{} has no entity",
            subgraph.name
        );
    }
}
