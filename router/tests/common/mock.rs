//! Mock servers (test subgraphs, a JWKS endpoint) that report their panics. A handler that
//! panics would otherwise only close its connection, and the test would fail later with a
//! connection error or a timeout that hides the cause; here the panic is answered with a 500,
//! printed, and raised again in the test when the server's guard is dropped or checked.
#![allow(dead_code)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use axum::response::IntoResponse;
use futures::FutureExt;

/// The panics of one mock server's handlers.
#[derive(Clone, Default)]
pub struct Panics(Arc<Mutex<Vec<String>>>);

impl Panics {
    /// Runs `work` (a handler or an upgraded connection), recording a panic instead of losing it.
    pub async fn catch<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        match AssertUnwindSafe(work).catch_unwind().await {
            Ok(value) => Some(value),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic".into());
                eprintln!("mock server handler panicked: {message}");
                self.0.lock().unwrap().push(message);
                None
            }
        }
    }

    /// Wraps every route of `app`: a panicking handler answers 500 and is recorded.
    pub fn layer(&self, app: axum::Router) -> axum::Router {
        let panics = self.clone();
        app.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let panics = panics.clone();
                async move {
                    match panics.catch(next.run(request)).await {
                        Some(response) => response,
                        None => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            "mock server handler panicked",
                        )
                            .into_response(),
                    }
                }
            },
        ))
    }

    /// Fails the test if a handler panicked.
    pub fn check(&self) {
        let panics = self.0.lock().unwrap();
        assert!(
            panics.is_empty(),
            "a mock server handler panicked: {panics:?}"
        );
    }
}

/// A mock server running on its own task. Dropping it (or calling [`MockServer::check`]) fails
/// the test if a handler panicked or the server task itself did.
pub struct MockServer {
    pub panics: Panics,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MockServer {
    /// Serves `app` on `listener` until `shutdown` completes.
    pub fn spawn(
        listener: tokio::net::TcpListener,
        app: axum::Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> MockServer {
        let panics = Panics::default();
        MockServer::spawn_with(panics, listener, app, shutdown)
    }

    /// [`MockServer::spawn`] recording into `panics` (shared with handlers that spawn their own
    /// tasks, such as WebSocket connections).
    pub fn spawn_with(
        panics: Panics,
        listener: tokio::net::TcpListener,
        app: axum::Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> MockServer {
        let app = panics.layer(app);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .expect("mock server failed");
        });
        MockServer {
            panics,
            task: Some(task),
        }
    }

    /// Waits for the server task to end (after its shutdown signal), raising its panic if any.
    pub async fn join(&mut self) {
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
        self.panics.check();
    }

    /// Stops the server at once: its listener and every connection it serves (handlers that
    /// panicked before still fail the test).
    pub fn abort(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Fails the test if a handler or the server task panicked so far.
    pub fn check(&mut self) {
        if let Some(task) = self.task.as_mut()
            && let Some(Err(error)) = task.now_or_never()
        {
            self.task = None;
            if error.is_panic() {
                std::panic::resume_unwind(error.into_panic());
            }
        }
        self.panics.check();
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.check();
        }
    }
}

/// A subgraph that is down, on a port that stays bound for as long as this lives: every
/// connection is accepted and closed at once, so nothing else can take the port meanwhile (a
/// port that was merely freed could be reused by another test).
pub struct Down {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Down {
    pub async fn start() -> Down {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/graphql", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                drop(connection);
            }
        });
        Down { url, task }
    }
}

impl Drop for Down {
    fn drop(&mut self) {
        self.task.abort();
    }
}
