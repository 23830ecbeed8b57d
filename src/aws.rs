//! The AWS calls of one refresh, behind a narrow seam.
//!
//! Clients are built from `aws-config`'s `SdkConfig`, so the default
//! credential chain and `AWS_ENDPOINT_URL` (or the per-service
//! `AWS_ENDPOINT_URL_IAM`, `_STS`, `_CLOUDTRAIL`) apply without special code.
//! Each call returns domain types or an [`ApiError`] naming the operation and
//! AWS's error code; transient errors retried here are reported to an
//! [`ErrorSink`] so that they are counted too.

use std::sync::Mutex;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::{AssignmentStatusType, ReportStateType, SummaryKeyType};
use aws_smithy_types::error::display::DisplayErrorContext;
use chrono::{DateTime, Utc};
use tokio::time::{Instant, sleep, sleep_until};
use tracing::debug;

use crate::cloudtrail_event::{self, EventVerdict, PASSWORD_CHANGE_EVENTS, RootPasswordChange};
use crate::snapshot::{AccountSummary, PasswordPolicy};

/// How long to wait between `GenerateCredentialReport` polls, at first.
const FIRST_REPORT_POLL: Duration = Duration::from_millis(500);
/// The longest wait between two polls.
const MAX_REPORT_POLL: Duration = Duration::from_secs(5);
/// How many times to ask before giving up on a report still being built.
const MAX_REPORT_POLLS: u32 = 12;
/// CloudTrail allows two `LookupEvents` requests a second per account and region.
const LOOKUP_EVENTS_SPACING: Duration = Duration::from_millis(500);
/// CloudTrail's page size limit.
const LOOKUP_EVENTS_PAGE: i32 = 50;

/// A failed AWS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The API operation, e.g. `GetAccountSummary`.
    pub operation: &'static str,
    /// AWS's error code (`AccessDenied`, `Throttling`) or the kind of
    /// transport failure (`DispatchFailure`, `Timeout`).
    pub code: String,
    /// The whole error chain, for logs.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed ({}): {}",
            self.operation, self.code, self.message
        )
    }
}

impl ApiError {
    fn from_sdk<E, R>(operation: &'static str, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        if let SdkError::ServiceError(e) = &error {
            let code = e.err().code().unwrap_or("Unknown").to_owned();
            let message = e.err().message().unwrap_or("no message").to_owned();
            return Self {
                operation,
                code,
                message,
            };
        }
        let code = match &error {
            SdkError::TimeoutError(_) => "Timeout".to_owned(),
            SdkError::DispatchFailure(_) => "DispatchFailure".to_owned(),
            SdkError::ResponseError(_) => "ResponseError".to_owned(),
            SdkError::ConstructionFailure(_) => "ConstructionFailure".to_owned(),
            _ => "Unknown".to_owned(),
        };
        Self {
            operation,
            code,
            message: DisplayErrorContext(&error).to_string(),
        }
    }

    fn malformed(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            code: "MalformedResponse".to_owned(),
            message: message.into(),
        }
    }

    /// Whether waiting and asking again may help.
    fn is_throttling(&self) -> bool {
        matches!(
            self.code.as_str(),
            "Throttling" | "ThrottlingException" | "LimitExceeded" | "LimitExceededException"
        )
    }
}

/// Collects errors that did not end a call (retried throttling, say).
#[derive(Debug, Default)]
pub struct ErrorSink(Mutex<Vec<ApiError>>);

impl ErrorSink {
    /// Records one error.
    pub fn push(&self, error: ApiError) {
        if let Ok(mut errors) = self.0.lock() {
            errors.push(error);
        }
    }

    /// Takes everything recorded so far.
    pub fn take(&self) -> Vec<ApiError> {
        self.0
            .lock()
            .map(|mut errors| std::mem::take(&mut *errors))
            .unwrap_or_default()
    }
}

/// A credential report as AWS returned it.
#[derive(Debug, Clone)]
pub struct RawReport {
    /// The CSV bytes (the SDK already decoded the base64).
    pub content: Vec<u8>,
    /// When AWS generated it.
    pub generated: Option<DateTime<Utc>>,
}

/// The outcome of searching CloudTrail for root password changes.
#[derive(Debug, Clone, Default)]
pub struct CloudTrailSearch {
    /// The newest successful root password change found.
    pub newest_change: Option<RootPasswordChange>,
    /// Event records that could not be read, with why.
    pub malformed: Vec<String>,
}

/// The clients one account is read with.
#[derive(Debug, Clone)]
pub struct AwsClients {
    iam: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
    cloudtrail: Vec<(String, aws_sdk_cloudtrail::Client)>,
}

