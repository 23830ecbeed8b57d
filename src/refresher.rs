//! The poll loop: refreshes each account in the background, keeps the last
//! good answer of every call, and publishes a new snapshot after each try.
//!
//! A failed call never discards what an earlier refresh learned; the account
//! is marked as failing and retried with backoff, and one failing account
//! never holds back another.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use crate::aws::{ApiError, AwsClients, CloudTrailSearch, ErrorSink, RawReport};
use crate::credential_report;
use crate::root_password::CloudTrailCoverage;
use crate::snapshot::{AccountFacts, AccountInputs, RefreshHealth};
use crate::state::{self, State};
use crate::store::Store;

/// The label used before an account's id could be read.
pub const UNKNOWN_ACCOUNT: &str = "unknown";

/// The first wait after a failed refresh; it doubles up to the interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(15);

/// How refreshing is paced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshOptions {
    /// Time between two successful refreshes (±10 % jitter).
    pub interval: Duration,
    /// How far back CloudTrail is searched.
    pub cloudtrail_lookback: Duration,
}

/// The state file and what it holds, shared by every account.
#[derive(Debug, Default)]
pub struct StateKeeper {
    path: Option<PathBuf>,
    state: Mutex<State>,
}

impl StateKeeper {
    /// Keeps `state`, writing it back to `path` when it changes.
    pub fn new(path: Option<PathBuf>, state: State) -> Self {
        Self {
            path,
            state: Mutex::new(state),
        }
    }

    fn remembered(&self, account_id: &str) -> Option<DateTime<Utc>> {
        self.state.lock().ok()?.last_change(account_id)
    }

    fn remember(
        &self,
        account_id: &str,
        change: &crate::cloudtrail_event::RootPasswordChange,
        now: DateTime<Utc>,
    ) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if !state.remember(account_id, change, now) {
            return;
        }
        let Some(path) = &self.path else {
            return;
        };
        match state::save(path, &state) {
            Ok(()) => {
                info!(account_id, changed_at = %change.at, path = %path.display(), "root password change remembered")
            }
            Err(e) => {
                warn!(account_id, path = %path.display(), error = %e, "writing the state file failed; the change is kept in memory")
            }
        }
    }
}

/// Refreshes one account, forever.
#[derive(Debug)]
pub struct AccountRefresher {
    /// The account's position in the store.
    pub index: usize,
    /// The clients that reach the account.
    pub clients: AwsClients,
    /// The account id, when known in advance.
    pub account_id: Option<String>,
    /// The remembered root password changes.
    pub state: Arc<StateKeeper>,
    /// Pacing.
    pub options: RefreshOptions,
    /// Where snapshots go.
    pub store: Arc<Store>,
}

/// What one refresh found.
#[derive(Debug, Default)]
struct Attempt {
    /// Errors that made a call fail.
    failed: Vec<ApiError>,
    /// Errors that were retried successfully.
    retried: Vec<ApiError>,
}

impl AccountRefresher {
    /// Runs the refresh loop until the task is dropped.
    pub async fn run(mut self) {
        let mut facts = AccountFacts::default();
        let mut health = RefreshHealth::default();
        let mut consecutive_failures = 0_u32;
        loop {
            let started = Instant::now();
            let now = Utc::now();
            let attempt = self.refresh(&mut facts, now).await;
            let success = attempt.failed.is_empty();
            self.log_transition(
                &health,
                &attempt,
                consecutive_failures == 0 && health.last_success.is_none(),
            );
            record(&mut health, &attempt, now, started.elapsed());
            consecutive_failures = if success { 0 } else { consecutive_failures + 1 };

            let delay = next_delay(self.options.interval, consecutive_failures);
            let account_id = self.account_id.as_deref().unwrap_or(UNKNOWN_ACCOUNT);
            let inputs = AccountInputs {
                account_id: account_id.to_owned(),
                facts: facts.clone(),
                remembered_root_password_change: self.state.remembered(account_id),
                health: health.clone(),
            };
            let now = Utc::now();
            let next = now + chrono::Duration::from_std(delay).unwrap_or_default();
            self.store.publish(self.index, inputs, next, now).await;
            debug!(account_id, ?delay, success, "refresh finished");
            tokio::time::sleep(delay).await;
        }
    }

    /// Warns when an account starts failing, or fails differently; says so
    /// when it recovers. Repeats of the same failure stay at debug.
    fn log_transition(&self, before: &RefreshHealth, attempt: &Attempt, first: bool) {
        let account_id = self.account_id.as_deref().unwrap_or(UNKNOWN_ACCOUNT);
        let errors: Vec<String> = attempt.failed.iter().map(ToString::to_string).collect();
        if errors.is_empty() {
            if !before.success && !first {
                info!(account_id, "refresh succeeded again");
            }
        } else if before.success || first || before.failing_calls != failing_calls(attempt) {
            warn!(account_id, error = %errors.join("; "), "refresh failed; keeping the last good data");
        } else {
            debug!(account_id, error = %errors.join("; "), "refresh still failing");
        }
    }

