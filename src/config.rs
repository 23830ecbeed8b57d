//! The optional YAML configuration file: rotation thresholds and per-account
//! facts that AWS cannot tell.
//!
//! ```yaml
//! defaults:
//!   thresholds: {root_password: 90d, user_password: 90d, access_key: 90d}
//! accounts:
//!   - account_id: "111122223333"
//!     name: production
//!     thresholds: {root_password: 30d}
//!     root_password_last_changed: 2026-09-01
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use thiserror::Error;

/// Seconds in a day, the unit of every rotation policy.
pub const SECONDS_PER_DAY: f64 = 86_400.0;

/// The default maximum age of every credential: 90 days, as in CIS and AWS Config.
pub const DEFAULT_THRESHOLD: Duration = Duration::from_secs(90 * 86_400);

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Settings for every account unless the account overrides them.
    #[serde(default)]
    pub defaults: Defaults,
    /// Per-account settings, matched by account id.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
}

/// Settings that apply to every account.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Maximum credential ages.
    #[serde(default)]
    pub thresholds: ThresholdOverrides,
}

/// Settings of one account.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The 12-digit account id these settings belong to.
    pub account_id: String,
    /// A human name, exported as the `account_name` label.
    #[serde(default)]
    pub name: Option<String>,
    /// Maximum credential ages for this account.
    #[serde(default)]
    pub thresholds: ThresholdOverrides,
    /// When the root password was last changed, as tracked outside AWS.
    #[serde(default)]
    pub root_password_last_changed: Option<DeclaredDate>,
}

/// Thresholds as written in the file; unset ones fall back.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdOverrides {
    /// Maximum age of the root user's password.
    #[serde(default, with = "humantime_serde_opt")]
    pub root_password: Option<Duration>,
    /// Maximum age of IAM users' passwords.
    #[serde(default, with = "humantime_serde_opt")]
    pub user_password: Option<Duration>,
    /// Maximum age of active access keys.
    #[serde(default, with = "humantime_serde_opt")]
    pub access_key: Option<Duration>,
}

/// The thresholds in force for one account.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Maximum age of the root user's password.
    pub root_password: Duration,
    /// Maximum age of IAM users' passwords.
    pub user_password: Duration,
    /// Maximum age of active access keys.
    pub access_key: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            root_password: DEFAULT_THRESHOLD,
            user_password: DEFAULT_THRESHOLD,
            access_key: DEFAULT_THRESHOLD,
        }
    }
}

impl ThresholdOverrides {
    fn over(&self, base: Thresholds) -> Thresholds {
        Thresholds {
            root_password: self.root_password.unwrap_or(base.root_password),
            user_password: self.user_password.unwrap_or(base.user_password),
            access_key: self.access_key.unwrap_or(base.access_key),
        }
    }
}

/// A date (`2026-09-01`, midnight UTC) or a full RFC 3339 timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeclaredDate(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for DeclaredDate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_declared_date(&text)
            .map(DeclaredDate)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a date (YYYY-MM-DD)")))
    }
}

fn parse_declared_date(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(date) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Why the configuration file was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed or has unknown keys or bad values.
    #[error("parsing config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said, with line and column.
        message: String,
    },
    /// The YAML is well formed but says something impossible.
    #[error("config file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: shown.clone(),
                message,
            },
            ConfigError::Invalid { message, .. } => ConfigError::Invalid {
                path: shown.clone(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
                path: String::new(),
                message: e.to_string(),
            })?
        };
        config.validate().map_err(|message| ConfigError::Invalid {
            path: String::new(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let mut seen = HashSet::new();
        for account in &self.accounts {
            let id = &account.account_id;
            if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "account_id `{id}` is not a 12-digit AWS account id"
                ));
            }
            if !seen.insert(id) {
                return Err(format!("account {id} is listed twice"));
            }
        }
        let all = std::iter::once(&self.defaults.thresholds)
            .chain(self.accounts.iter().map(|a| &a.thresholds));
        for overrides in all {
            let values = [
                overrides.root_password,
                overrides.user_password,
                overrides.access_key,
            ];
            if values.iter().flatten().any(Duration::is_zero) {
                return Err("a threshold of zero would always fire; use at least 1d".to_owned());
            }
        }
        Ok(())
    }

    /// The settings of `account_id`, if the file lists it.
    pub fn account(&self, account_id: &str) -> Option<&AccountConfig> {
        self.accounts.iter().find(|a| a.account_id == account_id)
    }

    /// The thresholds in force for `account_id`.
    pub fn thresholds(&self, account_id: &str) -> Thresholds {
        let defaults = self.defaults.thresholds.over(Thresholds::default());
        match self.account(account_id) {
            Some(account) => account.thresholds.over(defaults),
            None => defaults,
        }
    }
}

