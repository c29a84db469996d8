//! Password hashing with argon2id, off the async threads and bounded in concurrency.
//!
//! One hash costs tens of milliseconds and ~19 MiB of memory (argon2's recommended defaults), so hashes run
//! on the blocking pool and at most [`MAX_CONCURRENT_HASHES`] at once; a burst of logins queues instead of
//! exhausting memory.

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

/// Hashes computed at the same time, at most.
pub const MAX_CONCURRENT_HASHES: usize = 4;

static PERMITS: Semaphore = Semaphore::const_new(MAX_CONCURRENT_HASHES);

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
    let _permit = PERMITS
        .acquire()
        .await
        .map_err(|e| HashError::Task(e.to_string()))?;
    tokio::task::spawn_blocking(work)
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
}
