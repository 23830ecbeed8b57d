//! The latest snapshot of every account and the exposition encoded from
//! them, shared between the refreshers (writers) and the HTTP server
//! (readers).
//!
//! The store keeps what each snapshot is computed from, so that ages can be
//! brought up to date every minute between refreshes, without AWS calls.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use tracing::error;

use crate::config::{ConfigError, SharedConfig};
use crate::metrics::{self, Exposition, ExpositionOptions};
use crate::snapshot::{AccountInputs, AccountSettings, AccountSnapshot};

/// How often ages are recomputed between refreshes.
pub const AGE_UPDATE_INTERVAL: Duration = Duration::from_secs(60);

/// What the landing page shows of one account.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountStatus {
    /// The latest snapshot; `None` before the first refresh finished.
    pub snapshot: Option<AccountSnapshot>,
    /// When the next refresh is due.
    pub next_refresh: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct Published {
    inputs: Vec<Option<Arc<AccountInputs>>>,
    accounts: Vec<AccountStatus>,
    exposition: Exposition,
}

/// Shared state of the exporter.
#[derive(Debug)]
pub struct Store {
    published: RwLock<Published>,
    /// Serialises encoding so that the newest snapshots are always the last
    /// ones published.
    encoding: Mutex<()>,
    options: ExpositionOptions,
    config: Arc<SharedConfig>,
}

impl Store {
    /// A store for `accounts` refresh targets, none refreshed yet, whose
    /// per-account settings come from `config` each time it encodes.
    pub fn new(accounts: usize, options: ExpositionOptions, config: Arc<SharedConfig>) -> Self {
        let empty = AccountStatus {
            snapshot: None,
            next_refresh: None,
        };
        Self {
            published: RwLock::new(Published {
                inputs: vec![None; accounts],
                accounts: vec![empty; accounts],
                exposition: Exposition::default(),
            }),
            encoding: Mutex::new(()),
            options,
            config,
        }
    }

    /// Replaces what target `index` is computed from and re-encodes the
    /// exposition as of `now`.
    pub async fn publish(
        &self,
        index: usize,
        inputs: AccountInputs,
        next_refresh: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let _encoding = self.encoding.lock().await;
        if let Ok(mut published) = self.published.write() {
            if let Some(slot) = published.inputs.get_mut(index) {
                *slot = Some(Arc::new(inputs));
            }
            if let Some(status) = published.accounts.get_mut(index) {
                status.next_refresh = Some(next_refresh);
            }
        }
        self.rebuild(now);
    }

    /// Recomputes every account's snapshot as of `now` (and with the
    /// configuration now in force) and re-encodes.
    pub async fn update_ages(&self, now: DateTime<Utc>) {
        let _encoding = self.encoding.lock().await;
        self.rebuild(now);
    }

    /// Reads the config file again and, when it is valid, re-encodes with
    /// its settings at once; otherwise the settings in force stay.
    pub async fn reload_config(&self) -> Result<(), ConfigError> {
        self.config.reload()?;
        self.update_ages(Utc::now()).await;
        Ok(())
    }

    /// Calls [`Store::update_ages`] every `every`, forever.
    pub async fn keep_ages_current(self: Arc<Self>, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.update_ages(Utc::now()).await;
        }
    }

    /// Builds the snapshots outside the lock, then swaps them in. Callers
    /// hold `encoding`.
    fn rebuild(&self, now: DateTime<Utc>) {
        let inputs = match self.published.read() {
            Ok(published) => published.inputs.clone(),
            Err(_) => return,
        };
        let config = self.config.current();
        let snapshots: Vec<Option<AccountSnapshot>> = inputs
            .iter()
            .map(|i| {
                i.as_ref().map(|i| {
                    let settings = AccountSettings::from_config(&config, &i.account_id);
                    i.snapshot(&settings, now)
                })
            })
            .collect();
        let built: Arc<[AccountSnapshot]> = snapshots.iter().flatten().cloned().collect();
        let exposition = match metrics::encode(built, &self.options) {
            Ok(exposition) => Some(exposition),
            Err(e) => {
                error!(error = %e, "encoding metrics failed; serving the previous exposition");
                None
            }
        };
        if let Ok(mut published) = self.published.write() {
            for (status, snapshot) in published.accounts.iter_mut().zip(snapshots) {
                status.snapshot = snapshot;
            }
            if let Some(exposition) = exposition {
                published.exposition = exposition;
            }
        }
    }

    /// The current exposition (cheap: the bytes are shared).
    pub fn exposition(&self) -> Exposition {
        self.published
            .read()
            .map(|p| p.exposition.clone())
            .unwrap_or_default()
    }

    /// Every account's status, for the landing page.
    pub fn statuses(&self) -> Vec<AccountStatus> {
        self.published
            .read()
            .map(|p| p.accounts.clone())
            .unwrap_or_default()
    }

    /// Whether every account has finished its first refresh.
    pub fn ready(&self) -> bool {
        self.published
            .read()
            .map(|p| p.inputs.iter().all(Option::is_some))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::metrics::{BuildInfo, Format};
    use crate::snapshot::AccountFacts;

    fn store(accounts: usize, config: Config) -> Store {
        Store::new(
            accounts,
            ExpositionOptions {
                collect_users: true,
                build: BuildInfo::current(),
            },
            Arc::new(SharedConfig::new(None, config)),
        )
    }

    fn root_age_line(store: &Store) -> String {
        let text = store.exposition().plain(Format::Text);
        String::from_utf8_lossy(&text)
            .lines()
            .find(|l| l.starts_with("aws_iam_root_password_age_days{"))
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test]
    async fn ages_move_on_between_refreshes() {
        let changed: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().expect("time");
        let config = Config::parse(
            "accounts: [{account_id: \"111122223333\", root_password_last_changed: 2026-11-23T12:00:00Z}]",
        )
        .expect("config");
        let inputs = AccountInputs {
            account_id: "111122223333".to_owned(),
            facts: AccountFacts::default(),
            ..AccountInputs::default()
        };
        let store = store(1, config);
        let refreshed = changed + chrono::Duration::days(10);

        store.publish(0, inputs, refreshed, refreshed).await;
        let at_refresh = root_age_line(&store);
        store
            .update_ages(refreshed + chrono::Duration::hours(12))
            .await;
        let half_a_day_later = root_age_line(&store);

        assert!(!store.statuses().is_empty() && store.ready());
        assert_eq!(
            at_refresh,
            "aws_iam_root_password_age_days{account_id=\"111122223333\"} 10.0"
        );
        assert_eq!(
            half_a_day_later,
            "aws_iam_root_password_age_days{account_id=\"111122223333\"} 10.5"
        );
    }

    #[tokio::test]
    async fn not_ready_until_every_account_was_published() {
        let store = store(2, Config::default());
        let now = Utc::now();

        store.publish(0, AccountInputs::default(), now, now).await;

        assert!(!store.ready());
    }
}
