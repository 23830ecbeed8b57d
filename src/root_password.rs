//! The root password's age, from every source AWS and the operator offer.
//!
//! The credential report writes `not_supported` where the root password's
//! last change would be, so the age is pieced together from, in order:
//!
//! 1. a root `PasswordUpdated` event found in CloudTrail (90 days at most);
//! 2. a change remembered in the state file from an earlier look;
//! 3. a date the operator declared in the config file;
//! 4. the account's creation, when CloudTrail covers the account's whole life
//!    and saw no change.
//!
//! The newest known change wins. When no change is known, the age reported
//! is the one that is certain: the length of the window CloudTrail searched,
//! flagged as a lower bound. When no source could be read at all, no age is
//! reported rather than a made-up one.

use chrono::{DateTime, Utc};

use crate::config::SECONDS_PER_DAY;

/// Where a known last change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// A root password change event found by `LookupEvents`.
    CloudTrail,
    /// A change remembered from an earlier look, in the state file.
    State,
    /// A date declared in the config file.
    Config,
    /// The account's creation, with no change since.
    AccountCreation,
}

impl Source {
    /// The value of the `source` label.
    pub fn label(self) -> &'static str {
        match self {
            Source::CloudTrail => "cloudtrail",
            Source::State => "state",
            Source::Config => "config",
            Source::AccountCreation => "account_creation",
        }
    }
}

/// The result of the last successful CloudTrail search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudTrailCoverage {
    /// The start of the window searched.
    pub searched_from: DateTime<Utc>,
    /// The newest root password change found in it.
    pub newest_change: Option<DateTime<Utc>>,
}

/// Everything known about the root password of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// `AccountPasswordPresent` from `GetAccountSummary`, when AWS gives it.
    pub password_present: Option<bool>,
    /// The last successful CloudTrail search, if any succeeded.
    pub cloudtrail: Option<CloudTrailCoverage>,
    /// The newest change remembered in the state file.
    pub remembered: Option<DateTime<Utc>>,
    /// The date declared in the config file.
    pub declared: Option<DateTime<Utc>>,
    /// When the account was created (root row of the credential report).
    pub account_created: Option<DateTime<Utc>>,
}

/// The root password's age as the exporter reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RootPasswordAge {
    /// Days since the last change; a lower bound when `exact` is false;
    /// `None` when nothing at all could be learned.
    pub age_days: Option<f64>,
    /// Whether `age_days` is the real age rather than a lower bound.
    pub exact: bool,
    /// The last change and where it came from, when known.
    pub last_changed: Option<(DateTime<Utc>, Source)>,
}

/// Works out the root password's age at `now`, or `None` when the root user
/// has no password.
pub fn resolve(evidence: &Evidence, now: DateTime<Utc>) -> Option<RootPasswordAge> {
    if evidence.password_present == Some(false) {
        return None;
    }
    let age_at = |t: DateTime<Utc>| days_between(t, now);

    if let Some((at, source)) = newest_known_change(evidence) {
        return Some(RootPasswordAge {
            age_days: Some(age_at(at)),
            exact: true,
            last_changed: Some((at, source)),
        });
    }

    let Some(coverage) = &evidence.cloudtrail else {
        return Some(RootPasswordAge {
            age_days: None,
            exact: false,
            last_changed: None,
        });
    };
    match evidence.account_created {
        Some(created) if created >= coverage.searched_from => Some(RootPasswordAge {
            age_days: Some(age_at(created)),
            exact: true,
            last_changed: Some((created, Source::AccountCreation)),
        }),
        _ => Some(RootPasswordAge {
            age_days: Some(age_at(coverage.searched_from)),
            exact: false,
            last_changed: None,
        }),
    }
}

/// The newest change among CloudTrail, the state file and the config file;
/// on equal times the earlier source in that list is named.
fn newest_known_change(evidence: &Evidence) -> Option<(DateTime<Utc>, Source)> {
    let cloudtrail = evidence.cloudtrail.as_ref().and_then(|c| c.newest_change);
    [
        (cloudtrail, Source::CloudTrail),
        (evidence.remembered, Source::State),
        (evidence.declared, Source::Config),
    ]
    .into_iter()
    .filter_map(|(at, source)| at.map(|at| (at, source)))
    .max_by(|(a, sa), (b, sb)| a.cmp(b).then(sb.cmp(sa)))
}

