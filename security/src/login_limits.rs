//! Login limits of the user subgraph, per account and per client IP: defence in depth behind the
//! router's own per-field limits, so that a caller who reaches the subgraph some other way still
//! cannot guess passwords at speed.
//!
//! Two fixed windows:
//! - per account (the normalized email): failed logins; a correct password ends the window, so
//!   someone who mistyped twice is not locked out for the rest of it;
//! - per client IP: every attempt, failed or not, so one address cannot spray many accounts.
//!
//! Over either limit a login is refused before the password is hashed (hashing is the expensive
//! part, and refusing first keeps the answer time independent of the password), with the time
//! until the window ends. Accounts that do not exist are counted like those that do, so the limit
//! says nothing about which emails are registered. State lives in this process: each user
//! subgraph replica limits on its own, and the router's shared limits remain the first line.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// The header a router puts the caller's IP address in on every subgraph request (replacing any
/// the client sent), so that a subgraph behind it can limit per client, not per router.
pub const CLIENT_IP_HEADER: &str = "shippy-client-ip";

/// Login limit settings (`SHIPPY_LOGIN_LIMITS__...` in the user subgraph).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginLimitConfig {
    /// Failed logins an account may have within `account_window`; 0 turns the account limit off.
    pub account_failures: u32,
    /// The window of `account_failures`.
    #[serde(with = "humantime_serde")]
    pub account_window: Duration,
    /// Login attempts one client IP may make within `ip_window`; 0 turns the IP limit off.
    pub ip_attempts: u32,
    /// The window of `ip_attempts`.
    #[serde(with = "humantime_serde")]
    pub ip_window: Duration,
    /// Most accounts and IPs tracked at once (each); when full, keys whose window has ended are
    /// dropped, and if none has, new keys are refused until one does (fail closed).
    pub max_keys: usize,
}

impl Default for LoginLimitConfig {
    fn default() -> Self {
        LoginLimitConfig {
            // OWASP's usual lock-out threshold: plenty for a person who forgot which password
            // they used, 20 guesses an hour for anyone else.
            account_failures: 5,
            account_window: Duration::from_secs(15 * 60),
            // A shared office NAT logging in at the start of the day stays under it; a guesser
            // gets one try every three seconds.
            ip_attempts: 20,
            ip_window: Duration::from_secs(60),
            max_keys: 100_000,
        }
    }
}

/// A login refused by a limit; the client is told when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many login attempts; try again in {} s", retry_after.as_secs().max(1))]
pub struct LoginLimited {
    /// Until the window that refused the login ends.
    pub retry_after: Duration,
}

/// One key's current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

