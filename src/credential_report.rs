//! The IAM credential report: CSV as AWS writes it, read into typed rows.
//!
//! Columns are found by header name, so reordered or newly added columns do
//! not break parsing. AWS's placeholders (`N/A`, `no_information`,
//! `not_supported`) become `None`. A row that cannot be read is set aside with
//! its line number and reason; the rest of the report is still used.

use chrono::{DateTime, Utc};
use thiserror::Error;

/// The `user` value of the row describing the account's root user.
pub const ROOT_USER: &str = "<root_account>";

/// A parsed credential report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CredentialReport {
    /// Rows that were read completely, in report order.
    pub rows: Vec<CredentialRow>,
    /// Rows that were skipped, with why.
    pub invalid_rows: Vec<InvalidRow>,
}

/// One user's (or the root user's) credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialRow {
    /// IAM user name, or [`ROOT_USER`].
    pub user: String,
    /// The principal's ARN.
    pub arn: String,
    /// When the user was created; for the root row, when the account was.
    pub created: Option<DateTime<Utc>>,
    /// The console password.
    pub password: PasswordColumns,
    /// Whether an MFA device is active.
    pub mfa_active: bool,
    /// Access keys 1 and 2.
    pub access_keys: [AccessKeyColumns; 2],
}

/// Password columns of a row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PasswordColumns {
    /// `None` when AWS says `not_supported` (always the case for root).
    pub enabled: Option<bool>,
    /// Last sign-in with the password; `None` when never used or unknown.
    pub last_used: Option<DateTime<Utc>>,
    /// Last change; `None` without a password, and always for root.
    pub last_changed: Option<DateTime<Utc>>,
}

/// Columns of one access key slot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessKeyColumns {
    /// Whether the key is active.
    pub active: bool,
    /// When the key was created or last rotated; `None` when no key exists.
    pub last_rotated: Option<DateTime<Utc>>,
    /// Last use of the key; `None` when never used.
    pub last_used: Option<DateTime<Utc>>,
}

impl AccessKeyColumns {
    /// Whether a key exists in this slot (active or not).
    pub fn exists(&self) -> bool {
        self.active || self.last_rotated.is_some()
    }
}

impl CredentialRow {
    /// Whether this row describes the root user.
    pub fn is_root(&self) -> bool {
        self.user == ROOT_USER
    }
}

/// A row that was skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidRow {
    /// 1-based line of the row in the CSV (the header is line 1).
    pub line: u64,
    /// What was wrong with it.
    pub reason: String,
}

