//! Account snapshots turned into Prometheus metrics.
//!
//! The exposition is encoded after each refresh and once a minute between
//! refreshes (so that ages move on), in both the OpenMetrics and the classic
//! text format; scrapes are answered from those bytes: a scrape never calls
//! AWS and never encodes.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::config::SECONDS_PER_DAY;
use crate::snapshot::AccountSnapshot;

/// Appended to every HELP text, so that nobody mistakes a value for live.
const REFRESHED: &str = "Refreshed in the background, not at scrape time.";

/// The `Content-Type` of the OpenMetrics exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The `Content-Type` of the classic text exposition.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What the exporter says about itself in `aws_iam_exporter_build_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// The crate version.
    pub version: &'static str,
    /// The source revision it was built from.
    pub revision: &'static str,
}

impl BuildInfo {
    /// The build info of this binary.
    pub fn current() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            revision: option_env!("IAM_EXPORTER_REVISION").unwrap_or("unknown"),
        }
    }
}

/// Options that shape the exposition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpositionOptions {
    /// Whether to export per-user series.
    pub collect_users: bool,
    /// The build info.
    pub build: BuildInfo,
}

/// The two exposition formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics text 1.0.0, ending in `# EOF`.
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// An encoded exposition in both formats, and their gzip compression.
///
/// Each format is compressed at most once, by the first scrape that asks
/// for gzip (Prometheus always does); every later scrape of the same
/// exposition gets the cached bytes.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    openmetrics: Bytes,
    text: Bytes,
    gzip: Arc<[OnceLock<Bytes>; 2]>,
}

impl Exposition {
    /// The exposition in `format`.
    pub fn plain(&self, format: Format) -> Bytes {
        match format {
            Format::OpenMetrics => self.openmetrics.clone(),
            Format::Text => self.text.clone(),
        }
    }

    /// The exposition in `format`, gzip-compressed; `None` if compression failed.
    pub fn gzipped(&self, format: Format) -> Option<Bytes> {
        let slot = match format {
            Format::OpenMetrics => &self.gzip[0],
            Format::Text => &self.gzip[1],
        };
        let compressed = slot.get_or_init(|| gzip(&self.plain(format)));
        (!compressed.is_empty()).then(|| compressed.clone())
    }
}

/// Compresses with gzip at the fastest level: the exposition is repetitive
/// text, so even that shrinks it about twentyfold. Empty if compression failed.
pub fn gzip(data: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 8), Compression::fast());
    match encoder.write_all(data).and_then(|()| encoder.finish()) {
        Ok(compressed) => compressed.into(),
        Err(_) => Bytes::new(),
    }
}

/// Encodes the metrics of `accounts` in both formats.
pub fn encode(
    accounts: Arc<[AccountSnapshot]>,
    options: &ExpositionOptions,
) -> std::result::Result<Exposition, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector {
        accounts,
        options: options.clone(),
    }));
    let mut openmetrics = String::new();
    prometheus_client::encoding::text::encode(&mut openmetrics, &registry)?;
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(Exposition {
        openmetrics: openmetrics.into(),
        text: text.into(),
        gzip: Arc::default(),
    })
}

#[derive(Debug)]
struct SnapshotCollector {
    accounts: Arc<[AccountSnapshot]>,
    options: ExpositionOptions,
}

type Result = std::result::Result<(), std::fmt::Error>;

