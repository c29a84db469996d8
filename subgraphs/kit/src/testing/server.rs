//! Servers for tests: a subgraph (or any service) running in the background on `127.0.0.1:0`, stopped
//! when dropped, and readiness waits for what it runs.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, task::JoinHandle};

use super::{GraphQLClient, init};
use crate::{
    events::EventBus,
    live::LiveFeed,
    server::SubgraphConfig,
    shutdown::CancellationToken,
    subgraph::{Service, Subgraph},
    supervisor::TaskError,
};

/// A server running in the background on `127.0.0.1:0`. Dropping it shuts it down.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<Result<(), TaskError>>>,
}

impl TestServer {
    /// Binds `127.0.0.1:0`, starts `run(listener, shutdown)` and waits until `/health` answers.
    pub async fn spawn<F, Fut, E>(run: F) -> Self
    where
        F: FnOnce(TcpListener, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<TaskError>,
    {
        init();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let fut = run(listener, shutdown.clone());
        let handle = tokio::spawn(async move { fut.await.map_err(Into::into) });
        let mut server = Self {
            addr,
            shutdown,
            handle: Some(handle),
        };
        server.wait_healthy().await;
        server
    }

    /// Starts subgraph `S` on `config` and `bus` (database migrated) and serves it like [`spawn`](Self::spawn);
    /// returns its state too, so a test can reach its database and live feed.
    pub async fn subgraph<S: Subgraph>(
        config: SubgraphConfig,
        bus: Arc<dyn EventBus>,
    ) -> (Self, S::State) {
        init();
        let service = Service::<S>::start(config, bus)
            .await
            .unwrap_or_else(|err| panic!("{} subgraph did not start: {err}", S::NAME));
        let state = service.state().clone();
        let server = Self::spawn(move |listener, shutdown| service.serve(listener, shutdown)).await;
        (server, state)
    }

    /// Polls `/health`; a server that stopped (an error, or a panic) is reported as such at once instead of
    /// as a server that never answered.
    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(resp) = client.get(self.url("/health")).send().await
                && resp.status().is_success()
            {
                return;
            }
            if let Some(handle) = self.handle.take_if(|h| h.is_finished()) {
                match handle.await {
                    Ok(Ok(())) => panic!("server on {} stopped before it was healthy", self.addr),
                    Ok(Err(err)) => panic!("server on {} failed: {err}", self.addr),
                    Err(join) => match join.try_into_panic() {
                        Ok(panic) => std::panic::resume_unwind(panic),
                        Err(join) => panic!("server on {} was cancelled: {join}", self.addr),
                    },
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server on {} did not become healthy in 10s", self.addr);
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A GraphQL client for this server's `/graphql`.
    pub fn client(&self) -> GraphQLClient {
        GraphQLClient::new(self.url("/graphql"))
    }

    /// Requests shutdown and waits for the server's result.
    pub async fn stop(mut self) -> Result<(), TaskError> {
        self.shutdown.cancel();
        let handle = self.handle.take().expect("running");
        handle.await.expect("server task panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Waits until `feed` follows its stream and has at least `subscribers` subscribers (GraphQL
/// subscriptions register asynchronously after their `subscribe` message), so that what is published
/// next reaches them; panics after 10 s.
pub async fn wait_live(feed: &LiveFeed, subscribers: usize) {
    let ready = async {
        feed.following().await;
        while feed.subscribers() < subscribers {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), ready)
        .await
        .is_err()
    {
        panic!(
            "the live feed of `{}` has {} subscribers (or does not follow the stream), not {subscribers}",
            feed.stream(),
            feed.subscribers()
        );
    }
}