/// Days from `from` to `to`, never negative.
pub fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let seconds = (to - from).num_milliseconds() as f64 / 1000.0;
    seconds.max(0.0) / SECONDS_PER_DAY
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn now() -> DateTime<Utc> {
        "2026-12-03T12:00:00Z".parse().expect("time")
    }

    fn days_ago(days: i64) -> DateTime<Utc> {
        now() - Duration::days(days)
    }

    fn searched(found: Option<i64>) -> Option<CloudTrailCoverage> {
        Some(CloudTrailCoverage {
            searched_from: days_ago(90),
            newest_change: found.map(days_ago),
        })
    }

    #[test]
    fn change_in_cloudtrail_is_exact() {
        let evidence = Evidence {
            cloudtrail: searched(Some(10)),
            account_created: Some(days_ago(1000)),
            ..Evidence::default()
        };

        let age = resolve(&evidence, now()).expect("has password");

        assert_eq!(
            age,
            RootPasswordAge {
                age_days: Some(10.0),
                exact: true,
                last_changed: Some((days_ago(10), Source::CloudTrail)),
            }
        );
    }

    #[test]
    fn nothing_seen_in_an_old_account_is_the_window_as_a_lower_bound() {
        let evidence = Evidence {
            cloudtrail: searched(None),
            account_created: Some(days_ago(3 * 365)),
            ..Evidence::default()
        };

        let age = resolve(&evidence, now()).expect("has password");

        assert_eq!(age.age_days, Some(90.0));
        assert!(!age.exact);
        assert_eq!(age.last_changed, None);
    }

    #[test]
    fn young_account_without_change_is_as_old_as_the_account() {
        let evidence = Evidence {
            cloudtrail: searched(None),
            account_created: Some(days_ago(30)),
            ..Evidence::default()
        };

        let age = resolve(&evidence, now()).expect("has password");

        assert_eq!(age.age_days, Some(30.0));
        assert!(age.exact);
        assert_eq!(
            age.last_changed,
            Some((days_ago(30), Source::AccountCreation))
        );
    }

    #[test]
    fn remembered_change_outlives_the_cloudtrail_window() {
        let evidence = Evidence {
            cloudtrail: searched(None),
            remembered: Some(days_ago(120)),
            account_created: Some(days_ago(1000)),
            ..Evidence::default()
        };

        let age = resolve(&evidence, now()).expect("has password");

        assert_eq!(age.age_days, Some(120.0));
        assert!(age.exact);
        assert_eq!(age.last_changed, Some((days_ago(120), Source::State)));
    }

    #[test]
    fn newer_change_wins_whatever_its_source() {
        let evidence = Evidence {
            cloudtrail: searched(Some(50)),
            remembered: Some(days_ago(50)),
            declared: Some(days_ago(5)),
            ..Evidence::default()
        };

        let age = resolve(&evidence, now()).expect("has password");

        assert_eq!(age.last_changed, Some((days_ago(5), Source::Config)));
    }

    #[test]
    fn equal_times_name_cloudtrail_first() {
        let evidence = Evidence {
            cloudtrail: searched(Some(50)),
            remembered: Some(days_ago(50)),
            ..Evidence::default()
        };

        let age = resolve(&evidence, now()).expect("has password");

        assert_eq!(age.last_changed, Some((days_ago(50), Source::CloudTrail)));
    }

    #[test]
    fn cloudtrail_never_read_falls_back_to_the_state_file() {
        let evidence = Evidence {
            remembered: Some(days_ago(80)),
            ..Evidence::default()
        };

        let age = resolve(&evidence, now()).expect("has password");

        assert_eq!(age.age_days, Some(80.0));
        assert_eq!(age.last_changed, Some((days_ago(80), Source::State)));
    }

    #[test]
    fn nothing_readable_reports_no_age_rather_than_a_guess() {
        let evidence = Evidence {
            account_created: Some(days_ago(30)),
            ..Evidence::default()
        };

        let age = resolve(&evidence, now()).expect("may have a password");

        assert_eq!(age.age_days, None);
        assert!(!age.exact);
    }

    #[test]
    fn root_without_password_has_no_age() {
        let evidence = Evidence {
            password_present: Some(false),
            cloudtrail: searched(Some(3)),
            ..Evidence::default()
        };

        assert_eq!(resolve(&evidence, now()), None);
    }

    #[test]
    fn future_dates_count_as_zero_days() {
        let evidence = Evidence {
            declared: Some(now() + Duration::days(2)),
            ..Evidence::default()
        };

        let age = resolve(&evidence, now()).expect("has password");

        assert_eq!(age.age_days, Some(0.0));
    }
}