fn account_labels(a: &AccountSnapshot) -> [(&'static str, &str); 1] {
    [("account_id", a.account_id.as_str())]
}

/// One metric family: its series are written only if there is at least one.
fn family<L, V, I>(encoder: &mut DescriptorEncoder, name: &str, help: &str, series: I) -> Result
where
    L: EncodeLabelSet,
    V: EncodeGaugeValue,
    I: IntoIterator<Item = (L, V)>,
{
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut help_text = String::with_capacity(help.len() + REFRESHED.len() + 1);
    let _ = write!(help_text, "{help} {REFRESHED}");
    let mut metric = encoder.encode_descriptor(name, &help_text, None, MetricType::Gauge)?;
    for (labels, value) in series {
        metric.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

fn user_labels<'a>(account_id: &'a str, user: &'a str) -> [(&'static str, &'a str); 2] {
    [("account_id", account_id), ("user", user)]
}

fn key_labels<'a>(
    account_id: &'a str,
    user: &'a str,
    key: &'a str,
) -> [(&'static str, &'a str); 3] {
    [("account_id", account_id), ("user", user), ("key", key)]
}

fn flag(value: bool) -> i64 {
    i64::from(value)
}

fn seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

impl prometheus_client::collector::Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result {
        self.encode_account_metrics(&mut encoder)?;
        self.encode_root_metrics(&mut encoder)?;
        self.encode_policy_metrics(&mut encoder)?;
        self.encode_user_metrics(&mut encoder)?;
        self.encode_exporter_metrics(&mut encoder)
    }
}

impl SnapshotCollector {
    fn accounts(&self) -> impl Iterator<Item = &AccountSnapshot> + Clone {
        self.accounts.iter()
    }

    fn encode_account_metrics(&self, e: &mut DescriptorEncoder) -> Result {
        family(
            e,
            "aws_iam_account_info",
            "Metadata of an audited AWS account; always 1.",
            self.accounts().map(|a| {
                let labels = [
                    ("account_id", a.account_id.as_str()),
                    ("account_alias", a.alias.as_str()),
                    ("account_name", a.name.as_str()),
                ];
                (labels, 1_i64)
            }),
        )?;
        family(
            e,
            "aws_iam_rotation_threshold_days",
            "Configured maximum age of a credential, per account and credential kind.",
            self.accounts().flat_map(|a| {
                let t = a.thresholds;
                [
                    ("root_password", t.root_password),
                    ("user_password", t.user_password),
                    ("access_key", t.access_key),
                ]
                .map(|(credential, max)| {
                    let labels = [
                        ("account_id", a.account_id.as_str()),
                        ("credential", credential),
                    ];
                    (labels, max.as_secs_f64() / SECONDS_PER_DAY)
                })
            }),
        )
    }

    fn encode_root_metrics(&self, e: &mut DescriptorEncoder) -> Result {
        let id = account_labels;
        let password = |a: &AccountSnapshot| a.root.password.clone();
        family(
            e,
            "aws_iam_root_password_age_days",
            "Days since the root user's password last changed; a lower bound when aws_iam_root_password_age_exact is 0.",
            self.accounts()
                .filter_map(|a| password(a).and_then(|p| p.age_days).map(|d| (id(a), d))),
        )?;
        family(
            e,
            "aws_iam_root_password_age_exact",
            "1 when the root password age is exact, 0 when it is only a lower bound.",
            self.accounts()
                .filter_map(|a| password(a).map(|p| (id(a), flag(p.exact)))),
        )?;
        family(
            e,
            "aws_iam_root_password_last_changed_timestamp_seconds",
            "When the root user's password last changed, and which source says so.",
            self.accounts().filter_map(|a| {
                let (at, source) = password(a)?.last_changed?;
                let labels = [
                    ("account_id", a.account_id.as_str()),
                    ("source", source.label()),
                ];
                Some((labels, seconds(at)))
            }),
        )?;
        let posture = [
            (
                "aws_iam_root_password_present",
                "1 when the root user has a password, as GetAccountSummary reports it.",
                (|a: &AccountSnapshot| a.root.password_present.map(flag))
                    as fn(&AccountSnapshot) -> Option<i64>,
            ),
            (
                "aws_iam_root_mfa_enabled",
                "1 when the root user has an MFA device.",
                |a| a.root.mfa_enabled.map(flag),
            ),
            (
                "aws_iam_root_hardware_mfa_enabled",
                "1 when the root user's MFA device is a hardware device.",
                |a| a.root.hardware_mfa.map(flag),
            ),
            (
                "aws_iam_root_access_keys_active",
                "Number of active access keys of the root user.",
                |a| a.root.access_keys_active.map(i64::from),
            ),
        ];
        for (name, help, value) in posture {
            family(
                e,
                name,
                help,
                self.accounts().filter_map(|a| value(a).map(|v| (id(a), v))),
            )?;
        }
        family(
            e,
            "aws_iam_root_last_used_timestamp_seconds",
            "Last use of a root credential, from the credential report.",
            self.accounts().flat_map(|a| {
                a.root.last_used.iter().map(|(credential, at)| {
                    let labels = [
                        ("account_id", a.account_id.as_str()),
                        ("credential", *credential),
                    ];
                    (labels, seconds(*at))
                })
            }),
        )
    }

