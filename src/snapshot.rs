//! The snapshot of one account: AWS's answers turned into the facts the
//! metrics report, computed purely from those answers and a given `now`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::config::{Config, Thresholds};
use crate::credential_report::{CredentialReport, CredentialRow};
use crate::root_password::{self, CloudTrailCoverage, Evidence, RootPasswordAge, days_between};

/// The account password policy (`GetAccountPasswordPolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum password length; AWS's default of 8 applies when absent.
    pub minimum_length: Option<i64>,
    /// At least one symbol required.
    pub require_symbols: bool,
    /// At least one digit required.
    pub require_numbers: bool,
    /// At least one upper-case letter required.
    pub require_uppercase: bool,
    /// At least one lower-case letter required.
    pub require_lowercase: bool,
    /// Days until a password expires; `None` when passwords never expire.
    pub max_age_days: Option<i64>,
    /// Number of previous passwords that cannot be reused; `None` when off.
    pub reuse_prevention: Option<i64>,
    /// Whether an expired password locks the user out until an admin resets it.
    pub hard_expiry: bool,
}

/// The parts of `GetAccountSummary` the exporter uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountSummary {
    /// `AccountMFAEnabled`.
    pub root_mfa_enabled: Option<bool>,
    /// `AccountAccessKeysPresent`.
    pub root_access_keys_present: Option<bool>,
    /// `AccountPasswordPresent` (only in recent API versions).
    pub root_password_present: Option<bool>,
    /// `Users`.
    pub users: Option<i64>,
}

/// The last good answer of each AWS call for one account; `None` until a
/// call first succeeds. A failed call leaves its previous answer in place.
#[derive(Debug, Clone, Default)]
pub struct AccountFacts {
    /// The account alias (`Some(None)`: the account has none).
    pub alias: Option<Option<String>>,
    /// The parsed credential report and when AWS generated it.
    pub report: Option<(CredentialReport, Option<DateTime<Utc>>)>,
    /// The password policy (`Some(None)`: the account has no custom policy).
    pub policy: Option<Option<PasswordPolicy>>,
    /// The account summary.
    pub summary: Option<AccountSummary>,
    /// Whether the root MFA device is virtual.
    pub root_virtual_mfa: Option<bool>,
    /// The last successful CloudTrail search.
    pub cloudtrail: Option<CloudTrailCoverage>,
}

/// Settings of one account that come from the operator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountSettings {
    /// A human name for the account.
    pub name: Option<String>,
    /// Maximum credential ages.
    pub thresholds: Thresholds,
    /// The root password's last change as declared in the config file.
    pub declared_root_password_change: Option<DateTime<Utc>>,
}

impl AccountSettings {
    /// The settings `config` gives `account_id`.
    pub fn from_config(config: &Config, account_id: &str) -> Self {
        let account = config.account(account_id);
        Self {
            name: account.and_then(|a| a.name.clone()),
            thresholds: config.thresholds(account_id),
            declared_root_password_change: account
                .and_then(|a| a.root_password_last_changed)
                .map(|d| d.0),
        }
    }
}

/// Everything the metrics say about one account.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSnapshot {
    /// The 12-digit account id, or `unknown` before it could be read.
    pub account_id: String,
    /// The account alias, empty when none or not known.
    pub alias: String,
    /// The operator's name for the account, empty when none.
    pub name: String,
    /// Maximum credential ages.
    pub thresholds: Thresholds,
    /// The root user's credentials.
    pub root: RootPosture,
    /// The password policy: `None` unknown, `Some(None)` no custom policy.
    pub policy: Option<Option<PasswordPolicy>>,
    /// The IAM users, from the credential report; `None` until one was read.
    pub users: Option<Users>,
    /// How refreshing this account goes.
    pub health: RefreshHealth,
}

