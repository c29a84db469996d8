//! Tasks that run while the router serves: JWKS refresh, the persisted-document manifest's
//! refresh, subgraph health checks, and clean-up of rate-limiter state. Each loops until `serve` ends (dropping the set aborts them); one that
//! stops on its own makes `serve` fail with its name, so it never dies silently.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::operation::RouterState;
use crate::rate_limit::requests::RequestLimiter;

/// How often idle rate-limit keys are dropped.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

pub(crate) fn spawn(
    state: &Arc<RouterState>,
    request_limiter: Option<Arc<RequestLimiter>>,
) -> JoinSet<&'static str> {
    let mut tasks = JoinSet::new();
    tasks.spawn(jwks_refresh(Arc::clone(state)));
    tasks.spawn(housekeeping(Arc::clone(state), request_limiter));
    if state.documents.has_manifest() {
        tasks.spawn(manifest_refresh(Arc::clone(state)));
    }
    for index in 0..state.subgraphs.len() {
        let client = &state.subgraphs[index];
        if client.replicas().replicas().len() > 1 && client.health_check_enabled() {
            let state = Arc::clone(state);
            tasks.spawn(async move {
                state.subgraphs[index].run_health_checks().await;
                "subgraph health checks"
            });
        }
    }
    tasks
}

/// Refreshes the JWKS of the current verifier on its schedule (the verifier may change with a
/// reload, so it is looked up each round). The first round runs at once, warming the keys.
async fn jwks_refresh(state: Arc<RouterState>) -> &'static str {
    loop {
        let live = state.live.load_full();
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
async fn manifest_refresh(state: Arc<RouterState>) -> &'static str {
    use crate::operation::documents::Refreshed;
    loop {
        let outcome = match state.documents.refresh().await {
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
        tokio::time::sleep(state.documents.refresh_interval()).await;
    }
}

async fn housekeeping(
    state: Arc<RouterState>,
    request_limiter: Option<Arc<RequestLimiter>>,
) -> &'static str {
    loop {
        tokio::time::sleep(HOUSEKEEPING_INTERVAL).await;
        state.live.load().rate_limits.housekeeping();
        if let Some(limiter) = &request_limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}
