//! The latest snapshot of every account and the exposition encoded from
//! them, shared between the refreshers (writers) and the HTTP server
//! (readers).

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use tracing::error;

use crate::metrics::{self, Exposition, ExpositionOptions};
use crate::snapshot::AccountSnapshot;

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
}

impl Store {
    /// A store for `accounts` refresh targets, none refreshed yet.
    pub fn new(accounts: usize, options: ExpositionOptions) -> Self {
        let empty = AccountStatus {
            snapshot: None,
            next_refresh: None,
        };
        Self {
            published: RwLock::new(Published {
                accounts: vec![empty; accounts],
                exposition: Exposition::default(),
            }),
            encoding: Mutex::new(()),
            options,
        }
    }

    /// Replaces the snapshot of target `index` and re-encodes the exposition.
    pub async fn publish(
        &self,
        index: usize,
        snapshot: AccountSnapshot,
        next_refresh: DateTime<Utc>,
    ) {
        let _encoding = self.encoding.lock().await;
        let snapshots: Arc<[AccountSnapshot]> = {
            let Ok(mut published) = self.published.write() else {
                return;
            };
            if let Some(slot) = published.accounts.get_mut(index) {
                slot.snapshot = Some(snapshot);
                slot.next_refresh = Some(next_refresh);
            }
            published
                .accounts
                .iter()
                .filter_map(|a| a.snapshot.clone())
                .collect()
        };
        match metrics::encode(snapshots, &self.options) {
            Ok(exposition) => {
                if let Ok(mut published) = self.published.write() {
                    published.exposition = exposition;
                }
            }
            Err(e) => {
                error!(error = %e, "encoding metrics failed; serving the previous exposition")
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
            .map(|p| p.accounts.iter().all(|a| a.snapshot.is_some()))
            .unwrap_or(false)
    }
}