/// The root user's credentials.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RootPosture {
    /// Whether the root user has a password, when AWS says.
    pub password_present: Option<bool>,
    /// The password's age; `None` when the root user has no password.
    pub password: Option<RootPasswordAge>,
    /// Whether MFA is enabled.
    pub mfa_enabled: Option<bool>,
    /// Whether that MFA is a hardware device.
    pub hardware_mfa: Option<bool>,
    /// Active root access keys.
    pub access_keys_active: Option<u32>,
    /// Last use of each root credential (`password`, `access_key_1`, `access_key_2`).
    pub last_used: Vec<(&'static str, DateTime<Utc>)>,
}

/// The IAM users of an account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Users {
    /// One entry per IAM user, in report order.
    pub users: Vec<UserCredentials>,
    /// Users with a console password and no MFA.
    pub console_without_mfa: u32,
    /// The oldest active access key's age, in days.
    pub oldest_access_key_age_days: Option<f64>,
    /// When AWS generated the credential report.
    pub report_generated: Option<DateTime<Utc>>,
    /// Rows of the report that could not be read.
    pub invalid_rows: usize,
}

/// One IAM user's credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct UserCredentials {
    /// The user name.
    pub name: String,
    /// Age of the console password, for users that have one.
    pub password_age_days: Option<f64>,
    /// Last sign-in with the password.
    pub password_last_used: Option<DateTime<Utc>>,
    /// Whether an MFA device is active.
    pub mfa_active: bool,
    /// The access keys that exist.
    pub access_keys: Vec<AccessKey>,
}

/// One existing access key.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessKey {
    /// The report's slot: `1` or `2`.
    pub slot: &'static str,
    /// Whether the key is active.
    pub active: bool,
    /// Days since the key was created or rotated; only for active keys.
    pub age_days: Option<f64>,
    /// Last use.
    pub last_used: Option<DateTime<Utc>>,
}

/// How refreshing an account goes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefreshHealth {
    /// Whether every call of the last refresh succeeded.
    pub success: bool,
    /// When a refresh last succeeded completely.
    pub last_success: Option<DateTime<Utc>>,
    /// How long the last refresh took, in seconds.
    pub duration_seconds: Option<f64>,
    /// Failed calls so far, by (operation, code).
    pub api_errors: BTreeMap<(String, String), u64>,
    /// The errors of the last refresh, for the landing page.
    pub last_errors: Vec<String>,
    /// The calls that failed in the last refresh, as `operation (code)`:
    /// what "the same failure" means when deciding whether to warn again.
    pub failing_calls: Vec<String>,
}

/// What an account's snapshot is computed from. The store keeps it, so that
/// ages can be recomputed as time passes without calling AWS again.
#[derive(Debug, Clone, Default)]
pub struct AccountInputs {
    /// The 12-digit account id, or `unknown` before it could be read.
    pub account_id: String,
    /// The last good answer of each AWS call.
    pub facts: AccountFacts,
    /// The root password change remembered in the state file.
    pub remembered_root_password_change: Option<DateTime<Utc>>,
    /// How refreshing the account goes.
    pub health: RefreshHealth,
}

impl AccountInputs {
    /// The snapshot of the account at `now`, with the operator's `settings`.
    pub fn snapshot(&self, settings: &AccountSettings, now: DateTime<Utc>) -> AccountSnapshot {
        let mut snapshot = AccountSnapshot::build(
            &self.account_id,
            &self.facts,
            settings,
            self.remembered_root_password_change,
            now,
        );
        snapshot.health = self.health.clone();
        snapshot
    }
}

