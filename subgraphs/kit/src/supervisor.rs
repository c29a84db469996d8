//! Supervision of long-lived tasks: servers, relays, consumers.
//!
//! Every task shares one shutdown token. When any task ends while the token is still live (it failed, or
//! returned when it should not have), the supervisor logs why, cancels the token so the rest stop too, and
//! reports that first failure. A process therefore never keeps running half-alive.

use std::{future::Future, time::Duration};

use tokio::task::JoinSet;

use crate::shutdown::CancellationToken;

/// An error from a supervised task, boxed so tasks of any kind can share one supervisor.
pub type TaskError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why supervision ended with a failure.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A task returned an error.
    #[error("{task} failed: {source}")]
    Failed {
        /// The task's name.
        task: String,
        /// Its error.
        #[source]
        source: TaskError,
    },
    /// A task returned `Ok` before shutdown was requested; long-lived tasks are not supposed to.
    #[error("{task} stopped unexpectedly")]
    Stopped {
        /// The task's name.
        task: String,
    },
    /// A task panicked.
    #[error("{task} panicked")]
    Panicked {
        /// The task's name.
        task: String,
    },
    /// Some tasks did not stop within the grace period after shutdown and were aborted.
    #[error("{0} task(s) did not stop in time and were aborted")]
    DrainTimeout(usize),
}

/// Runs named tasks under one shutdown token.
pub struct Supervisor {
    tasks: JoinSet<(String, Result<(), TaskError>)>,
    /// Task names by tokio task id, to name a task that panicked (its own result is lost with the panic).
    names: std::collections::HashMap<tokio::task::Id, String>,
    shutdown: CancellationToken,
}

impl Supervisor {
    /// A supervisor whose tasks stop when `shutdown` is cancelled (and which cancels it when one fails).
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            tasks: JoinSet::new(),
            names: Default::default(),
            shutdown,
        }
    }

    /// The token tasks should watch.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Starts a task.
    pub fn spawn<F, E>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<TaskError>,
    {
        let name = name.into();
        let label = name.clone();
        let handle = self
            .tasks
            .spawn(async move { (label, task.await.map_err(Into::into)) });
        self.names.insert(handle.id(), name);
    }

    /// Waits until every task has ended. Returns the first failure, if any; after shutdown, tasks get `grace`
    /// to finish before they are aborted.
    pub async fn wait(mut self, grace: Duration) -> Result<(), SupervisorError> {
        let mut first_failure = None;
        loop {
            let joined = if self.shutdown.is_cancelled() {
                match tokio::time::timeout(grace, self.tasks.join_next_with_id()).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        let left = self.tasks.len();
                        tracing::error!(
                            left,
                            "tasks did not stop within the shutdown grace period; aborting them"
                        );
                        self.tasks.shutdown().await;
                        return Err(first_failure.unwrap_or(SupervisorError::DrainTimeout(left)));
                    }
                }
            } else {
                self.tasks.join_next_with_id().await
            };
            let Some(joined) = joined else { break };
            let failure = match joined {
                Ok((_, (task, Ok(())))) if self.shutdown.is_cancelled() => {
                    tracing::debug!(%task, "task stopped");
                    None
                }
                Ok((_, (task, Ok(())))) => Some(SupervisorError::Stopped { task }),
                Ok((_, (task, Err(source)))) => Some(SupervisorError::Failed { task, source }),
                Err(err) => {
                    let task = self
                        .names
                        .get(&err.id())
                        .cloned()
                        .unwrap_or_else(|| "task".into());
                    if err.is_cancelled() {
                        None
                    } else {
                        Some(SupervisorError::Panicked { task })
                    }
                }
            };
            if let Some(failure) = failure {
                tracing::error!(error = %failure, "supervised task ended; stopping the others");
                self.shutdown.cancel();
                first_failure.get_or_insert(failure);
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("boom")]
    struct Boom;

    #[tokio::test]
    async fn one_failure_stops_everyone_and_is_reported() {
        let shutdown = CancellationToken::new();
        let mut sup = Supervisor::new(shutdown.clone());
        let token = shutdown.clone();
        sup.spawn("waiter", async move {
            token.cancelled().await;
            Ok::<_, Boom>(())
        });
        sup.spawn("failer", async { Err::<(), _>(Boom) });
        let err = sup.wait(Duration::from_secs(5)).await.unwrap_err();
        assert!(
            matches!(&err, SupervisorError::Failed { task, .. } if task == "failer"),
            "{err}"
        );
        assert!(shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn early_return_and_panic_are_failures() {
        let mut sup = Supervisor::new(CancellationToken::new());
        sup.spawn("quitter", async { Ok::<_, Boom>(()) });
        assert!(matches!(
            sup.wait(Duration::from_secs(1)).await,
            Err(SupervisorError::Stopped { .. })
        ));

        let mut sup = Supervisor::new(CancellationToken::new());
        sup.spawn("panicker", async {
            if true {
                panic!("deliberate");
            }
            Ok::<_, Boom>(())
        });
        let err = sup.wait(Duration::from_secs(1)).await.unwrap_err();
        assert!(
            matches!(&err, SupervisorError::Panicked { task } if task == "panicker"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn clean_shutdown_and_drain_timeout() {
        let shutdown = CancellationToken::new();
        let mut sup = Supervisor::new(shutdown.clone());
        let token = shutdown.clone();
        sup.spawn("polite", async move {
            token.cancelled().await;
            Ok::<_, Boom>(())
        });
        shutdown.cancel();
        assert!(sup.wait(Duration::from_secs(1)).await.is_ok());

        let shutdown = CancellationToken::new();
        let mut sup = Supervisor::new(shutdown.clone());
        sup.spawn("stubborn", std::future::pending::<Result<(), Boom>>());
        shutdown.cancel();
        assert!(matches!(
            sup.wait(Duration::from_secs(1)).await,
            Err(SupervisorError::DrainTimeout(1))
        ));
    }
}