impl AwsClients {
    /// Builds the clients from a loaded `SdkConfig`; one CloudTrail client
    /// per region searched.
    pub fn new(sdk: &SdkConfig, cloudtrail_regions: &[String]) -> Self {
        let cloudtrail = cloudtrail_regions
            .iter()
            .map(|region| {
                let config = aws_sdk_cloudtrail::config::Builder::from(sdk)
                    .region(aws_sdk_cloudtrail::config::Region::new(region.clone()))
                    .build();
                (
                    region.clone(),
                    aws_sdk_cloudtrail::Client::from_conf(config),
                )
            })
            .collect();
        Self {
            iam: aws_sdk_iam::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
            cloudtrail,
        }
    }

    /// Whether CloudTrail is searched at all.
    pub fn searches_cloudtrail(&self) -> bool {
        !self.cloudtrail.is_empty()
    }

    /// The account the credentials belong to (`sts:GetCallerIdentity`).
    pub async fn caller_account_id(&self) -> Result<String, ApiError> {
        const OP: &str = "GetCallerIdentity";
        debug!(operation = OP, "calling AWS");
        let output = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(OP, e))?;
        output
            .account()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::malformed(OP, "the answer has no Account"))
    }

    /// Asks AWS to build a credential report, waits (bounded) until it is
    /// complete, and downloads it.
    pub async fn credential_report(&self, sink: &ErrorSink) -> Result<RawReport, ApiError> {
        self.wait_for_report(sink).await?;
        let mut wait = FIRST_REPORT_POLL;
        for _ in 0..MAX_REPORT_POLLS {
            match self.download_report().await {
                Err(e) if e.code == "ReportInProgress" || e.is_throttling() => {
                    sink.push(e);
                    sleep(wait).await;
                    wait = (wait * 2).min(MAX_REPORT_POLL);
                }
                other => return other,
            }
        }
        self.download_report().await
    }

    async fn wait_for_report(&self, sink: &ErrorSink) -> Result<(), ApiError> {
        const OP: &str = "GenerateCredentialReport";
        let mut wait = FIRST_REPORT_POLL;
        for _ in 0..MAX_REPORT_POLLS {
            debug!(operation = OP, "calling AWS");
            match self.iam.generate_credential_report().send().await {
                Ok(output) if output.state() == Some(&ReportStateType::Complete) => return Ok(()),
                Ok(output) => debug!(operation = OP, state = ?output.state(), "report not ready"),
                Err(e) => {
                    let error = ApiError::from_sdk(OP, e);
                    if !error.is_throttling() {
                        return Err(error);
                    }
                    sink.push(error);
                }
            }
            sleep(wait).await;
            wait = (wait * 2).min(MAX_REPORT_POLL);
        }
        // Still building: the download below either gets the previous report
        // or says `ReportInProgress`, which is the honest outcome.
        Ok(())
    }

    async fn download_report(&self) -> Result<RawReport, ApiError> {
        const OP: &str = "GetCredentialReport";
        debug!(operation = OP, "calling AWS");
        let output = self
            .iam
            .get_credential_report()
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(OP, e))?;
        let content = output
            .content()
            .ok_or_else(|| ApiError::malformed(OP, "the answer has no Content"))?;
        Ok(RawReport {
            content: content.as_ref().to_vec(),
            generated: output.generated_time().and_then(to_chrono),
        })
    }

    /// The account password policy, or `None` when the account has none.
    pub async fn password_policy(&self) -> Result<Option<PasswordPolicy>, ApiError> {
        const OP: &str = "GetAccountPasswordPolicy";
        debug!(operation = OP, "calling AWS");
        let output = match self.iam.get_account_password_policy().send().await {
            Ok(output) => output,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(ApiError::from_sdk(OP, e)),
        };
        let policy = output
            .password_policy()
            .ok_or_else(|| ApiError::malformed(OP, "the answer has no PasswordPolicy"))?;
        Ok(Some(PasswordPolicy {
            minimum_length: policy.minimum_password_length().map(i64::from),
            require_symbols: policy.require_symbols(),
            require_numbers: policy.require_numbers(),
            require_uppercase: policy.require_uppercase_characters(),
            require_lowercase: policy.require_lowercase_characters(),
            max_age_days: policy
                .max_password_age()
                .filter(|days| *days > 0 && policy.expire_passwords())
                .map(i64::from),
            reuse_prevention: policy.password_reuse_prevention().map(i64::from),
            hard_expiry: policy.hard_expiry().unwrap_or(false),
        }))
    }

    /// The account summary's root flags and counts.
    pub async fn account_summary(&self) -> Result<AccountSummary, ApiError> {
        const OP: &str = "GetAccountSummary";
        debug!(operation = OP, "calling AWS");
        let output = self
            .iam
            .get_account_summary()
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(OP, e))?;
        let map = output
            .summary_map()
            .ok_or_else(|| ApiError::malformed(OP, "the answer has no SummaryMap"))?;
        let flag = |key: SummaryKeyType| map.get(&key).map(|v| *v > 0);
        Ok(AccountSummary {
            root_mfa_enabled: flag(SummaryKeyType::AccountMfaEnabled),
            root_access_keys_present: flag(SummaryKeyType::AccountAccessKeysPresent),
            root_password_present: flag(SummaryKeyType::AccountPasswordPresent),
            users: map.get(&SummaryKeyType::Users).map(|v| i64::from(*v)),
        })
    }

    /// Whether the root user's MFA device is a virtual one.
    pub async fn root_has_virtual_mfa(&self, account_id: &str) -> Result<bool, ApiError> {
        const OP: &str = "ListVirtualMFADevices";
        let root_arn = format!("arn:aws:iam::{account_id}:root");
        let mut marker = None;
        loop {
            debug!(operation = OP, "calling AWS");
            let output = self
                .iam
                .list_virtual_mfa_devices()
                .assignment_status(AssignmentStatusType::Assigned)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(OP, e))?;
            let found = output
                .virtual_mfa_devices()
                .iter()
                .filter_map(|device| device.user())
                .any(|user| user.arn() == root_arn);
            if found {
                return Ok(true);
            }
            match output.marker() {
                Some(next) if output.is_truncated() => marker = Some(next.to_owned()),
                _ => return Ok(false),
            }
        }
    }

    /// The account alias, if one is set (an account has at most one).
    pub async fn account_alias(&self) -> Result<Option<String>, ApiError> {
        const OP: &str = "ListAccountAliases";
        debug!(operation = OP, "calling AWS");
        let output = self
            .iam
            .list_account_aliases()
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(OP, e))?;
        Ok(output.account_aliases().first().cloned())
    }

    /// Searches every configured region for the newest root password change
    /// between `from` and `to`. Results come newest first, so each search
    /// stops at the first match.
    pub async fn root_password_changes(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<CloudTrailSearch, ApiError> {
        let mut search = CloudTrailSearch::default();
        for (region, client) in &self.cloudtrail {
            let mut pacer = Pacer::default();
            for name in PASSWORD_CHANGE_EVENTS {
                let found =
                    search_events(client, &mut pacer, name, from, to, &mut search.malformed)
                        .await
                        .map_err(|mut e| {
                            e.message = format!("in {region}: {}", e.message);
                            e
                        })?;
                if found.as_ref().map(|c| c.at) > search.newest_change.as_ref().map(|c| c.at) {
                    search.newest_change = found;
                }
            }
        }
        Ok(search)
    }
}