    fn encode_policy_metrics(&self, e: &mut DescriptorEncoder) -> Result {
        let id = account_labels;
        family(
            e,
            "aws_iam_password_policy_present",
            "1 when the account has a custom IAM password policy (it never applies to the root user).",
            self.accounts()
                .filter_map(|a| a.policy.as_ref().map(|p| (id(a), flag(p.is_some())))),
        )?;
        let policies = || {
            self.accounts()
                .filter_map(|a| a.policy.as_ref().and_then(Option::as_ref).map(|p| (a, p)))
        };
        family(
            e,
            "aws_iam_password_policy_max_age_days",
            "Days after which IAM user passwords expire; 0 when they never expire.",
            policies().map(|(a, p)| (id(a), p.max_age_days.unwrap_or(0))),
        )?;
        family(
            e,
            "aws_iam_password_policy_minimum_length",
            "Minimum IAM user password length (AWS applies 8 when the policy does not set it).",
            policies().map(|(a, p)| (id(a), p.minimum_length.unwrap_or(8))),
        )?;
        family(
            e,
            "aws_iam_password_policy_reuse_prevention",
            "Number of previous passwords IAM users cannot reuse; 0 when off.",
            policies().map(|(a, p)| (id(a), p.reuse_prevention.unwrap_or(0))),
        )?;
        family(
            e,
            "aws_iam_password_policy_requirement",
            "1 when IAM user passwords must contain the character class.",
            policies().flat_map(|(a, p)| {
                [
                    ("symbols", p.require_symbols),
                    ("numbers", p.require_numbers),
                    ("uppercase", p.require_uppercase),
                    ("lowercase", p.require_lowercase),
                ]
                .map(|(requirement, on)| {
                    let labels = [
                        ("account_id", a.account_id.as_str()),
                        ("requirement", requirement),
                    ];
                    (labels, flag(on))
                })
            }),
        )?;
        family(
            e,
            "aws_iam_password_policy_hard_expiry",
            "1 when an expired IAM user password needs an administrator to reset it.",
            policies().map(|(a, p)| (id(a), flag(p.hard_expiry))),
        )
    }

    fn encode_user_metrics(&self, e: &mut DescriptorEncoder) -> Result {
        let id = account_labels;
        let with_users = || {
            self.accounts()
                .filter_map(|a| a.users.as_ref().map(|u| (a, u)))
        };
        family(
            e,
            "aws_iam_users",
            "IAM users in the credential report.",
            with_users().map(|(a, u)| (id(a), u.users.len() as i64)),
        )?;
        family(
            e,
            "aws_iam_oldest_access_key_age_days",
            "Age of the oldest active IAM user access key.",
            with_users().filter_map(|(a, u)| u.oldest_access_key_age_days.map(|d| (id(a), d))),
        )?;
        family(
            e,
            "aws_iam_console_users_without_mfa",
            "IAM users with a console password and no MFA device.",
            with_users().map(|(a, u)| (id(a), i64::from(u.console_without_mfa))),
        )?;
        family(
            e,
            "aws_iam_credential_report_generated_timestamp_seconds",
            "When AWS generated the credential report the user metrics come from.",
            with_users().filter_map(|(a, u)| u.report_generated.map(|t| (id(a), seconds(t)))),
        )?;
        family(
            e,
            "aws_iam_exporter_credential_report_invalid_rows",
            "Rows of the credential report that could not be read and were skipped.",
            with_users().map(|(a, u)| (id(a), u.invalid_rows as i64)),
        )?;
        if self.options.collect_users {
            self.encode_per_user_metrics(e)?;
        }
        Ok(())
    }

