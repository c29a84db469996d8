//! The committed supergraphs: where they live, how their subgraph URLs are pointed at the
//! running subgraphs, and how their freshness against the subgraphs' SDL is proven.
//!
//! `compose.mjs` composes `supergraphs/<case>/*.graphql` (the SDL async-graphql exports, written
//! by the `sdl_is_fresh` test with `CORPUS_UPDATE=1`) into `supergraphs/<case>.supergraph.graphql`
//! and writes, as its first line, the SHA-256 of its inputs. The freshness test recomputes that
//! digest from the schemas in the code, so a stale supergraph fails without node.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Prefix of a composed supergraph's first line; the digest follows it.
pub const DIGEST_PREFIX: &str = "# corpus-inputs-sha256: ";

/// The directory holding the exported SDL and composed supergraphs.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/supergraphs")
}

/// `supergraphs/<case>.supergraph.graphql`
pub fn supergraph_path(case: &str) -> PathBuf {
    dir().join(format!("{case}.supergraph.graphql"))
}

/// `supergraphs/<case>/<subgraph>.graphql`
pub fn sdl_path(case: &str, subgraph: &str) -> PathBuf {
    dir().join(case).join(format!("{subgraph}.graphql"))
}

/// The digest `compose.mjs` records: SHA-256 over `name\nsdl\n` of each subgraph, by name.
/// Keep in step with `inputsDigest` in `compose.mjs`.
pub fn inputs_digest(subgraphs: &mut [(String, String)]) -> String {
    subgraphs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    for (name, sdl) in subgraphs.iter() {
        hasher.update(name.as_bytes());
        hasher.update(b"\n");
        hasher.update(sdl.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The digest recorded in a composed supergraph's first line.
pub fn recorded_digest(supergraph: &str) -> Option<&str> {
    supergraph
        .lines()
        .next()?
        .strip_prefix(DIGEST_PREFIX)
        .map(str::trim)
}

/// Points subgraph `name`'s `@join__graph(url:)` at `url`.
pub fn rewrite_url(supergraph: &str, name: &str, url: &str) -> Result<String, String> {
    let needle = format!("@join__graph(name: \"{name}\", url: \"");
    let start = supergraph
        .find(&needle)
        .ok_or_else(|| format!("supergraph has no join__Graph named {name:?}"))?
        + needle.len();
    let end = start
        + supergraph[start..]
            .find('"')
            .ok_or_else(|| format!("unterminated url of join__Graph {name:?}"))?;
    Ok(format!(
        "{}{url}{}",
        &supergraph[..start],
        &supergraph[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_named_graph() {
        let sdl = "enum join__Graph {\n  A @join__graph(name: \"a\", url: \"http://a.corpus.invalid/graphql\")\n  AB @join__graph(name: \"ab\", url: \"http://ab.corpus.invalid/graphql\")\n}";
        let out = rewrite_url(sdl, "a", "http://127.0.0.1:1/graphql").unwrap();
        assert!(out.contains("name: \"a\", url: \"http://127.0.0.1:1/graphql\""));
        assert!(out.contains("name: \"ab\", url: \"http://ab.corpus.invalid/graphql\""));
        assert!(rewrite_url(sdl, "c", "x").is_err());
    }

    #[test]
    fn digest_ignores_input_order() {
        let mut one = vec![("b".into(), "y".into()), ("a".into(), "x".into())];
        let mut two = vec![("a".into(), "x".into()), ("b".into(), "y".into())];
        assert_eq!(inputs_digest(&mut one), inputs_digest(&mut two));
        let mut three = vec![("a".into(), "x".into()), ("b".into(), "z".into())];
        assert_ne!(inputs_digest(&mut one), inputs_digest(&mut three));
    }
}
