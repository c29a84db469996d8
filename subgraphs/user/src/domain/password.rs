//! Password hashing with argon2id, off the async threads and bounded in concurrency.
//!
//! One hash costs tens of milliseconds and ~19 MiB of memory (argon2's recommended defaults), so hashes run
//! on the blocking pool and at most [`MAX_CONCURRENT_HASHES`] at once; a burst of logins queues instead of
//! exhausting memory.

use std::sync::{Arc, LazyLock, OnceLock};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

/// Hashes computed at the same time, at most.
pub const MAX_CONCURRENT_HASHES: usize = 4;

static PERMITS: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(MAX_CONCURRENT_HASHES)));

/// Why hashing failed (never because of the password's content).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The argon2 implementation refused.
    #[error("password hashing failed: {0}")]
    Argon2(String),
    /// The stored hash is not a PHC string.
    #[error("stored password hash is corrupt: {0}")]
    Corrupt(String),
    /// The blocking task died.
    #[error("password hashing task failed: {0}")]
    Task(String),
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    bounded(&PERMITS, work).await
}

/// Runs `work` on the blocking pool once a permit of `permits` is free. The permit moves into the
/// blocking task and is released when the work ends, not when the caller stops waiting: a client that
/// disconnects mid-login drops this future, but its hash keeps running (a blocking task cannot be
/// cancelled), and it must keep counting against the limit until it does.
async fn bounded<T: Send + 'static>(
    permits: &Arc<Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    let permit = Arc::clone(permits)
        .acquire_owned()
        .await
        .map_err(|e| HashError::Task(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let result = work();
        drop(permit);
        result
    })
    .await
    .map_err(|e| HashError::Task(e.to_string()))
}

/// Hashes `password` with a fresh random salt; returns the PHC string to store.
pub async fn hash(password: String) -> Result<String, HashError> {
    blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| HashError::Argon2(e.to_string()))
    })
    .await?
}

/// Whether `password` matches the stored PHC string.
pub async fn verify(password: String, stored: String) -> Result<bool, HashError> {
    blocking(move || {
        let parsed = PasswordHash::new(&stored).map_err(|e| HashError::Corrupt(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await?
}

/// Spends the same work as checking a real account, for logins with an unknown email: answering faster for
/// unknown emails would tell an attacker which emails have accounts.
pub async fn verify_against_dummy(password: String) -> Result<(), HashError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let stored = match DUMMY.get() {
        Some(stored) => stored.clone(),
        None => {
            let made = hash("dummy password for timing".into()).await?;
            DUMMY.get_or_init(|| made).clone()
        }
    };
    verify(password, stored).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let stored = hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(
            verify("correct horse".into(), stored.clone())
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), stored).await.unwrap());
        assert!(matches!(
            verify("x".into(), "not a hash".into()).await,
            Err(HashError::Corrupt(_))
        ));
        verify_against_dummy("anything".into()).await.unwrap();
    }

    /// A caller that goes away (client disconnect) must not free the permit of work still running.
    #[tokio::test]
    async fn a_cancelled_caller_keeps_its_permit_until_the_work_ends() {
        let permits = Arc::new(Semaphore::new(1));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let caller = tokio::spawn({
            let permits = Arc::clone(&permits);
            async move {
                bounded(&permits, move || {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                    let _ = done_tx.send(());
                })
                .await
            }
        });
        started_rx.await.unwrap();
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        // The work still runs: the permit is still taken.
        assert_eq!(permits.available_permits(), 0);
        assert!(permits.clone().try_acquire_owned().is_err());
        release_tx.send(()).unwrap();
        done_rx.await.unwrap();
        // Released with the work's end (the blocking task drops it right after).
        let again = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            Arc::clone(&permits).acquire_owned(),
        )
        .await;
        assert!(again.is_ok(), "the permit was never released");
    }
}