    fn encode_per_user_metrics(&self, e: &mut DescriptorEncoder) -> Result {
        let users = || {
            self.accounts().flat_map(|a| {
                a.users
                    .iter()
                    .flat_map(|u| u.users.iter())
                    .map(move |u| (a.account_id.as_str(), u))
            })
        };
        family(
            e,
            "aws_iam_user_password_age_days",
            "Days since an IAM user's console password last changed.",
            users().filter_map(|(a, u)| u.password_age_days.map(|d| (user_labels(a, &u.name), d))),
        )?;
        family(
            e,
            "aws_iam_user_password_last_used_timestamp_seconds",
            "Last sign-in of an IAM user with their password.",
            users().filter_map(|(a, u)| {
                u.password_last_used
                    .map(|t| (user_labels(a, &u.name), seconds(t)))
            }),
        )?;
        family(
            e,
            "aws_iam_user_mfa_active",
            "1 when an IAM user has an active MFA device.",
            users().map(|(a, u)| (user_labels(a, &u.name), flag(u.mfa_active))),
        )?;
        let keys = || users().flat_map(|(a, u)| u.access_keys.iter().map(move |k| (a, u, k)));
        family(
            e,
            "aws_iam_user_access_key_active",
            "1 when an IAM user's access key is active, 0 when it exists but is inactive.",
            keys().map(|(a, u, k)| (key_labels(a, &u.name, k.slot), flag(k.active))),
        )?;
        family(
            e,
            "aws_iam_user_access_key_age_days",
            "Days since an active IAM user access key was created or rotated.",
            keys().filter_map(|(a, u, k)| k.age_days.map(|d| (key_labels(a, &u.name, k.slot), d))),
        )?;
        family(
            e,
            "aws_iam_user_access_key_last_used_timestamp_seconds",
            "Last use of an IAM user's access key.",
            keys().filter_map(|(a, u, k)| {
                k.last_used
                    .map(|t| (key_labels(a, &u.name, k.slot), seconds(t)))
            }),
        )
    }

    fn encode_exporter_metrics(&self, e: &mut DescriptorEncoder) -> Result {
        let id = account_labels;
        family(
            e,
            "aws_iam_exporter_refresh_success",
            "1 when every AWS call of the account's last refresh succeeded.",
            self.accounts().map(|a| (id(a), flag(a.health.success))),
        )?;
        family(
            e,
            "aws_iam_exporter_last_refresh_success_timestamp_seconds",
            "When a refresh of the account last succeeded completely.",
            self.accounts()
                .filter_map(|a| a.health.last_success.map(|t| (id(a), seconds(t)))),
        )?;
        family(
            e,
            "aws_iam_exporter_refresh_duration_seconds",
            "How long the account's last refresh took.",
            self.accounts()
                .filter_map(|a| a.health.duration_seconds.map(|d| (id(a), d))),
        )?;
        self.encode_api_errors(e)?;
        let build = &self.options.build;
        family(
            e,
            "aws_iam_exporter_build_info",
            "Version and revision of the exporter; always 1.",
            [(
                [("version", build.version), ("revision", build.revision)],
                1_i64,
            )],
        )
    }

    fn encode_api_errors(&self, e: &mut DescriptorEncoder) -> Result {
        let mut series = self
            .accounts()
            .flat_map(|a| {
                a.health
                    .api_errors
                    .iter()
                    .map(move |((operation, code), count)| {
                        let labels = [
                            ("account_id", a.account_id.as_str()),
                            ("operation", operation.as_str()),
                            ("code", code.as_str()),
                        ];
                        (labels, *count)
                    })
            })
            .peekable();
        if series.peek().is_none() {
            return Ok(());
        }
        let help = format!("Failed AWS API calls, by operation and error code. {REFRESHED}");
        let mut metric = e.encode_descriptor(
            "aws_iam_exporter_api_errors",
            &help,
            None,
            MetricType::Counter,
        )?;
        for (labels, count) in series {
            metric
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
        }
        Ok(())
    }
}
