//! Supergraph updates while serving: a new supergraph (from the watched `--supergraph` file or
//! polled from `--supergraph-url`) is loaded, checked and planned against beside the running
//! one, then swapped in whole.
//!
//! What a swap keeps and what it replaces:
//! - every request and subscription loaded one supergraph state when it started and finishes on
//!   it (its plan, its subgraph clients), so no request fails because of a swap;
//! - the new state has its own API schema, access rules, `@rateLimit`s and empty operation and
//!   plan caches (caches are per supergraph), warmed with the operations the old one served;
//! - the live configuration, revoked token ids and persisted documents are shared, and the
//!   subgraph clients whose name and URLs did not change are kept (breaker state, replica
//!   health and connection pools survive);
//! - open subscriptions are checked against the new supergraph (`subscriptions`): those whose
//!   operation no longer exists there end with `SUPERGRAPH_CHANGED`.
//!
//! A supergraph that fails any step is logged, counted
//! (`shippy_router_supergraph_loads_total{outcome="failed"}`) and ignored: the old one keeps
//! serving.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use tracing::Instrument;

use crate::error::codes;
use crate::fetch::{Fetched, RemoteDocument};
use crate::operation::{Live, PLANNING_TIMED_OUT, RouterState, SupergraphInfo};
use crate::query_planner::override_labels::Planners;
use crate::{Router, RouterError};

/// Counter of supergraph loads by `outcome`: `applied`, `unchanged` (same SHA-256 as the one
/// serving), `failed` (did not load; the old one keeps serving), `fetch_failed` (the file or URL
/// could not be read).
pub(crate) const LOADS_TOTAL: &str = "shippy_router_supergraph_loads_total";
/// Gauge, 1 for the supergraph serving (label `hash`), 0 for ones it replaced.
pub(crate) const INFO: &str = "shippy_router_supergraph_info";
/// Gauge: Unix time the serving supergraph was loaded.
pub(crate) const LOADED_TIMESTAMP: &str = "shippy_router_supergraph_loaded_timestamp_seconds";

/// Prepared operations of the old supergraph planned against a new one before it serves.
const WARM_UP_OPERATIONS: usize = 200;
/// Time allowed for one fetch of `--supergraph-url`.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest supergraph accepted from `--supergraph-url`.
const MAX_SUPERGRAPH_SIZE: usize = 64 * 1024 * 1024;

/// What [`Router::update_supergraph`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupergraphUpdate {
    /// The new supergraph serves from now on.
    Applied {
        /// Its SHA-256, lowercase hex.
        hash: String,
    },
    /// It is the supergraph already serving (same SHA-256); nothing changed.
    Unchanged,
}

/// Why a supergraph source cannot be used (found at start-up).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// `--supergraph-url` is unusable.
    #[error("--supergraph-url: {0}")]
    Url(#[from] crate::fetch::SourceError),
    /// `--supergraph-auth-header` is not `name: value`.
    #[error("--supergraph-auth-header must be `name: value` with a valid header name and value")]
    AuthHeader,
    /// The first fetch failed.
    #[error("{0}")]
    Fetch(String),
    /// The document is not UTF-8 text.
    #[error("the supergraph at {0} is not UTF-8 text")]
    NotText(String),
}

/// A supergraph behind a URL (a schema registry or CDN), fetched with `ETag` / `If-None-Match` so
/// that an unchanged supergraph costs one 304.
pub struct SupergraphSource {
    document: RemoteDocument,
}

impl SupergraphSource {
    /// `auth_header` (`name: value`) is sent with every fetch.
    pub fn url(url: &str, auth_header: Option<&str>) -> Result<SupergraphSource, SourceError> {
        let mut document = RemoteDocument::new(url, FETCH_TIMEOUT, MAX_SUPERGRAPH_SIZE)?
            .with_accept("application/graphql, text/plain, */*");
        if let Some(header) = auth_header {
            let (name, value) = parse_auth_header(header)?;
            document = document.with_auth_header(name, value);
        }
        Ok(SupergraphSource { document })
    }

    /// The supergraph SDL, or `None` when it has not changed since the last fetch.
    pub async fn fetch(&self) -> Result<Option<String>, SourceError> {
        match self.document.fetch().await {
            Ok(Fetched::NotModified) => Ok(None),
            Ok(Fetched::Changed(bytes)) => String::from_utf8(bytes.to_vec())
                .map(Some)
                .map_err(|_| SourceError::NotText(self.document.url().to_string())),
            Err(error) => Err(SourceError::Fetch(error.to_string())),
        }
    }

    /// The URL, for logs.
    pub fn location(&self) -> &str {
        self.document.url()
    }
}

