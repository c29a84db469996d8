//! Logging set-up for Shippy processes: `RUST_LOG` filters, human-readable or JSON lines.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// The filter used when `RUST_LOG` is unset: our crates at `info`, chatty dependencies quieter.
pub const DEFAULT_FILTER: &str =
    "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,tower_http=info";

/// Installs the global subscriber. `json` switches to one JSON object per line (for log shippers).
/// Calling it twice is harmless (the second call does nothing), so tests can call it freely.
pub fn init(json: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry.with(fmt::layer().json()).try_init()
    } else {
        registry.with(fmt::layer()).try_init()
    };
    // Err means a subscriber is already set (a second call, or a test harness): keep that one.
    let _ = result;
}
