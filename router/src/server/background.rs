//! Tasks that run while the router serves: JWKS refresh, the persisted-document manifest's
//! refresh, subgraph health checks (for the clients of the current supergraph, following its
//! swaps), and clean-up of rate-limiter state. Each loops until `serve` ends (dropping the set
//! aborts them); one that stops on its own makes `serve` fail with its name, so it never dies
//! silently.
//!
//! The tasks hold only what every supergraph's state shares (the live configuration, the
//! persisted documents) or look the current state up, so they never keep a swapped-out
//! supergraph alive.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinSet;

use crate::operation::Live;
use crate::operation::documents::PersistedDocuments;
use crate::rate_limit::requests::RequestLimiter;
use crate::server::AppState;
use crate::subgraph::SubgraphClient;

/// How often idle rate-limit keys are dropped.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

pub(crate) fn spawn(
    state: &Arc<AppState>,
    request_limiter: Option<Arc<RequestLimiter>>,
) -> JoinSet<&'static str> {
    let core = state.core();
    let mut tasks = JoinSet::new();
    tasks.spawn(jwks_refresh(Arc::clone(&core.live)));
    tasks.spawn(housekeeping(Arc::clone(&core.live), request_limiter));
    if core.documents.has_manifest() {
        tasks.spawn(manifest_refresh(Arc::clone(&core.documents)));
    }
    tasks.spawn(health_checks(Arc::clone(state)));
    tasks
}

/// Runs the health checks of every subgraph client of the current supergraph that has several
/// replicas and checks enabled. On a swap, clients the new supergraph kept keep their checks,
/// new clients get theirs, and dropped clients' checks stop.
async fn health_checks(state: Arc<AppState>) -> &'static str {
    let mut swaps = state.hub.supergraph_updates();
    let mut running: Vec<(Arc<SubgraphClient>, tokio::task::AbortHandle)> = Vec::new();
    let mut checks = JoinSet::new();
    loop {
        let core = state.core();
        running.retain(|(client, handle)| {
            let kept = core.subgraphs.iter().any(|c| Arc::ptr_eq(c, client));
            if !kept {
                handle.abort();
            }
            kept
        });
        for client in &core.subgraphs {
            let checked = client.replicas().replicas().len() > 1 && client.health_check_enabled();
            if checked && !running.iter().any(|(c, _)| Arc::ptr_eq(c, client)) {
                let task = Arc::clone(client);
                let handle = checks.spawn(async move { task.run_health_checks().await });
                running.push((Arc::clone(client), handle));
            }
        }
        drop(core);
        tokio::select! {
            changed = swaps.changed() => {
                if changed.is_err() {
                    // The hub is gone: the router is shutting down.
                    std::future::pending::<()>().await;
                }
            }
            Some(ended) = checks.join_next() => {
                // Aborted checks (of a client a swap dropped) end as cancelled; any other end
                // is a bug worth stopping for.
                if !matches!(&ended, Err(error) if error.is_cancelled()) {
                    return "subgraph health checks";
                }
            }
        }
    }
}

/// Refreshes the JWKS of the current verifier on its schedule (the verifier may change with a
/// reload, so it is looked up each round). The first round runs at once, warming the keys.
async fn jwks_refresh(live: Arc<ArcSwap<Live>>) -> &'static str {
    loop {
        let live = live.load_full();
        let wait = match live.verifier.as_ref().and_then(|v| v.jwks()) {
            Some(jwks) => {
                if let Err(error) = jwks.refresh().await {
                    tracing::warn!(%error, "JWKS refresh failed; keeping the keys we have");
                }
                jwks.refresh_interval()
            }
            // Nothing to refresh; look again later in case a reload adds a key set.
            None => Duration::from_secs(30),
        };
        tokio::time::sleep(wait).await;
    }
}

/// Keeps the trusted-document manifest current. The first round runs at once (a manifest URL is
/// first fetched here). A failed round keeps the manifest held and is counted, so a broken
/// deployment of the manifest shows on a dashboard instead of in refused operations.
async fn manifest_refresh(documents: Arc<PersistedDocuments>) -> &'static str {
    use crate::operation::documents::Refreshed;
    loop {
        let outcome = match documents.refresh().await {
            Ok(Refreshed::Loaded(count)) => {
                tracing::info!(documents = count, "persisted document manifest loaded");
                "loaded"
            }
            Ok(Refreshed::Unchanged) => "unchanged",
            Err(error) => {
                tracing::warn!(
                    %error,
                    "persisted document manifest refresh failed; keeping the documents we have \
                     (check `persisted_documents.manifest`)"
                );
                "failed"
            }
        };
        metrics::counter!("shippy_router_persisted_manifest_refreshes_total", "outcome" => outcome)
            .increment(1);
        tokio::time::sleep(documents.refresh_interval()).await;
    }
}

async fn housekeeping(
    live: Arc<ArcSwap<Live>>,
    request_limiter: Option<Arc<RequestLimiter>>,
) -> &'static str {
    loop {
        tokio::time::sleep(HOUSEKEEPING_INTERVAL).await;
        live.load().rate_limits.housekeeping();
        if let Some(limiter) = &request_limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}