/// The configuration in force, which a reload replaces as a whole.
#[derive(Debug, Default)]
pub struct SharedConfig {
    path: Option<PathBuf>,
    current: RwLock<Arc<Config>>,
}

impl SharedConfig {
    /// Holds `config`, read from `path` (`None`: no file, nothing to reload).
    pub fn new(path: Option<PathBuf>, config: Config) -> Self {
        Self {
            path,
            current: RwLock::new(Arc::new(config)),
        }
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Config> {
        self.current
            .read()
            .map(|c| Arc::clone(&c))
            .unwrap_or_default()
    }

    /// Reads the file again. On any error the configuration in force stays
    /// as it is and the error says why.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let config = Config::load(path)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(config);
        }
        Ok(())
    }
}

/// Serde glue for optional humantime durations (`90d`, `12h`).
mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            humantime::parse_duration(&t)
                .map_err(|e| serde::de::Error::custom(format!("`{t}` is not a duration: {e}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_overrides_fall_back_to_defaults_then_to_ninety_days() {
        let config = Config::parse(
            "defaults:\n  thresholds: {access_key: 45d}\naccounts:\n  - account_id: \"111122223333\"\n    thresholds: {root_password: 7d}\n",
        )
        .expect("valid");

        let strict = config.thresholds("111122223333");
        let other = config.thresholds("444455556666");

        assert_eq!(strict.root_password, Duration::from_secs(7 * 86_400));
        assert_eq!(strict.access_key, Duration::from_secs(45 * 86_400));
        assert_eq!(strict.user_password, DEFAULT_THRESHOLD);
        assert_eq!(other.root_password, DEFAULT_THRESHOLD);
        assert_eq!(other.access_key, Duration::from_secs(45 * 86_400));
    }

    #[test]
    fn declared_root_password_date_is_midnight_utc() {
        let config = Config::parse(
            "accounts:\n  - account_id: \"111122223333\"\n    root_password_last_changed: 2026-09-01\n",
        )
        .expect("valid");

        let declared = config.accounts[0].root_password_last_changed.expect("date");

        assert_eq!(declared.0.to_rfc3339(), "2026-09-01T00:00:00+00:00");
    }

    #[test]
    fn empty_file_is_the_default_config() {
        assert_eq!(Config::parse("  \n").expect("valid"), Config::default());
    }

    #[test]
    fn mistakes_are_explained() {
        let cases = [
            (
                "defaults: {thresholds: {root_password: ninety}}",
                "is not a duration",
            ),
            (
                "accounts: [{account_id: \"12\"}]",
                "not a 12-digit AWS account id",
            ),
            ("acounts: []", "unknown field `acounts`"),
            (
                "accounts: [{account_id: \"111122223333\", root_password_last_changed: soon}]",
                "`soon` is not a date",
            ),
            (
                "accounts: [{account_id: \"111122223333\"}, {account_id: \"111122223333\"}]",
                "listed twice",
            ),
            (
                "defaults: {thresholds: {access_key: 0s}}",
                "threshold of zero",
            ),
            ("accounts: [", "parsing config file"),
        ];

        for (text, expected) in cases {
            let error = Config::parse(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn mutated_config_files_never_panic() {
        let valid = b"defaults:\n  thresholds: {root_password: 90d, access_key: 45d}\naccounts:\n  - account_id: \"111122223333\"\n    name: prod\n    root_password_last_changed: 2026-09-01\n";
        let mut mutator = crate::test_support::Mutator::new(0x00C0_FFEE);

        for _ in 0..3_000 {
            let input = mutator.mutate(valid);

            let _ = Config::parse(&String::from_utf8_lossy(&input));
        }
    }
}
