//! `reload`: watching the config file (restart-only).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Hot reload of the config file. Sections that can change safely while serving (`limits`,
/// `csrf`, `introspection`, `auth`, `rate_limit`) are applied at once; changes elsewhere are
/// logged as needing a restart and ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReloadConfig {
    /// Watch the file given with `--config`.
    pub watch: bool,
    /// How often the file is checked for changes.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: true,
            interval: Duration::from_secs(2),
        }
    }
}
