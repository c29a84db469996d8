//! Stage before `parse`: the query text of a request, which a client may send as text, as a
//! trusted document's id (`documentId`, from the manifest) or as an automatic persisted query's
//! hash (`extensions.persistedQuery.sha256Hash`, from the manifest or the APQ store). With
//! `persisted_documents.only` this is also where the safelist is enforced.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue, StatusCode};
use quick_cache::sync::Cache;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use super::{GraphQLRequest, PipelineError};
use crate::config::PersistedDocumentsConfig;
use crate::error::{GraphQLError, codes};
use crate::fetch::{FetchError, Fetched, RemoteDocument, SourceError};

/// Manifests bigger than this are refused (a client build's manifest is a few MiB at most).
const MAX_MANIFEST_SIZE: usize = 64 * 1024 * 1024;

/// The operations of Shippy's own clients (the web UI and `shippy demo`), generated from their
/// source (`tests/first_party_documents.rs` checks it is current).
const FIRST_PARTY: &[u8] = include_bytes!("../../web/persisted-documents.json");

/// Why a manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The URL cannot be used (at start-up).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// One fetch failed (the manifest held keeps serving).
    #[error("{0}")]
    Fetch(String),
    /// The content is not a manifest.
    #[error("not a persisted document manifest: {0}")]
    Format(String),
    /// `manifest_auth_header` is not a valid header.
    #[error("`persisted_documents.manifest_auth_header` is not a valid header")]
    AuthHeader,
}

impl From<FetchError> for ManifestError {
    fn from(error: FetchError) -> Self {
        ManifestError::Fetch(error.to_string())
    }
}

/// Documents by id, and the set of their texts (a listed text sent as text is trusted too).
#[derive(Default)]
pub(crate) struct Manifest {
    by_id: HashMap<String, Arc<str>>,
    texts: HashSet<Arc<str>>,
}

impl Manifest {
    /// Parses Apollo's `apollo-persisted-query-manifest` format or a plain `{ id: document }` map.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let format = |message: String| ManifestError::Format(message);
        let json: Json = serde_json::from_slice(bytes).map_err(|e| format(e.to_string()))?;
        let Json::Object(object) = json else {
            return Err(format("the manifest must be a JSON object".into()));
        };
        let mut entries = Vec::new();
        if object.get("format").and_then(Json::as_str) == Some("apollo-persisted-query-manifest") {
            if object.get("version").and_then(Json::as_u64) != Some(1) {
                return Err(format("only version 1 of Apollo's format is known".into()));
            }
            let operations = object
                .get("operations")
                .and_then(Json::as_array)
                .ok_or_else(|| format("no `operations` array".into()))?;
            for (index, operation) in operations.iter().enumerate() {
                let field = |name: &str| {
                    operation.get(name).and_then(Json::as_str).ok_or_else(|| {
                        format(format!("operations[{index}] has no `{name}` string"))
                    })
                };
                entries.push((field("id")?.to_string(), field("body")?.to_string()));
            }
        } else {
            for (id, document) in object {
                let Json::String(document) = document else {
                    return Err(format(format!("the document of `{id}` is not a string")));
                };
                entries.push((id, document));
            }
        }
        let mut manifest = Manifest::default();
        for (id, document) in entries {
            if id.is_empty() || document.trim().is_empty() {
                return Err(format("an id or a document is empty".into()));
            }
            let document: Arc<str> = manifest
                .texts
                .get(document.as_str())
                .cloned()
                .unwrap_or_else(|| Arc::from(document));
            manifest.texts.insert(Arc::clone(&document));
            if manifest.by_id.insert(id.clone(), document).is_some() {
                return Err(format(format!("the id `{id}` is listed twice")));
            }
        }
        Ok(manifest)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// Where the manifest comes from, with what is needed to notice a change.
enum Source {
    File {
        path: PathBuf,
        modified: std::sync::Mutex<Option<SystemTime>>,
    },
    Url(Box<RemoteDocument>),
}

/// What a refresh did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refreshed {
    /// A new manifest with this many documents replaced the old one.
    Loaded(usize),
    /// The source has not changed.
    Unchanged,
}