impl AccountSnapshot {
    /// Computes the snapshot of `account_id` from what AWS answered, what the
    /// operator configured and what the state file remembers.
    pub fn build(
        account_id: &str,
        facts: &AccountFacts,
        settings: &AccountSettings,
        remembered_root_password_change: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        let report = facts.report.as_ref();
        let root_row = report.and_then(|(r, _)| r.rows.iter().find(|row| row.is_root()));
        let evidence = Evidence {
            password_present: facts.summary.as_ref().and_then(|s| s.root_password_present),
            cloudtrail: facts.cloudtrail.clone(),
            remembered: remembered_root_password_change,
            declared: settings.declared_root_password_change,
            account_created: root_row.and_then(|r| r.created),
        };
        Self {
            account_id: account_id.to_owned(),
            alias: facts.alias.clone().flatten().unwrap_or_default(),
            name: settings.name.clone().unwrap_or_default(),
            thresholds: settings.thresholds,
            root: root_posture(facts, root_row, &evidence, now),
            policy: facts.policy.clone(),
            users: report.map(|(r, generated)| users(r, *generated, now)),
            health: RefreshHealth::default(),
        }
    }
}

fn root_posture(
    facts: &AccountFacts,
    root_row: Option<&CredentialRow>,
    evidence: &Evidence,
    now: DateTime<Utc>,
) -> RootPosture {
    let summary = facts.summary.as_ref();
    let mfa_enabled = summary
        .and_then(|s| s.root_mfa_enabled)
        .or(root_row.map(|r| r.mfa_active));
    let hardware_mfa = match (mfa_enabled, facts.root_virtual_mfa) {
        (Some(false), _) => Some(false),
        (Some(true), Some(virtual_mfa)) => Some(!virtual_mfa),
        _ => None,
    };
    let access_keys_active = root_row
        .map(|r| r.access_keys.iter().filter(|k| k.active).count() as u32)
        .or_else(|| {
            summary
                .and_then(|s| s.root_access_keys_present)
                .filter(|present| !present)
                .map(|_| 0)
        });
    let mut last_used = Vec::new();
    if let Some(row) = root_row {
        let keys = [
            ("access_key_1", &row.access_keys[0]),
            ("access_key_2", &row.access_keys[1]),
        ];
        last_used.extend(row.password.last_used.map(|t| ("password", t)));
        last_used.extend(
            keys.iter()
                .filter_map(|(name, k)| k.last_used.map(|t| (*name, t))),
        );
    }
    RootPosture {
        password_present: evidence.password_present,
        password: root_password::resolve(evidence, now),
        mfa_enabled,
        hardware_mfa,
        access_keys_active,
        last_used,
    }
}