/// `name: value`; the value is marked sensitive (kept out of debug output).
fn parse_auth_header(header: &str) -> Result<(HeaderName, HeaderValue), SourceError> {
    let (name, value) = header.split_once(':').ok_or(SourceError::AuthHeader)?;
    let name = HeaderName::try_from(name.trim()).map_err(|_| SourceError::AuthHeader)?;
    let mut value = HeaderValue::try_from(value.trim()).map_err(|_| SourceError::AuthHeader)?;
    if value.is_empty() {
        return Err(SourceError::AuthHeader);
    }
    value.set_sensitive(true);
    Ok((name, value))
}

/// Records `loaded` as the serving supergraph in the metrics (`replaced`: the one it replaces).
pub(crate) fn record_loaded(replaced: Option<&SupergraphInfo>, loaded: &SupergraphInfo) {
    if let Some(replaced) = replaced {
        metrics::gauge!(INFO, "hash" => replaced.hash.clone()).set(0.0);
    }
    metrics::gauge!(INFO, "hash" => loaded.hash.clone()).set(1.0);
    let at = loaded
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    metrics::gauge!(LOADED_TIMESTAMP).set(at.as_secs_f64());
}

fn count(outcome: &'static str) {
    metrics::counter!(LOADS_TOTAL, "outcome" => outcome).increment(1);
}

impl Router {
    /// Replaces the supergraph while serving. The new one is parsed, checked (its `@link`s, the
    /// planner, the subgraphs the configuration names, its subgraph URLs and `@rateLimit`s) and
    /// planned against (the operations the old one served recently must still plan when they
    /// still validate) before it serves; on any failure nothing changes and the error says why.
    /// Work in flight finishes on the supergraph it started with.
    pub async fn update_supergraph(&self, sdl: String) -> Result<SupergraphUpdate, RouterError> {
        let _updating = self.state.updates.lock().await;
        let current = self.state.core();
        let info = SupergraphInfo::of(&sdl);
        if info.hash == current.supergraph.hash {
            count("unchanged");
            return Ok(SupergraphUpdate::Unchanged);
        }
        match self.load(&current, sdl, info).await {
            Ok(next) => {
                let hash = next.supergraph.hash.clone();
                let swapped = {
                    let _changing = self.state.lock_changes();
                    self.swap(&current, next)
                };
                match swapped {
                    Ok(next) => {
                        record_loaded(Some(&current.supergraph), &next.supergraph);
                        count("applied");
                        tracing::info!(
                            hash,
                            replaced = current.supergraph.hash,
                            subgraphs = next.subgraphs.len(),
                            "supergraph updated"
                        );
                        Ok(SupergraphUpdate::Applied { hash })
                    }
                    Err(error) => Err(failed(error)),
                }
            }
            Err(error) => Err(failed(error)),
        }
    }

    /// Builds the state of a new supergraph beside `current` and plans `current`'s recent
    /// operations against it.
    async fn load(
        &self,
        current: &Arc<RouterState>,
        sdl: String,
        info: SupergraphInfo,
    ) -> Result<RouterState, RouterError> {
        // Building the planner is CPU work in proportion to the supergraph: off the runtime.
        // One planner per combination of progressive-override labels, as at start-up.
        let max_labels = current.config.override_labels.max_labels;
        let planners =
            match tokio::task::spawn_blocking(move || Planners::new(&sdl, max_labels)).await {
                Ok(planners) => planners?,
                Err(error) => std::panic::resume_unwind(error.into_panic()),
            };
        let planner = planners.base();
        // The live configuration: `headers.subgraphs` may have changed since start-up.
        crate::check_subgraph_names(planner, &current.live.load().config)?;
        let clients = crate::subgraph_clients(planner, &current.config, &current.subgraphs)?;
        let next = current.next(planners, clients, info)?;
        warm_up(current, &next).await?;
        Ok(next)
    }

    /// Makes `next` serve (the live rate limits follow its `@rateLimit`s). Called under
    /// `lock_changes`, so the live configuration checked here is the one it will serve with.
    fn swap(
        &self,
        current: &RouterState,
        next: RouterState,
    ) -> Result<Arc<RouterState>, RouterError> {
        let previous = next.live.load_full();
        // A reload may have named more subgraphs (`headers.subgraphs`) since `load` checked.
        crate::check_subgraph_names(&next.planner, &previous.config)?;
        if next.rate_limit_directives != current.rate_limit_directives {
            let mut live = Live::new(
                previous.config.clone(),
                &next.rate_limit_directives,
                previous.generation + 1,
                &next.revocations,
            )
            .map_err(RouterError::Setup)?;
            // Same configuration, same keys: keep the verifier and the keys it fetched.
            live.verifier = previous.verifier.clone();
            next.live.store(Arc::new(live));
        }
        let next = Arc::new(next);
        self.state.swap_core(Arc::clone(&next));
        Ok(next)
    }