/// The query text a request resolved to.
pub(crate) struct Resolved<'r> {
    pub(crate) text: Text<'r>,
    /// From the manifest (by id, hash or identical text): allowed by the safelist. A text is
    /// looked up in the manifest only under `only`, where this decides.
    pub(crate) trusted: bool,
}

/// A resolved query text: the request's own (not copied: this is every plain request's path) or
/// a stored document.
pub(crate) enum Text<'r> {
    Request(&'r str),
    Stored(Arc<str>),
}

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Text::Request(text) => text,
            Text::Stored(text) => text,
        }
    }
}

/// Trusted documents and the APQ store, shared by every transport.
pub(crate) struct PersistedDocuments {
    config: PersistedDocumentsConfig,
    source: Option<Source>,
    manifest: ArcSwap<Manifest>,
    /// Shippy's own clients' documents (`persisted_documents.first_party`), trusted beside the
    /// manifest.
    first_party: Manifest,
    apq: Option<Cache<String, Arc<str>>>,
}

/// An `extensions.persistedQuery`, checked.
struct PersistedQuery {
    sha256: String,
}

impl PersistedDocuments {
    /// Sets up from the configuration. A manifest file is read now (a missing or malformed one
    /// stops the start); a manifest URL is fetched by the first [`PersistedDocuments::refresh`].
    pub(crate) fn new(
        config: &PersistedDocumentsConfig,
    ) -> Result<PersistedDocuments, ManifestError> {
        let source = match config.manifest.as_deref() {
            None => None,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                let mut document =
                    RemoteDocument::new(url, config.manifest_timeout, MAX_MANIFEST_SIZE)?;
                if let Some(header) = &config.manifest_auth_header {
                    let (name, value) = header.split_once(':').ok_or(ManifestError::AuthHeader)?;
                    let name = HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
                        .map_err(|_| ManifestError::AuthHeader)?;
                    let value = HeaderValue::from_str(value.trim())
                        .map_err(|_| ManifestError::AuthHeader)?;
                    document = document.with_auth_header(name, value);
                }
                Some(Source::Url(Box::new(document)))
            }
            Some(path) => Some(Source::File {
                path: PathBuf::from(path),
                modified: std::sync::Mutex::new(None),
            }),
        };
        let documents = PersistedDocuments {
            config: config.clone(),
            source,
            manifest: ArcSwap::from_pointee(Manifest::default()),
            first_party: if config.first_party {
                Manifest::parse(FIRST_PARTY)?
            } else {
                Manifest::default()
            },
            apq: config
                .apq_enabled()
                .then(|| Cache::new(config.apq_max_entries)),
        };
        if let Some(Source::File { .. }) = &documents.source {
            documents.refresh_file()?;
        }
        Ok(documents)
    }

    /// Whether there is a manifest to keep fresh.
    pub(crate) fn has_manifest(&self) -> bool {
        self.source.is_some()
    }

    pub(crate) fn refresh_interval(&self) -> std::time::Duration {
        self.config.manifest_refresh_interval
    }

    pub(crate) fn only(&self) -> bool {
        self.config.only
    }

    pub(crate) fn allow_introspection(&self) -> bool {
        self.config.allow_introspection
    }

    /// Loads the manifest again if its source changed. On an error the manifest held keeps
    /// serving.
    pub(crate) async fn refresh(&self) -> Result<Refreshed, ManifestError> {
        match &self.source {
            None => Ok(Refreshed::Unchanged),
            Some(Source::File { .. }) => self.refresh_file(),
            Some(Source::Url(document)) => match document.fetch().await? {
                Fetched::NotModified => Ok(Refreshed::Unchanged),
                Fetched::Changed(body) => Ok(self.install(Manifest::parse(&body)?)),
            },
        }
    }

    fn refresh_file(&self) -> Result<Refreshed, ManifestError> {
        let Some(Source::File { path, modified }) = &self.source else {
            return Ok(Refreshed::Unchanged);
        };
        let read = |source| ManifestError::Read {
            path: path.clone(),
            source,
        };
        let now = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(read)?;
        let mut seen = modified.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == Some(now) {
            return Ok(Refreshed::Unchanged);
        }
        let manifest = Manifest::parse(&std::fs::read(path).map_err(read)?)?;
        *seen = Some(now);
        Ok(self.install(manifest))
    }

    fn by_id<'m>(&'m self, manifest: &'m Manifest, id: &str) -> Option<&'m Arc<str>> {
        manifest
            .by_id
            .get(id)
            .or_else(|| self.first_party.by_id.get(id))
    }

    /// The listed document identical to `text`, looked up only under `only` (where it decides
    /// whether the text runs): hashing every query text twice is not worth it otherwise.
    fn listed_text<'m>(&'m self, manifest: &'m Manifest, text: &str) -> Option<&'m Arc<str>> {
        if !self.config.only {
            return None;
        }
        manifest
            .texts
            .get(text)
            .or_else(|| self.first_party.texts.get(text))
    }

    fn install(&self, manifest: Manifest) -> Refreshed {
        let count = manifest.len();
        metrics::gauge!("shippy_router_persisted_documents").set(count as f64);
        self.manifest.store(Arc::new(manifest));
        Refreshed::Loaded(count)
    }

    /// The text `request` asks to run. Errors are `PERSISTED_QUERY_NOT_FOUND` (unknown id or
    /// hash: an APQ client then sends the text), `PERSISTED_QUERY_HASH_MISMATCH`,
    /// `PERSISTED_QUERY_NOT_SUPPORTED` (a hash alone with APQ off and no manifest) and
    /// `PERSISTED_QUERY_NOT_IN_LIST` is decided by the caller (it may allow introspection).
    pub(crate) fn resolve<'r>(
        &self,
        request: &'r GraphQLRequest,
    ) -> Result<Resolved<'r>, PipelineError> {
        let persisted = persisted_query(&request.extensions)?;
        let manifest = self.manifest.load();
        let outcome = |name: &'static str| {
            metrics::counter!("shippy_router_persisted_documents_total", "outcome" => name)
                .increment(1);
        };
        match (&request.document_id, persisted, &request.query) {
            (Some(_), _, Some(_)) => Err(PipelineError::bad_request(
                StatusCode::BAD_REQUEST,
                "Send either `documentId` or `query`, not both",
            )),
            (Some(id), _, None) => match self.by_id(&manifest, id) {
                Some(text) => {
                    outcome("manifest");
                    Ok(trusted(text))
                }
                None => {
                    outcome("not_found");
                    Err(not_found(format!(
                        "No persisted document has the id `{id}`"
                    )))
                }
            },
            (None, Some(persisted), None) => {
                if let Some(text) = self.by_id(&manifest, &persisted.sha256) {
                    outcome("manifest");
                    return Ok(trusted(text));
                }
                match &self.apq {
                    Some(apq) => match apq.get(&persisted.sha256) {
                        Some(text) => {
                            outcome("apq_hit");
                            Ok(Resolved {
                                text: Text::Stored(text),
                                trusted: false,
                            })
                        }
                        None => {
                            outcome("apq_miss");
                            Err(not_found("PersistedQueryNotFound".to_string()))
                        }
                    },
                    None if self.source.is_some() || self.config.only => {
                        outcome("not_found");
                        Err(not_found(format!(
                            "No persisted document has the hash `{}`",
                            persisted.sha256
                        )))
                    }
                    None => Err(PipelineError::rejected(
                        StatusCode::BAD_REQUEST,
                        GraphQLError::new(
                            "Persisted queries are not enabled on this router; send the query text",
                            codes::PERSISTED_QUERY_NOT_SUPPORTED,
                        ),
                    )),
                }
            }
            (None, Some(persisted), Some(text)) => {
                if sha256_hex(text) != persisted.sha256 {
                    return Err(PipelineError::rejected(
                        StatusCode::BAD_REQUEST,
                        GraphQLError::new(
                            "The persisted query hash is not the SHA-256 of the query",
                            codes::PERSISTED_QUERY_HASH_MISMATCH,
                        ),
                    ));
                }
                if let Some(listed) = self.listed_text(&manifest, text) {
                    return Ok(trusted(listed));
                }
                if let Some(apq) = &self.apq {
                    outcome("apq_registered");
                    apq.insert(persisted.sha256, Arc::from(text.as_str()));
                }
                Ok(Resolved {
                    text: Text::Request(text),
                    trusted: false,
                })
            }
            (None, None, Some(text)) => Ok(match self.listed_text(&manifest, text) {
                Some(listed) => trusted(listed),
                None => Resolved {
                    text: Text::Request(text),
                    trusted: false,
                },
            }),
            (None, None, None) => Err(PipelineError::bad_request(
                StatusCode::BAD_REQUEST,
                "The request has no `query`",
            )),
        }
    }
}