/// Fixed windows per key, bounded in number.
#[derive(Debug)]
struct Windows<K> {
    /// Never held across an await (every method here is synchronous).
    windows: Mutex<HashMap<K, Window>>,
    limit: u32,
    length: Duration,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> Windows<K> {
    fn new(limit: u32, length: Duration, max_keys: usize) -> Windows<K> {
        Windows {
            windows: Mutex::new(HashMap::new()),
            limit,
            length,
            max_keys,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Window>> {
        // Every critical section is one lookup and update; a panic cannot leave a half-done state.
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuses when `key` has used up its window.
    fn check(&self, key: &K, now: Instant) -> Result<(), LoginLimited> {
        if self.limit == 0 {
            return Ok(());
        }
        match self.lock().get(key) {
            Some(window) if window.count >= self.limit => {
                let ends = window.started + self.length;
                if ends > now {
                    Err(LoginLimited {
                        retry_after: ends - now,
                    })
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts one event for `key`.
    fn count(&self, key: &K, now: Instant) -> Result<(), LoginLimited> {
        if self.limit == 0 {
            return Ok(());
        }
        let mut windows = self.lock();
        if windows.len() >= self.max_keys && !windows.contains_key(key) {
            windows.retain(|_, w| w.started + self.length > now);
            if windows.len() >= self.max_keys {
                let soonest = windows
                    .values()
                    .map(|w| w.started + self.length)
                    .min()
                    .unwrap_or(now);
                return Err(LoginLimited {
                    retry_after: soonest.saturating_duration_since(now),
                });
            }
        }
        let window = windows.entry(key.clone()).or_insert(Window {
            started: now,
            count: 0,
        });
        if window.started + self.length <= now {
            *window = Window {
                started: now,
                count: 0,
            };
        }
        window.count = window.count.saturating_add(1);
        Ok(())
    }

    fn clear(&self, key: &K) {
        self.lock().remove(key);
    }
}

/// The user subgraph's login limits. Call [`begin`](Self::begin) before checking a password, then
/// [`failed`](Self::failed) or [`succeeded`](Self::succeeded).
#[derive(Debug)]
pub struct LoginLimiter {
    accounts: Windows<String>,
    ips: Windows<IpAddr>,
}

impl LoginLimiter {
    pub fn new(config: &LoginLimitConfig) -> LoginLimiter {
        LoginLimiter {
            accounts: Windows::new(
                config.account_failures,
                config.account_window,
                config.max_keys,
            ),
            ips: Windows::new(config.ip_attempts, config.ip_window, config.max_keys),
        }
    }

    /// Whether a login for `account` (normalized) from `ip` may be tried now; counts the attempt
    /// against the IP. `None` (the address is unknown) is limited as one shared key would be
    /// pointless, so only the account limit applies then.
    pub fn begin(&self, account: &str, ip: Option<IpAddr>) -> Result<(), LoginLimited> {
        let now = Instant::now();
        self.accounts.check(&account.to_owned(), now)?;
        if let Some(ip) = ip {
            self.ips.check(&ip, now)?;
            self.ips.count(&ip, now)?;
        }
        Ok(())
    }

    /// Counts a failed login (wrong password or unknown account) against `account`.
    pub fn failed(&self, account: &str) {
        // A full table refuses the next `begin` for new accounts anyway; nothing to add here.
        let _ = self.accounts.count(&account.to_owned(), Instant::now());
    }

    /// A correct password ends the account's window of failures.
    pub fn succeeded(&self, account: &str) {
        self.accounts.clear(&account.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoginLimitConfig {
        LoginLimitConfig {
            account_failures: 3,
            account_window: Duration::from_secs(900),
            ip_attempts: 5,
            ip_window: Duration::from_secs(60),
            max_keys: 100,
        }
    }

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));
    const OTHER_IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)));

    #[tokio::test(start_paused = true)]
    async fn an_account_is_limited_after_its_failures_until_the_window_ends() {
        let limiter = LoginLimiter::new(&config());
        for _ in 0..3 {
            limiter.begin("ada@example.com", IP).unwrap();
            limiter.failed("ada@example.com");
        }
        // From any IP: the account is what is protected.
        let refused = limiter.begin("ada@example.com", OTHER_IP).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(900));
        assert!(refused.to_string().contains("900 s"), "{refused}");
        // Other accounts are untouched.
        limiter.begin("bob@example.com", OTHER_IP).unwrap();
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(
            limiter
                .begin("ada@example.com", None)
                .unwrap_err()
                .retry_after,
            Duration::from_secs(300)
        );
        tokio::time::advance(Duration::from_secs(300)).await;
        limiter.begin("ada@example.com", None).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_correct_password_ends_the_failures() {
        let limiter = LoginLimiter::new(&config());
        for _ in 0..2 {
            limiter.begin("ada@example.com", None).unwrap();
            limiter.failed("ada@example.com");
        }
        limiter.begin("ada@example.com", None).unwrap();
        limiter.succeeded("ada@example.com");
        for _ in 0..2 {
            limiter.begin("ada@example.com", None).unwrap();
            limiter.failed("ada@example.com");
        }
        limiter.begin("ada@example.com", None).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_ip_is_limited_across_accounts_successful_or_not() {
        let limiter = LoginLimiter::new(&config());
        for n in 0..5 {
            limiter.begin(&format!("user{n}@example.com"), IP).unwrap();
        }
        let refused = limiter.begin("new@example.com", IP).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(60));
        // Another address is not affected; neither is an unknown one.
        limiter.begin("new@example.com", OTHER_IP).unwrap();
        limiter.begin("new@example.com", None).unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        limiter.begin("new@example.com", IP).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn zero_turns_a_limit_off() {
        let limiter = LoginLimiter::new(&LoginLimitConfig {
            account_failures: 0,
            ip_attempts: 0,
            ..config()
        });
        for _ in 0..50 {
            limiter.begin("ada@example.com", IP).unwrap();
            limiter.failed("ada@example.com");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_tables_are_bounded_and_fail_closed() {
        let limiter = LoginLimiter::new(&LoginLimitConfig {
            max_keys: 2,
            ..config()
        });
        limiter.begin("a@example.com", IP).unwrap();
        limiter.begin("b@example.com", OTHER_IP).unwrap();
        let third = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 3)));
        let refused = limiter.begin("c@example.com", third).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(60));
        // Known keys keep working.
        limiter.begin("c@example.com", IP).unwrap();
        // Once windows end, their room is reused.
        tokio::time::advance(Duration::from_secs(60)).await;
        limiter.begin("c@example.com", third).unwrap();
    }

    #[test]
    fn config_reads_human_durations_and_refuses_unknown_keys() {
        let config: LoginLimitConfig = serde_json::from_value(serde_json::json!({
            "account_failures": 10, "account_window": "30m", "ip_window": "2m"
        }))
        .unwrap();
        assert_eq!(config.account_failures, 10);
        assert_eq!(config.account_window, Duration::from_secs(1800));
        assert_eq!(config.ip_window, Duration::from_secs(120));
        assert_eq!(config.ip_attempts, 20);
        assert!(
            serde_json::from_value::<LoginLimitConfig>(serde_json::json!({"ip_attempt": 1}))
                .is_err()
        );
    }
}