fn users(report: &CredentialReport, generated: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Users {
    let users: Vec<UserCredentials> = report
        .rows
        .iter()
        .filter(|row| !row.is_root())
        .map(|row| user(row, now))
        .collect();
    let console_without_mfa = report
        .rows
        .iter()
        .filter(|r| !r.is_root() && r.password.enabled == Some(true) && !r.mfa_active)
        .count() as u32;
    let oldest_access_key_age_days = users
        .iter()
        .flat_map(|u| u.access_keys.iter().filter_map(|k| k.age_days))
        .reduce(f64::max);
    Users {
        users,
        console_without_mfa,
        oldest_access_key_age_days,
        report_generated: generated,
        invalid_rows: report.invalid_rows.len(),
    }
}

fn user(row: &CredentialRow, now: DateTime<Utc>) -> UserCredentials {
    let has_password = row.password.enabled == Some(true);
    let access_keys = ["1", "2"]
        .into_iter()
        .zip(&row.access_keys)
        .filter(|(_, key)| key.exists())
        .map(|(slot, key)| AccessKey {
            slot,
            active: key.active,
            age_days: key
                .last_rotated
                .filter(|_| key.active)
                .map(|t| days_between(t, now)),
            last_used: key.last_used,
        })
        .collect();
    UserCredentials {
        name: row.user.clone(),
        password_age_days: row
            .password
            .last_changed
            .filter(|_| has_password)
            .map(|t| days_between(t, now)),
        password_last_used: row.password.last_used,
        mfa_active: row.mfa_active,
        access_keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential_report;

    const REPORT: &str = "user,arn,user_creation_time,password_enabled,password_last_used,\
password_last_changed,password_next_rotation,mfa_active,access_key_1_active,\
access_key_1_last_rotated,access_key_1_last_used_date,access_key_2_active,\
access_key_2_last_rotated,access_key_2_last_used_date
<root_account>,arn:aws:iam::111122223333:root,2020-01-01T00:00:00+00:00,not_supported,\
2026-12-02T12:00:00+00:00,not_supported,not_supported,true,true,2025-01-01T00:00:00+00:00,\
2026-12-01T00:00:00+00:00,false,N/A,N/A
alice,arn:aws:iam::111122223333:user/alice,2025-01-01T00:00:00+00:00,true,no_information,\
2026-11-03T12:00:00+00:00,N/A,false,false,2026-01-01T00:00:00+00:00,N/A,false,N/A,N/A
deploy,arn:aws:iam::111122223333:user/deploy,2025-01-01T00:00:00+00:00,false,N/A,N/A,N/A,\
false,true,2026-05-17T12:00:00+00:00,2026-12-03T11:00:00+00:00,true,2026-11-23T12:00:00+00:00,N/A
";

    fn now() -> DateTime<Utc> {
        "2026-12-03T12:00:00Z".parse().expect("time")
    }

    fn facts() -> AccountFacts {
        let report = credential_report::parse(REPORT.as_bytes()).expect("report");
        AccountFacts {
            alias: Some(Some("acme-prod".to_owned())),
            report: Some((report, Some(now()))),
            policy: Some(None),
            summary: Some(AccountSummary {
                root_mfa_enabled: Some(true),
                root_access_keys_present: Some(true),
                root_password_present: Some(true),
                users: Some(2),
            }),
            root_virtual_mfa: Some(true),
            cloudtrail: None,
        }
    }

    #[test]
    fn users_get_ages_from_the_report() {
        let snapshot = AccountSnapshot::build(
            "111122223333",
            &facts(),
            &AccountSettings::default(),
            None,
            now(),
        );

        let users = snapshot.users.expect("users");
        assert_eq!(users.users.len(), 2);
        assert_eq!(users.console_without_mfa, 1);
        assert_eq!(users.oldest_access_key_age_days, Some(200.0));
        let alice = &users.users[0];
        assert_eq!(alice.password_age_days, Some(30.0));
        assert_eq!(alice.access_keys.len(), 1);
        assert_eq!(alice.access_keys[0].age_days, None);
        let deploy = &users.users[1];
        assert_eq!(deploy.password_age_days, None);
        let ages: Vec<_> = deploy.access_keys.iter().map(|k| k.age_days).collect();
        assert_eq!(ages, [Some(200.0), Some(10.0)]);
    }

    #[test]
    fn root_posture_combines_summary_report_and_mfa_devices() {
        let snapshot = AccountSnapshot::build(
            "111122223333",
            &facts(),
            &AccountSettings::default(),
            None,
            now(),
        );

        let root = snapshot.root;
        assert_eq!(root.mfa_enabled, Some(true));
        assert_eq!(root.hardware_mfa, Some(false));
        assert_eq!(root.access_keys_active, Some(1));
        assert_eq!(
            root.last_used,
            [
                ("password", "2026-12-02T12:00:00Z".parse().expect("time")),
                (
                    "access_key_1",
                    "2026-12-01T00:00:00Z".parse().expect("time")
                ),
            ]
        );
        assert_eq!(snapshot.alias, "acme-prod");
    }

    #[test]
    fn root_password_age_uses_declared_date_without_cloudtrail() {
        let settings = AccountSettings {
            declared_root_password_change: Some("2026-09-04T12:00:00Z".parse().expect("time")),
            ..AccountSettings::default()
        };

        let snapshot = AccountSnapshot::build("111122223333", &facts(), &settings, None, now());

        let age = snapshot.root.password.expect("password");
        assert_eq!(age.age_days, Some(90.0));
        assert!(age.exact);
    }
}