fn trusted(text: &Arc<str>) -> Resolved<'static> {
    Resolved {
        text: Text::Stored(Arc::clone(text)),
        trusted: true,
    }
}

fn not_found(message: String) -> PipelineError {
    PipelineError::rejected(
        StatusCode::BAD_REQUEST,
        GraphQLError::new(message, codes::PERSISTED_QUERY_NOT_FOUND),
    )
}

/// The refusal of an operation the safelist does not hold.
pub(crate) fn not_in_list() -> PipelineError {
    metrics::counter!("shippy_router_persisted_documents_total", "outcome" => "refused")
        .increment(1);
    PipelineError::rejected(
        StatusCode::BAD_REQUEST,
        GraphQLError::new(
            "This router only runs trusted documents: send a `documentId` from the manifest",
            codes::PERSISTED_QUERY_NOT_IN_LIST,
        ),
    )
}

/// Reads `extensions.persistedQuery` (`{"version": 1, "sha256Hash": "<64 hex digits>"}`).
fn persisted_query(
    extensions: &Map<String, Json>,
) -> Result<Option<PersistedQuery>, PipelineError> {
    let bad = |message: &str| PipelineError::bad_request(StatusCode::BAD_REQUEST, message);
    let Some(value) = extensions.get("persistedQuery") else {
        return Ok(None);
    };
    let Json::Object(object) = value else {
        return Err(bad("`extensions.persistedQuery` must be an object"));
    };
    if object.get("version").and_then(Json::as_u64) != Some(1) {
        return Err(bad("`extensions.persistedQuery.version` must be 1"));
    }
    let Some(hash) = object.get("sha256Hash").and_then(Json::as_str) else {
        return Err(bad(
            "`extensions.persistedQuery.sha256Hash` must be a string",
        ));
    };
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(
            "`extensions.persistedQuery.sha256Hash` must be 64 hexadecimal digits",
        ));
    }
    Ok(Some(PersistedQuery {
        sha256: hash.to_ascii_lowercase(),
    }))
}