    /// Reloads the supergraph from `path` whenever its contents change (checked every
    /// `interval`). A file that cannot be read or does not load is logged and counted, and the
    /// running supergraph kept. The first check compares the file with the supergraph serving
    /// (by SHA-256), so a change made after the router loaded it is never missed. Runs until
    /// dropped.
    pub fn watch_supergraph(
        self,
        path: PathBuf,
        interval: Duration,
    ) -> impl Future<Output = ()> + Send + 'static {
        // `None` until the first check; then the file's fingerprint (`None` when unreadable), so
        // a missing file is reported once, not on every check.
        let mut last: Option<Option<u64>> = None;
        async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let now = crate::fingerprint(&path);
                if last == Some(now) {
                    continue;
                }
                last = Some(now);
                match tokio::fs::read_to_string(&path).await {
                    Err(error) => {
                        count("fetch_failed");
                        tracing::error!(
                            file = %path.display(),
                            %error,
                            "supergraph file unreadable; keeping the current supergraph"
                        );
                    }
                    Ok(sdl) => {
                        self.apply(sdl, &path.display().to_string()).await;
                    }
                }
            }
        }
    }

    /// Fetches the supergraph from `source` every `interval` (an unchanged one costs a 304) and
    /// applies it when it changed. A failed fetch or a supergraph that does not load is logged
    /// and counted, and the running supergraph kept. Runs until dropped.
    pub async fn poll_supergraph(self, source: SupergraphSource, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        // The hash of the last supergraph refused: a registry without `ETag`s answers it again
        // on every poll, and once is enough to log and count it.
        let mut refused: Option<String> = None;
        loop {
            ticker.tick().await;
            match source.fetch().await {
                Ok(None) => {}
                Ok(Some(sdl)) => {
                    let hash = SupergraphInfo::of(&sdl).hash;
                    if refused.as_deref() == Some(hash.as_str()) {
                        continue;
                    }
                    if !self.apply(sdl, source.location()).await {
                        refused = Some(hash);
                    }
                }
                Err(error) => {
                    count("fetch_failed");
                    tracing::warn!(
                        url = source.location(),
                        %error,
                        "supergraph fetch failed; keeping the current supergraph (check \
                         --supergraph-url, --supergraph-auth-header and the registry)"
                    );
                }
            }
        }
    }

    /// Applies a supergraph a watcher found, logging the outcome (errors are logged and
    /// counted by `update_supergraph`); false when it was refused.
    async fn apply(&self, sdl: String, from: &str) -> bool {
        let span = tracing::info_span!("supergraph_update", from);
        match self.update_supergraph(sdl).instrument(span).await {
            Ok(SupergraphUpdate::Applied { hash }) => {
                tracing::info!(from, hash, "supergraph reloaded");
                true
            }
            Ok(SupergraphUpdate::Unchanged) => {
                tracing::debug!(from, "supergraph unchanged");
                true
            }
            // Logged (with the reason) and counted by `update_supergraph`, inside this span.
            Err(_) => false,
        }
    }
}

/// Logs and counts a supergraph that did not load.
fn failed(error: RouterError) -> RouterError {
    count("failed");
    tracing::error!(
        %error,
        "new supergraph refused; the current one keeps serving (fix the supergraph at its source)"
    );
    error
}

/// Prepares up to [`WARM_UP_OPERATIONS`] operations `current` served against `next`. One that
/// still validates but cannot be planned any more means the new supergraph cannot serve the
/// traffic it accepts: refused. One that no longer validates is the schema change itself (its
/// clients get validation errors, as they would after a restart).
async fn warm_up(current: &RouterState, next: &RouterState) -> Result<(), RouterError> {
    let sources: Vec<_> = current
        .operations
        .iter()
        .filter_map(|(_, prepared)| {
            prepared
                .ok()
                .map(|p| (Arc::clone(&p.source), p.override_variant))
        })
        .take(WARM_UP_OPERATIONS)
        .collect();
    let live = next.live.load_full();
    for (source, variant) in sources {
        let (text, name) = &*source;
        // The same override combination (the base one when the new supergraph has fewer).
        if let Err(rejection) = next.prepare(text, name.as_deref(), &live, variant).await {
            let errors = rejection.errors();
            // A timeout may only mean a busy planner: not held against the supergraph.
            if let Some(error) = errors.iter().find(|e| {
                e.code() == Some(codes::QUERY_PLANNING_FAILED) && e.message != PLANNING_TIMED_OUT
            }) {
                return Err(RouterError::Unplannable {
                    operation: name.clone().unwrap_or_else(|| "(anonymous)".into()),
                    reason: error.message.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_headers_are_name_colon_value() {
        let (name, value) = parse_auth_header("Authorization: Bearer abc").unwrap();
        assert_eq!(name, "authorization");
        assert_eq!(value, "Bearer abc");
        assert!(value.is_sensitive());
        for bad in [
            "no colon",
            ": value",
            "bad name: v",
            "x-key:",
            "x-key: a\nb",
        ] {
            assert!(
                matches!(parse_auth_header(bad), Err(SourceError::AuthHeader)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn supergraph_hashes_are_sha256_hex() {
        let info = SupergraphInfo::of("abc");
        assert_eq!(
            info.hash,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