    /// One refresh: every call the exporter makes, concurrently; each answer
    /// that arrives replaces the previous one in `facts`.
    async fn refresh(&mut self, facts: &mut AccountFacts, now: DateTime<Utc>) -> Attempt {
        let mut attempt = Attempt::default();
        let account_id = match self.resolve_account_id().await {
            Ok(id) => id,
            Err(e) => {
                attempt.failed.push(e);
                return attempt;
            }
        };

        let sink = ErrorSink::default();
        let lookback =
            chrono::Duration::from_std(self.options.cloudtrail_lookback).unwrap_or_default();
        let searched_from = now - lookback;
        let clients = &self.clients;
        let (report, policy, summary, virtual_mfa, alias, cloudtrail) = tokio::join!(
            clients.credential_report(&sink),
            clients.password_policy(),
            clients.account_summary(),
            clients.root_has_virtual_mfa(&account_id),
            clients.account_alias(),
            async {
                match clients.searches_cloudtrail() {
                    true => Some(clients.root_password_changes(searched_from, now).await),
                    false => None,
                }
            },
        );
        attempt.retried = sink.take();

        let results = [
            report.and_then(|raw| keep_report(facts, &account_id, raw)),
            policy.map(|p| facts.policy = Some(p)),
            summary.map(|s| facts.summary = Some(s)),
            virtual_mfa.map(|v| facts.root_virtual_mfa = Some(v)),
            alias.map(|a| facts.alias = Some(a)),
            cloudtrail.map_or(Ok(()), |search| {
                search.map(|found| self.keep_search(facts, &account_id, found, searched_from, now))
            }),
        ];
        attempt
            .failed
            .extend(results.into_iter().filter_map(Result::err));
        attempt
    }

    /// The account id: known, or asked of STS once.
    async fn resolve_account_id(&mut self) -> Result<String, ApiError> {
        if let Some(id) = &self.account_id {
            return Ok(id.clone());
        }
        let id = self.clients.caller_account_id().await?;
        info!(account_id = %id, "account found");
        self.account_id = Some(id.clone());
        Ok(id)
    }

    /// Records a successful CloudTrail search, remembering a change it found.
    fn keep_search(
        &self,
        facts: &mut AccountFacts,
        account_id: &str,
        found: CloudTrailSearch,
        searched_from: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        if let Some(first) = found.malformed.first() {
            warn!(account_id, count = found.malformed.len(), first = %first, "unreadable CloudTrail events skipped");
        }
        if let Some(change) = &found.newest_change {
            self.state.remember(account_id, change, now);
        }
        facts.cloudtrail = Some(CloudTrailCoverage {
            searched_from,
            newest_change: found.newest_change.map(|c| c.at),
        });
    }
}

/// Parses a downloaded report into `facts`; an unreadable one is an error
/// and leaves the previous report in place.
fn keep_report(facts: &mut AccountFacts, account_id: &str, raw: RawReport) -> Result<(), ApiError> {
    let parsed = credential_report::parse(&raw.content).map_err(|e| ApiError {
        operation: "GetCredentialReport",
        code: "MalformedReport".to_owned(),
        message: e.to_string(),
    })?;
    for row in &parsed.invalid_rows {
        debug!(account_id, line = row.line, reason = %row.reason, "skipping credential report row");
    }
    if !parsed.invalid_rows.is_empty() {
        warn!(
            account_id,
            skipped = parsed.invalid_rows.len(),
            "credential report rows could not be read"
        );
    }
    facts.report = Some((parsed, raw.generated));
    Ok(())
}

fn record(health: &mut RefreshHealth, attempt: &Attempt, now: DateTime<Utc>, took: Duration) {
    health.success = attempt.failed.is_empty();
    if health.success {
        health.last_success = Some(now);
    }
    health.duration_seconds = Some(took.as_secs_f64());
    for error in attempt.failed.iter().chain(&attempt.retried) {
        *health
            .api_errors
            .entry((error.operation.to_owned(), error.code.clone()))
            .or_default() += 1;
    }
    health.last_errors = attempt.failed.iter().map(ToString::to_string).collect();
    health.failing_calls = failing_calls(attempt);
}

fn failing_calls(attempt: &Attempt) -> Vec<String> {
    let mut calls: Vec<String> = attempt
        .failed
        .iter()
        .map(|e| format!("{} ({})", e.operation, e.code))
        .collect();
    calls.sort();
    calls
}

/// The wait before the next refresh: the interval with ±10 % jitter after a
/// success, an exponential backoff capped at the interval after failures.
fn next_delay(interval: Duration, consecutive_failures: u32) -> Duration {
    let base = match consecutive_failures {
        0 => interval,
        n => FIRST_BACKOFF
            .saturating_mul(1_u32 << (n - 1).min(16))
            .min(interval),
    };
    base.mul_f64(rand::random_range(0.9..=1.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_never_exceeds_the_interval() {
        let hour = Duration::from_secs(3600);

        let delays: Vec<u64> = (1..=10).map(|n| next_delay(hour, n).as_secs()).collect();

        for (n, delay) in delays.iter().enumerate() {
            let expected = (15_u64 << n).min(3600) as f64;
            assert!(
                (*delay as f64) >= expected * 0.9 - 1.0 && (*delay as f64) <= expected * 1.1 + 1.0
            );
        }
    }

    #[test]
    fn success_waits_the_interval_with_jitter() {
        let delay = next_delay(Duration::from_secs(1000), 0).as_secs();

        assert!((900..=1100).contains(&delay), "{delay}");
    }
}