fn sha256_hex(text: &str) -> String {
    use std::fmt::Write;
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: Option<&str>, document_id: Option<&str>, extensions: Json) -> GraphQLRequest {
        GraphQLRequest {
            query: query.map(str::to_string),
            document_id: document_id.map(str::to_string),
            operation_name: None,
            variables: Map::new(),
            extensions: match extensions {
                Json::Object(map) => map,
                _ => Map::new(),
            },
            is_get: false,
        }
    }

    /// What a request resolved to, owned.
    struct Got {
        text: String,
        trusted: bool,
    }

    fn ok(documents: &PersistedDocuments, request: GraphQLRequest) -> Got {
        let resolved = documents.resolve(&request).unwrap();
        Got {
            text: resolved.text.to_string(),
            trusted: resolved.trusted,
        }
    }

    fn apq(hash: &str) -> Json {
        serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
    }

    fn code(error: &PipelineError) -> &str {
        error.code()
    }

    fn with_manifest(json: &str, only: bool) -> PersistedDocuments {
        let documents = PersistedDocuments::new(&PersistedDocumentsConfig {
            only,
            ..PersistedDocumentsConfig::default()
        })
        .unwrap();
        documents.install(Manifest::parse(json.as_bytes()).unwrap());
        documents
    }

    #[test]
    fn hashes_like_apollo_clients() {
        // sha256("{__typename}"), as Apollo Client's persisted-queries link computes it.
        assert_eq!(
            sha256_hex("{__typename}"),
            "ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"
        );
    }

    #[test]
    fn apq_round_trip() {
        let documents = PersistedDocuments::new(&PersistedDocumentsConfig::default()).unwrap();
        let hash = sha256_hex("{ a }");
        let miss = documents
            .resolve(&request(None, None, apq(&hash)))
            .err()
            .unwrap();
        assert_eq!(code(&miss), codes::PERSISTED_QUERY_NOT_FOUND);
        let registered = ok(&documents, request(Some("{ a }"), None, apq(&hash)));
        assert_eq!(&*registered.text, "{ a }");
        let hit = ok(&documents, request(None, None, apq(&hash)));
        assert_eq!(&*hit.text, "{ a }");
        assert!(!hit.trusted);
    }

    #[test]
    fn a_hash_that_does_not_match_registers_nothing() {
        let documents = PersistedDocuments::new(&PersistedDocumentsConfig::default()).unwrap();
        let wrong = sha256_hex("{ b }");
        let error = documents
            .resolve(&request(Some("{ a }"), None, apq(&wrong)))
            .err()
            .unwrap();
        assert_eq!(code(&error), codes::PERSISTED_QUERY_HASH_MISMATCH);
        let miss = documents
            .resolve(&request(None, None, apq(&wrong)))
            .err()
            .unwrap();
        assert_eq!(code(&miss), codes::PERSISTED_QUERY_NOT_FOUND);
    }

    #[test]
    fn malformed_extensions_are_bad_requests() {
        let documents = PersistedDocuments::new(&PersistedDocumentsConfig::default()).unwrap();
        for extensions in [
            serde_json::json!({ "persistedQuery": "abc" }),
            serde_json::json!({ "persistedQuery": { "version": 2, "sha256Hash": sha256_hex("x") } }),
            serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": "xyz" } }),
            serde_json::json!({ "persistedQuery": { "version": 1 } }),
        ] {
            let error = documents
                .resolve(&request(None, None, extensions.clone()))
                .err()
                .unwrap();
            assert_eq!(code(&error), codes::BAD_REQUEST, "{extensions}");
        }
    }

    #[test]
    fn apq_off_without_manifest_is_not_supported() {
        let documents = PersistedDocuments::new(&PersistedDocumentsConfig {
            apq: false,
            ..PersistedDocumentsConfig::default()
        })
        .unwrap();
        let error = documents
            .resolve(&request(None, None, apq(&sha256_hex("{ a }"))))
            .err()
            .unwrap();
        assert_eq!(code(&error), codes::PERSISTED_QUERY_NOT_SUPPORTED);
        // The text with its hash still runs: the extension is only an optimisation.
        let resolved = ok(
            &documents,
            request(Some("{ a }"), None, apq(&sha256_hex("{ a }"))),
        );
        assert_eq!(&*resolved.text, "{ a }");
    }

    #[test]
    fn manifest_documents_by_id_hash_or_text() {
        let hash = sha256_hex("query Me { me { id } }");
        let manifest = format!(
            r#"{{"format":"apollo-persisted-query-manifest","version":1,"operations":[
                {{"id":"{hash}","body":"query Me {{ me {{ id }} }}","name":"Me","type":"query"}}]}}"#
        );
        let documents = with_manifest(&manifest, true);
        let by_id = ok(&documents, request(None, Some(&hash), Json::Null));
        assert!(by_id.trusted);
        assert_eq!(&*by_id.text, "query Me { me { id } }");
        let by_hash = ok(&documents, request(None, None, apq(&hash)));
        assert!(by_hash.trusted);
        let by_text = ok(
            &documents,
            request(Some("query Me { me { id } }"), None, Json::Null),
        );
        assert!(by_text.trusted);
        let other = ok(&documents, request(Some("{ me { id } }"), None, Json::Null));
        assert!(!other.trusted, "a text not listed is not trusted");
        let unknown = documents
            .resolve(&request(None, Some("nope"), Json::Null))
            .err()
            .unwrap();
        assert_eq!(code(&unknown), codes::PERSISTED_QUERY_NOT_FOUND);
        let both = documents
            .resolve(&request(Some("{ a }"), Some(&hash), Json::Null))
            .err()
            .unwrap();
        assert_eq!(code(&both), codes::BAD_REQUEST);
    }

    #[test]
    fn only_turns_apq_off() {
        let documents = with_manifest(r#"{"a": "{ a }"}"#, true);
        let text = "{ b }";
        let resolved = ok(
            &documents,
            request(Some(text), None, apq(&sha256_hex(text))),
        );
        assert!(!resolved.trusted, "the caller refuses it");
        let error = documents
            .resolve(&request(None, None, apq(&sha256_hex(text))))
            .err()
            .unwrap();
        assert_eq!(
            code(&error),
            codes::PERSISTED_QUERY_NOT_FOUND,
            "nothing was registered"
        );
    }

    #[test]
    fn plain_maps_and_malformed_manifests() {
        let manifest = Manifest::parse(br#"{"1": "{ a }", "2": "{ b }"}"#).unwrap();
        assert_eq!(manifest.len(), 2);
        for bad in [
            &b"[]"[..],
            br#"{"1": 5}"#,
            br#"{"1": ""}"#,
            br#"{"format":"apollo-persisted-query-manifest","version":2,"operations":[]}"#,
            br#"{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"1"}]}"#,
            br#"{"format":"apollo-persisted-query-manifest","version":1,"operations":[
                {"id":"1","body":"{ a }"},{"id":"1","body":"{ b }"}]}"#,
            b"not json",
        ] {
            assert!(
                matches!(Manifest::parse(bad), Err(ManifestError::Format(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn a_manifest_file_is_reloaded_when_it_changes_and_kept_when_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        std::fs::write(&path, r#"{"a": "{ a }"}"#).unwrap();
        let documents = PersistedDocuments::new(&PersistedDocumentsConfig {
            manifest: Some(path.display().to_string()),
            ..PersistedDocumentsConfig::default()
        })
        .unwrap();
        assert_eq!(documents.refresh().await.unwrap(), Refreshed::Unchanged);
        let set_mtime = |secs: u64| {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .unwrap();
        };
        std::fs::write(&path, r#"{"a": "{ a }", "b": "{ b }"}"#).unwrap();
        set_mtime(1_000);
        assert_eq!(documents.refresh().await.unwrap(), Refreshed::Loaded(2));
        std::fs::write(&path, "{ broken").unwrap();
        set_mtime(2_000);
        assert!(matches!(
            documents.refresh().await,
            Err(ManifestError::Format(_))
        ));
        let kept = ok(&documents, request(None, Some("b"), Json::Null));
        assert_eq!(&*kept.text, "{ b }");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            documents.refresh().await,
            Err(ManifestError::Read { .. })
        ));
    }

    #[test]
    fn a_missing_manifest_file_stops_the_start() {
        let error = PersistedDocuments::new(&PersistedDocumentsConfig {
            manifest: Some("/nonexistent/manifest.json".into()),
            ..PersistedDocumentsConfig::default()
        })
        .err()
        .unwrap();
        assert!(matches!(error, ManifestError::Read { .. }), "{error}");
    }
}