/// Why a report as a whole could not be read.
#[derive(Debug, Error, PartialEq)]
pub enum ReportError {
    /// The content holds no header line.
    #[error("the credential report is empty")]
    Empty,
    /// A column every report has is missing.
    #[error("the credential report has no `{0}` column")]
    MissingColumn(&'static str),
    /// The CSV could not be read at all.
    #[error("the credential report is not valid CSV: {0}")]
    Csv(String),
}

/// Positions of the columns this parser reads; `None` when absent.
struct Columns {
    user: usize,
    arn: usize,
    created: Option<usize>,
    password_enabled: Option<usize>,
    password_last_used: Option<usize>,
    password_last_changed: Option<usize>,
    mfa_active: Option<usize>,
    keys: [KeyColumns; 2],
}

struct KeyColumns {
    active: Option<usize>,
    last_rotated: Option<usize>,
    last_used: Option<usize>,
}

impl Columns {
    fn from_header(header: &csv::StringRecord) -> Result<Self, ReportError> {
        let find = |name: &str| header.iter().position(|h| h.trim() == name);
        let key = |n: u8| KeyColumns {
            active: find(&format!("access_key_{n}_active")),
            last_rotated: find(&format!("access_key_{n}_last_rotated")),
            last_used: find(&format!("access_key_{n}_last_used_date")),
        };
        Ok(Self {
            user: find("user").ok_or(ReportError::MissingColumn("user"))?,
            arn: find("arn").ok_or(ReportError::MissingColumn("arn"))?,
            created: find("user_creation_time"),
            password_enabled: find("password_enabled"),
            password_last_used: find("password_last_used"),
            password_last_changed: find("password_last_changed"),
            mfa_active: find("mfa_active"),
            keys: [key(1), key(2)],
        })
    }
}

/// Parses a credential report as returned (already base64-decoded) by
/// `GetCredentialReport`. Accepts LF or CRLF line ends and a UTF-8 BOM.
pub fn parse(content: &[u8]) -> Result<CredentialReport, ReportError> {
    let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(content);
    let header = reader
        .headers()
        .map_err(|e| ReportError::Csv(e.to_string()))?
        .clone();
    if header.iter().all(|h| h.trim().is_empty()) {
        return Err(ReportError::Empty);
    }
    let columns = Columns::from_header(&header)?;

    let mut report = CredentialReport::default();
    for (index, record) in reader.records().enumerate() {
        let line = index as u64 + 2;
        let parsed = record
            .map_err(|e| e.to_string())
            .and_then(|r| parse_row(&r, header.len(), &columns));
        match parsed {
            Ok(row) => report.rows.push(row),
            Err(reason) => report.invalid_rows.push(InvalidRow { line, reason }),
        }
    }
    Ok(report)
}

fn parse_row(
    record: &csv::StringRecord,
    width: usize,
    columns: &Columns,
) -> Result<CredentialRow, String> {
    if record.len() != width {
        return Err(format!(
            "has {} fields where the header has {width}",
            record.len()
        ));
    }
    let cell = |index: Option<usize>| index.and_then(|i| record.get(i)).map(str::trim);
    let text = |index: usize| record.get(index).map(str::trim).unwrap_or_default();

    let user = text(columns.user);
    if user.is_empty() {
        return Err("has an empty user name".to_owned());
    }
    let key = |k: &KeyColumns| -> Result<AccessKeyColumns, String> {
        Ok(AccessKeyColumns {
            active: boolean(cell(k.active))?.unwrap_or(false),
            last_rotated: timestamp(cell(k.last_rotated))?,
            last_used: timestamp(cell(k.last_used))?,
        })
    };
    Ok(CredentialRow {
        user: user.to_owned(),
        arn: text(columns.arn).to_owned(),
        created: timestamp(cell(columns.created))?,
        password: PasswordColumns {
            enabled: boolean(cell(columns.password_enabled))?,
            last_used: timestamp(cell(columns.password_last_used))?,
            last_changed: timestamp(cell(columns.password_last_changed))?,
        },
        mfa_active: boolean(cell(columns.mfa_active))?.unwrap_or(false),
        access_keys: [key(&columns.keys[0])?, key(&columns.keys[1])?],
    })
}

/// Whether a cell holds one of AWS's "no value" placeholders.
fn is_placeholder(value: &str) -> bool {
    value.is_empty()
        || value.eq_ignore_ascii_case("N/A")
        || value.eq_ignore_ascii_case("no_information")
        || value.eq_ignore_ascii_case("not_supported")
}

fn boolean(value: Option<&str>) -> Result<Option<bool>, String> {
    match value {
        None => Ok(None),
        Some(v) if is_placeholder(v) => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(format!("`{v}` is not a boolean")),
    }
}

fn timestamp(value: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    match value {
        None => Ok(None),
        Some(v) if is_placeholder(v) => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| format!("`{v}` is not an ISO 8601 timestamp: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,\
password_last_changed,password_next_rotation,mfa_active,access_key_1_active,\
access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,\
access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,\
access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,\
cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

    const ROOT: &str = "<root_account>,arn:aws:iam::111122223333:root,2019-03-04T10:00:00+00:00,\
not_supported,2026-11-30T07:15:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,\
N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A";

    const NO_PASSWORD: &str = "ci-bot,arn:aws:iam::111122223333:user/ci-bot,\
2025-01-02T03:04:05+00:00,false,N/A,N/A,N/A,false,true,2025-05-01T00:00:00+00:00,\
2026-12-01T12:00:00+00:00,eu-west-1,s3,false,2025-01-02T03:04:06+00:00,N/A,N/A,N/A,\
false,N/A,false,N/A";

    const NEVER_USED: &str = "dana,arn:aws:iam::111122223333:user/dana,\
2026-10-01T09:00:00+00:00,TRUE,no_information,2026-10-01T09:00:00+00:00,N/A,FALSE,FALSE,\
N/A,N/A,N/A,N/A,FALSE,N/A,N/A,N/A,N/A,FALSE,N/A,FALSE,N/A";

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<DateTime<Utc>> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single()
    }

    fn report(lines: &[&str], eol: &str) -> Vec<u8> {
        let mut text = lines.join(eol);
        text.push_str(eol);
        text.into_bytes()
    }

    #[test]
    fn root_row_keeps_real_columns_and_drops_not_supported() {
        let content = report(&[HEADER, ROOT], "\n");

        let parsed = parse(&content).expect("valid report");

        let root = &parsed.rows[0];
        assert!(root.is_root());
        assert_eq!(root.created, utc(2019, 3, 4, 10, 0, 0));
        assert_eq!(
            root.password,
            PasswordColumns {
                enabled: None,
                last_used: utc(2026, 11, 30, 7, 15, 0),
                last_changed: None,
            }
        );
        assert!(root.mfa_active);
        assert!(!root.access_keys[0].exists());
        assert!(parsed.invalid_rows.is_empty());
    }

    #[test]
    fn user_without_password_has_two_keys_one_inactive() {
        let content = report(&[HEADER, NO_PASSWORD], "\n");

        let row = &parse(&content).expect("valid report").rows[0];

        assert_eq!(row.password.enabled, Some(false));
        assert_eq!(row.password.last_changed, None);
        assert_eq!(
            row.access_keys[0],
            AccessKeyColumns {
                active: true,
                last_rotated: utc(2025, 5, 1, 0, 0, 0),
                last_used: utc(2026, 12, 1, 12, 0, 0),
            }
        );
        assert_eq!(
            row.access_keys[1],
            AccessKeyColumns {
                active: false,
                last_rotated: utc(2025, 1, 2, 3, 4, 6),
                last_used: None,
            }
        );
        assert!(row.access_keys[1].exists());
    }

    #[test]
    fn password_never_used_and_upper_case_booleans() {
        let content = report(&[HEADER, NEVER_USED], "\n");

        let row = &parse(&content).expect("valid report").rows[0];

        assert_eq!(row.password.enabled, Some(true));
        assert_eq!(row.password.last_used, None);
        assert_eq!(row.password.last_changed, utc(2026, 10, 1, 9, 0, 0));
        assert!(!row.mfa_active);
    }

    #[test]
    fn crlf_line_ends_read_like_lf() {
        let lf = parse(&report(&[HEADER, ROOT, NO_PASSWORD], "\n")).expect("lf");

        let crlf = parse(&report(&[HEADER, ROOT, NO_PASSWORD], "\r\n")).expect("crlf");

        assert_eq!(crlf, lf);
        assert_eq!(crlf.rows.len(), 2);
    }

    #[test]
    fn unknown_extra_column_is_ignored() {
        let header = format!("{HEADER},future_column");
        let row = format!("{NO_PASSWORD},something");

        let parsed = parse(&report(&[&header, &row], "\n")).expect("valid report");

        assert_eq!(parsed.rows[0].user, "ci-bot");
        assert!(parsed.invalid_rows.is_empty());
    }

    #[test]
    fn reordered_columns_are_read_by_name() {
        let content = "mfa_active,password_enabled,arn,user,user_creation_time\n\
true,true,arn:aws:iam::111122223333:user/eve,eve,2024-02-29T12:00:00+00:00\n";

        let row = &parse(content.as_bytes()).expect("valid report").rows[0];

        assert_eq!(row.user, "eve");
        assert!(row.mfa_active);
        assert_eq!(row.password.enabled, Some(true));
        assert_eq!(row.created, utc(2024, 2, 29, 12, 0, 0));
        assert_eq!(row.access_keys[0], AccessKeyColumns::default());
    }

    #[test]
    fn header_only_is_an_empty_report() {
        let parsed = parse(&report(&[HEADER], "\n")).expect("valid report");

        assert_eq!(parsed, CredentialReport::default());
    }

    #[test]
    fn empty_content_and_missing_user_column_are_errors() {
        assert_eq!(parse(b""), Err(ReportError::Empty));
        assert_eq!(
            parse(b"arn,mfa_active\nx,true\n"),
            Err(ReportError::MissingColumn("user"))
        );
    }

    #[test]
    fn truncated_row_is_set_aside_and_the_rest_kept() {
        let truncated = "mallory,arn:aws:iam::111122223333:user/mallory,2026-01-01T00:00:00+00:00";

        let parsed = parse(&report(&[HEADER, ROOT, truncated, NO_PASSWORD], "\n")).expect("ok");

        let users: Vec<_> = parsed.rows.iter().map(|r| r.user.as_str()).collect();
        assert_eq!(users, ["<root_account>", "ci-bot"]);
        assert_eq!(
            parsed.invalid_rows,
            [InvalidRow {
                line: 3,
                reason: "has 3 fields where the header has 22".to_owned()
            }]
        );
    }

    #[test]
    fn bad_timestamp_sets_the_row_aside() {
        let bad = NEVER_USED.replace("2026-10-01T09:00:00+00:00,TRUE", "yesterday,TRUE");

        let parsed = parse(&report(&[HEADER, &bad, ROOT], "\n")).expect("ok");

        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.invalid_rows[0].line, 2);
        assert!(
            parsed.invalid_rows[0]
                .reason
                .starts_with("`yesterday` is not an ISO 8601 timestamp"),
            "{}",
            parsed.invalid_rows[0].reason
        );
    }

    #[test]
    fn microsecond_timestamps_are_accepted() {
        let row = NEVER_USED.replace(
            "2026-10-01T09:00:00+00:00,TRUE",
            "2026-10-01T09:00:00.250000+00:00,TRUE",
        );

        let parsed = parse(&report(&[HEADER, &row], "\n")).expect("ok");

        let created = parsed.rows[0].created.expect("created");
        assert_eq!(created.timestamp_millis(), 1_790_845_200_250);
    }

    #[test]
    fn mutated_reports_never_panic_and_account_for_every_row() {
        let valid = report(&[HEADER, ROOT, NO_PASSWORD, NEVER_USED], "\r\n");
        let mut mutator = crate::test_support::Mutator::new(0x1A2B_3C4D);

        for _ in 0..3_000 {
            let input = mutator.mutate(&valid);

            if let Ok(parsed) = parse(&input) {
                // CR alone ends a record too, so count both terminators.
                let lines = 1 + input.iter().filter(|b| matches!(b, b'\n' | b'\r')).count();
                assert!(parsed.rows.len() + parsed.invalid_rows.len() <= lines);
            }
        }
    }
}