/// Spaces requests to one region at CloudTrail's documented rate.
#[derive(Default)]
struct Pacer {
    next: Option<Instant>,
}

impl Pacer {
    async fn wait(&mut self) {
        if let Some(next) = self.next {
            sleep_until(next).await;
        }
        self.next = Some(Instant::now() + LOOKUP_EVENTS_SPACING);
    }
}

async fn search_events(
    client: &aws_sdk_cloudtrail::Client,
    pacer: &mut Pacer,
    event_name: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    malformed: &mut Vec<String>,
) -> Result<Option<RootPasswordChange>, ApiError> {
    use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
    const OP: &str = "LookupEvents";

    let attribute = LookupAttribute::builder()
        .attribute_key(LookupAttributeKey::EventName)
        .attribute_value(event_name)
        .build()
        .map_err(|e| ApiError::malformed(OP, e.to_string()))?;
    let mut token = None;
    loop {
        pacer.wait().await;
        debug!(operation = OP, event_name, "calling AWS");
        let output = client
            .lookup_events()
            .lookup_attributes(attribute.clone())
            .start_time(aws_smithy_types::DateTime::from_secs(from.timestamp()))
            .end_time(aws_smithy_types::DateTime::from_secs(to.timestamp()))
            .max_results(LOOKUP_EVENTS_PAGE)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(OP, e))?;
        for event in output.events() {
            let Some(json) = event.cloud_trail_event() else {
                malformed.push("an event without CloudTrailEvent".to_owned());
                continue;
            };
            match cloudtrail_event::classify(json) {
                Ok(EventVerdict::RootPasswordChange(change)) => return Ok(Some(change)),
                Ok(EventVerdict::Unrelated) => {}
                Err(reason) => malformed.push(reason),
            }
        }
        match output.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => return Ok(None),
        }
    }
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}
