//! The exporter binary against the AWS emulator: credential report, password
//! policy, account summary, failures, and the exposition as a whole.

mod common;

use common::{Exporter, Harness, Scrape, emulator_env, promtool_check_metrics, wait_until};

const ACCOUNT: &str = "123456789012";

const TYPICAL: &str = r#"
account_id: "123456789012"
account_alias: acme-prod
account_created_days_ago: 1095
report_generated_hours_ago: 2
root:
  password_present: true
  password_last_used_days_ago: 3
  mfa: none
  access_keys:
    - {active: true, created_days_ago: 400, last_used_days_ago: 2}
users:
  - name: deploy-bot
    created_days_ago: 300
    mfa: none
    access_keys:
      - {active: true, created_days_ago: 200, last_used_days_ago: 1, service: s3, region: us-east-1}
  - name: alice
    created_days_ago: 400
    password: {changed_days_ago: 30, last_used_days_ago: 1}
    mfa: virtual
  - name: bob
    created_days_ago: 50
    password: {changed_days_ago: 50, last_used_days_ago: null}
    mfa: none
    access_keys:
      - {active: false, created_days_ago: 45}
cloudtrail:
  events: []
"#;

fn with_policy_and_root_mfa(scenario: &str) -> String {
    scenario.replace("  mfa: none\n  access_keys:\n    - {active: true, created_days_ago: 400, last_used_days_ago: 2}",
        "  mfa: virtual\n  access_keys: []")
        + "password_policy:\n  minimum_length: 14\n  require_symbols: true\n  require_numbers: true\n  \
           require_uppercase: true\n  require_lowercase: false\n  max_age_days: 90\n  reuse_prevention: 24\n  \
           hard_expiry: false\n"
}

/// The value of an account-level series of the emulated account.
fn of(scrape: &Scrape, name: &str) -> Option<f64> {
    scrape.value(name, &account(&[]))
}

/// The typical account with injected faults (a YAML flow list).
fn with_faults(faults: &str) -> String {
    format!("{TYPICAL}faults: {faults}\n")
}

fn account(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut labels = vec![("account_id", ACCOUNT)];
    labels.extend_from_slice(extra);
    labels
}

fn assert_near(actual: Option<f64>, expected: f64, tolerance: f64, what: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{what} is absent"));
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: expected {expected} ± {tolerance}, got {actual}"
    );
}

#[test]
fn credential_report_values_are_exported_exactly() {
    let harness = Harness::start(TYPICAL);

    let exporter = Exporter::start(&harness, &[]);
    let scrape = exporter.scrape();

    let key = account(&[("user", "deploy-bot"), ("key", "1")]);
    assert_near(
        scrape.value("aws_iam_user_access_key_age_days", &key),
        200.0,
        0.01,
        "key age",
    );
    assert_eq!(
        scrape.value("aws_iam_user_access_key_active", &key),
        Some(1.0)
    );
    assert_near(
        of(&scrape, "aws_iam_oldest_access_key_age_days"),
        200.0,
        0.01,
        "oldest key",
    );
    assert_eq!(of(&scrape, "aws_iam_users"), Some(3.0));
    assert_eq!(of(&scrape, "aws_iam_root_access_keys_active"), Some(1.0));
    assert_eq!(of(&scrape, "aws_iam_root_mfa_enabled"), Some(0.0));
    assert_eq!(of(&scrape, "aws_iam_console_users_without_mfa"), Some(1.0));
    let alice = account(&[("user", "alice")]);
    assert_near(
        scrape.value("aws_iam_user_password_age_days", &alice),
        30.0,
        0.01,
        "alice password",
    );
    assert_eq!(scrape.value("aws_iam_user_mfa_active", &alice), Some(1.0));
    let bob = account(&[("user", "bob")]);
    assert_eq!(
        scrape.value("aws_iam_user_password_last_used_timestamp_seconds", &bob),
        None
    );
    assert_eq!(
        scrape.value(
            "aws_iam_user_access_key_active",
            &account(&[("user", "bob"), ("key", "1")])
        ),
        Some(0.0)
    );
    assert_eq!(
        scrape.value(
            "aws_iam_user_access_key_age_days",
            &account(&[("user", "bob"), ("key", "1")])
        ),
        None
    );
    assert_eq!(
        scrape
            .find(
                "aws_iam_account_info",
                &account(&[("account_alias", "acme-prod")])
            )
            .len(),
        1
    );
    assert_eq!(of(&scrape, "aws_iam_exporter_refresh_success"), Some(1.0));
}

#[test]
fn policy_and_root_mfa_changes_are_picked_up_by_the_next_refresh() {
    let harness = Harness::start(TYPICAL);
    let exporter = Exporter::start(&harness, &["--refresh.interval=1s"]);
    let before = exporter.scrape();

    harness.apply(&with_policy_and_root_mfa(TYPICAL));
    wait_until("the new policy to be exported", || {
        exporter
            .scrape()
            .value("aws_iam_password_policy_present", &account(&[]))
            == Some(1.0)
    });
    let after = exporter.scrape();

    assert_eq!(of(&before, "aws_iam_password_policy_present"), Some(0.0));
    assert!(!before.has("aws_iam_password_policy_max_age_days"));
    assert_eq!(of(&before, "aws_iam_root_mfa_enabled"), Some(0.0));
    assert_eq!(
        of(&after, "aws_iam_password_policy_max_age_days"),
        Some(90.0)
    );
    assert_eq!(
        of(&after, "aws_iam_password_policy_minimum_length"),
        Some(14.0)
    );
    assert_eq!(
        of(&after, "aws_iam_password_policy_reuse_prevention"),
        Some(24.0)
    );
    let requirement = |r| {
        after.value(
            "aws_iam_password_policy_requirement",
            &account(&[("requirement", r)]),
        )
    };
    assert_eq!(requirement("symbols"), Some(1.0));
    assert_eq!(requirement("lowercase"), Some(0.0));
    assert_eq!(of(&after, "aws_iam_root_mfa_enabled"), Some(1.0));
    assert_eq!(of(&after, "aws_iam_root_hardware_mfa_enabled"), Some(0.0));
    assert_eq!(of(&after, "aws_iam_root_access_keys_active"), Some(0.0));
}

#[test]
fn per_user_series_disappear_without_collect_users() {
    let harness = Harness::start(TYPICAL);

    let exporter = Exporter::start(&harness, &["--collect.users=false"]);
    let scrape = exporter.scrape();

    let per_user: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.labels.contains_key("user"))
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(per_user, Vec::<String>::new());
    assert_eq!(of(&scrape, "aws_iam_users"), Some(3.0));
    assert_eq!(of(&scrape, "aws_iam_console_users_without_mfa"), Some(1.0));
    assert_near(
        of(&scrape, "aws_iam_oldest_access_key_age_days"),
        200.0,
        0.01,
        "oldest key",
    );
}

#[test]
fn access_denied_on_the_summary_keeps_everything_else() {
    let scenario = with_faults(
        "[{service: iam, operation: GetAccountSummary, code: AccessDenied, status: 403}]",
    );
    let harness = Harness::start(&scenario);

    let exporter = Exporter::start(&harness, &[]);
    let scrape = exporter.scrape();

    assert_eq!(of(&scrape, "aws_iam_exporter_refresh_success"), Some(0.0));
    let errors = account(&[("operation", "GetAccountSummary"), ("code", "AccessDenied")]);
    assert_eq!(
        scrape.value("aws_iam_exporter_api_errors_total", &errors),
        Some(1.0)
    );
    assert_eq!(of(&scrape, "aws_iam_users"), Some(3.0));
    assert_near(
        scrape.value(
            "aws_iam_user_access_key_age_days",
            &account(&[("user", "deploy-bot"), ("key", "1")]),
        ),
        200.0,
        0.01,
        "key age",
    );
    // Without the summary, root MFA still comes from the credential report.
    assert_eq!(of(&scrape, "aws_iam_root_mfa_enabled"), Some(0.0));
    assert_eq!(of(&scrape, "aws_iam_root_password_present"), None);
    assert_eq!(of(&scrape, "aws_iam_password_policy_present"), Some(0.0));
}

#[test]
fn throttled_report_generation_is_retried_and_counted() {
    let scenario = with_faults(
        "[{service: iam, operation: GenerateCredentialReport, code: LimitExceeded, status: 409, times: 2}]",
    );
    let harness = Harness::start(&scenario);

    let exporter = Exporter::start(&harness, &[]);
    let scrape = exporter.scrape();

    assert_eq!(of(&scrape, "aws_iam_exporter_refresh_success"), Some(1.0));
    let errors = account(&[
        ("operation", "GenerateCredentialReport"),
        ("code", "LimitExceeded"),
    ]);
    assert_eq!(
        scrape.value("aws_iam_exporter_api_errors_total", &errors),
        Some(2.0)
    );
    assert_eq!(of(&scrape, "aws_iam_users"), Some(3.0));
}

#[test]
fn report_still_being_generated_is_awaited() {
    let scenario = format!("{TYPICAL}report_polls_before_complete: 2\n");
    let harness = Harness::start(&scenario);

    let exporter = Exporter::start(&harness, &[]);
    let scrape = exporter.scrape();
    let calls = harness.calls();

    assert_eq!(of(&scrape, "aws_iam_users"), Some(3.0));
    // STARTED, INPROGRESS twice, then COMPLETE: four polls, one download.
    assert_eq!(calls.get("iam:GenerateCredentialReport"), Some(&4));
    assert_eq!(calls.get("iam:GetCredentialReport"), Some(&1));
}

#[test]
fn scrapes_never_call_aws() {
    let harness = Harness::start(TYPICAL);
    let exporter = Exporter::start(&harness, &[]);
    let calls_after_refresh = harness.calls();

    for _ in 0..20 {
        exporter.scrape();
    }

    assert_eq!(harness.calls(), calls_after_refresh);
}

#[test]
fn aws_calls_per_refresh_do_not_grow_with_users() {
    let small = Harness::start(TYPICAL);
    let large = Harness::start(&format!(
        "{TYPICAL}generate_users: {{count: 2000, prefix: svc}}\n"
    ));

    let _small_exporter = Exporter::start(&small, &[]);
    let large_exporter = Exporter::start(&large, &[]);

    assert_eq!(
        large_exporter
            .scrape()
            .value("aws_iam_users", &account(&[])),
        Some(2003.0)
    );
    assert_eq!(small.calls(), large.calls());
}

#[test]
fn missing_credentials_still_serve_metrics_until_a_signal() {
    let env = vec![
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ];
    let mut exporter = Exporter::spawn(&env, &["--refresh.interval=1h"]);

    exporter.wait_ready();
    let scrape = exporter.scrape();

    assert_eq!(
        scrape.value(
            "aws_iam_exporter_refresh_success",
            &[("account_id", "unknown")]
        ),
        Some(0.0)
    );
    assert!(scrape.has("aws_iam_exporter_build_info"));
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(exporter.is_running(), "the exporter must keep running");
    assert_eq!(exporter.terminate(), Some(0));
    assert!(
        exporter
            .log()
            .iter()
            .any(|l| l.contains("level=warn") && l.contains("GetCallerIdentity"))
    );
}

#[test]
fn unreachable_endpoint_is_a_failed_refresh_not_a_crash() {
    // A free port: nothing listens there, so every connection is refused.
    let env = emulator_env(&format!("http://127.0.0.1:{}", common::free_port()));
    let mut exporter = Exporter::spawn(&env, &[]);

    exporter.wait_ready();
    let scrape = exporter.scrape();

    assert_eq!(
        scrape.value(
            "aws_iam_exporter_refresh_success",
            &[("account_id", "unknown")]
        ),
        Some(0.0)
    );
    let errors = scrape.find(
        "aws_iam_exporter_api_errors_total",
        &[
            ("account_id", "unknown"),
            ("operation", "GetCallerIdentity"),
        ],
    );
    assert_eq!(errors.len(), 1);
    assert!(exporter.is_running());
}

#[test]
fn broken_config_file_is_refused_with_its_reason() {
    let dir = common::temp_dir("config");
    let path = dir.join("config.yml");
    std::fs::write(
        &path,
        "defaults:\n  thresholds: {root_password: ninety days}\n",
    )
    .expect("write");
    let harness = Harness::start(TYPICAL);
    let flag = format!("--config.file={}", path.display());

    let mut exporter = Exporter::spawn(&emulator_env(&harness.url), &[&flag]);
    wait_until("the exporter to exit", || !exporter.is_running());

    let log = exporter.log().join("\n");
    assert!(log.contains("is not a duration"), "{log}");
    assert!(
        log.contains("cannot start without a valid config file"),
        "{log}"
    );
}

#[test]
fn openmetrics_is_served_when_asked_for_and_classic_text_otherwise() {
    let harness = Harness::start(&with_faults(
        "[{service: iam, operation: GetAccountSummary, code: AccessDenied, status: 403}]",
    ));
    let exporter = Exporter::start(&harness, &[]);
    let get = |accept: &str| {
        let (status, head, body) = common::try_http_bytes(
            "GET",
            &exporter.address,
            "/metrics",
            None,
            &[("Accept", accept)],
        )
        .expect("answer");
        assert_eq!(status, 200);
        (head, String::from_utf8(body).expect("utf-8"))
    };

    let (om_head, openmetrics) = get("application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
    let (text_head, text) = get("text/plain");

    assert!(om_head.contains("content-type: application/openmetrics-text; version=1.0.0"));
    assert!(openmetrics.ends_with("# EOF\n"));
    assert!(openmetrics.contains("# TYPE aws_iam_exporter_api_errors counter\n"));
    assert!(openmetrics.contains(
        "aws_iam_exporter_api_errors_total{account_id=\"123456789012\",operation=\"GetAccountSummary\",code=\"AccessDenied\"} 1\n"
    ));
    assert!(text_head.contains("content-type: text/plain; version=0.0.4"));
    assert!(!text.contains("# EOF"));
    assert!(text.contains("# TYPE aws_iam_exporter_api_errors_total counter\n"));
}

#[test]
fn landing_page_and_health_endpoints_answer() {
    let harness = Harness::start(TYPICAL);
    let exporter = Exporter::start(&harness, &[]);

    let (status, page) = exporter.get("/").expect("landing page");
    let (healthy, _) = exporter.get("/-/healthy").expect("health");

    assert_eq!(status, 200);
    assert!(
        page.contains("<td>123456789012</td><td>acme-prod</td><td class=\"ok\">ok</td>"),
        "{page}"
    );
    assert!(page.contains("href=\"/metrics\""));
    assert_eq!(healthy, 200);
}

#[test]
fn scrape_passes_promtool_and_matches_the_golden_file() {
    let harness = Harness::start(
        &std::fs::read_to_string(common::repo_path("tests/scenarios/golden.yaml"))
            .expect("golden scenario"),
    );
    let dir = common::temp_dir("golden");
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        "accounts:\n  - account_id: \"123456789012\"\n    name: production\n    thresholds: {root_password: 30d, access_key: 45d}\n",
    )
    .expect("write config");
    let flag = format!("--config.file={}", config.display());
    let exporter = Exporter::start(&harness, &[&flag]);

    let scrape = exporter.scrape();
    let (ok, lint) = promtool_check_metrics(&scrape.body);
    let normalized = normalize(&scrape);
    let golden_path = common::repo_path("tests/golden/scrape.prom");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &normalized).expect("rewrite golden file");
    }
    let golden =
        std::fs::read_to_string(&golden_path).expect("golden file (UPDATE_GOLDEN=1 writes it)");

    let unexpected: Vec<&str> = lint
        .lines()
        .filter(|l| {
            !l.trim().is_empty() && !l.contains("use base unit \"seconds\" instead of \"days\"")
        })
        .collect();
    assert_eq!(
        unexpected,
        Vec::<&str>::new(),
        "promtool check metrics (success: {ok}):\n{lint}"
    );
    assert_eq!(
        normalized, golden,
        "scrape differs from tests/golden/scrape.prom"
    );
}

/// Makes a scrape comparable across runs: ages rounded to a tenth of a day,
/// timestamps written as days before now, durations and the revision masked.
fn normalize(scrape: &Scrape) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let mut out = String::new();
    for line in scrape.body.lines() {
        if line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("value");
        let value: f64 = value.parse().expect("number");
        let shown = if series.contains("_timestamp_seconds") {
            format!("<now - {:.1}d>", (now - value) / 86_400.0)
        } else if series.starts_with("aws_iam_exporter_refresh_duration_seconds") {
            "<duration>".to_owned()
        } else if series.contains("_days") {
            format!("{value:.1}")
        } else {
            format!("{value}")
        };
        let series = match series.find("revision=\"") {
            Some(start) => {
                let end = series[start + 10..]
                    .find('"')
                    .map_or(series.len(), |e| start + 10 + e);
                format!(
                    "{}revision=\"<revision>{}",
                    &series[..start],
                    &series[end..]
                )
            }
            None => series.to_owned(),
        };
        out.push_str(&format!("{series} {shown}\n"));
    }
    out
}

#[test]
fn shipped_iam_policy_allows_exactly_the_calls_a_refresh_makes() {
    let harness = Harness::start(TYPICAL);
    let policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_path("deploy/iam-policy.json")).expect("policy"),
    )
    .expect("policy is JSON");

    let _exporter = Exporter::start(&harness, &[]);
    let made: std::collections::BTreeSet<String> = harness
        .calls()
        .into_keys()
        // GetCallerIdentity needs no permission.
        .filter(|call| call != "sts:GetCallerIdentity")
        .collect();

    let allowed: std::collections::BTreeSet<String> = policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .flat_map(|s| match &s["Action"] {
            serde_json::Value::String(one) => vec![one.clone()],
            serde_json::Value::Array(many) => many
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(made, allowed);
}

#[test]
fn a_lasting_failure_is_warned_about_once_and_its_recovery_noted() {
    let scenario = with_faults(
        "[{service: iam, operation: GetAccountSummary, code: AccessDenied, status: 403, times: 4}]",
    );
    let harness = Harness::start(&scenario);

    let mut exporter = Exporter::start(&harness, &["--refresh.interval=1s"]);
    wait_until("the refresh to succeed again", || {
        exporter
            .scrape()
            .value("aws_iam_exporter_refresh_success", &account(&[]))
            == Some(1.0)
    });
    let errors = account(&[("operation", "GetAccountSummary"), ("code", "AccessDenied")]);
    let counted = exporter
        .scrape()
        .value("aws_iam_exporter_api_errors_total", &errors);

    let log = exporter.log().to_vec();
    let warnings = log.iter().filter(|l| l.contains("level=warn")).count();
    let recoveries = log
        .iter()
        .filter(|l| l.contains("refresh succeeded again"))
        .count();
    assert_eq!(counted, Some(4.0));
    assert_eq!(warnings, 1, "{log:#?}");
    assert_eq!(recoveries, 1, "{log:#?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let harness = Harness::start(TYPICAL);

    let mut exporter = Exporter::start(&harness, &["--log.format=json"]);

    let log = exporter.log().to_vec();
    assert!(!log.is_empty());
    for line in &log {
        let parsed: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert!(parsed.get("level").is_some(), "{line}");
    }
    assert!(
        log.iter()
            .any(|l| l.contains("\"account found\"") && l.contains("123456789012"))
    );
}

#[test]
fn gzip_scrapes_get_the_same_exposition_compressed() {
    use std::io::Read as _;
    let harness = Harness::start(TYPICAL);
    let exporter = Exporter::start(&harness, &[]);
    let plain = exporter.scrape().body;

    let (status, head, body) = common::try_http_bytes(
        "GET",
        &exporter.address,
        "/metrics",
        None,
        &[("Accept-Encoding", "gzip")],
    )
    .expect("answer");
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(body.as_slice())
        .read_to_string(&mut unzipped)
        .expect("valid gzip");

    assert_eq!(status, 200);
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(
        body.len() * 3 < plain.len(),
        "{} vs {}",
        body.len(),
        plain.len()
    );
    assert_eq!(unzipped, plain);
}

#[test]
fn unreadable_report_rows_are_skipped_and_counted() {
    let scenario = format!(
        "{TYPICAL}report_extra_lines:\n  - \"mallory,arn:aws:iam::123456789012:user/mallory,2026-01-01T00:00:00+00:00\"\n  - \"{}\"\n",
        "eve,arn:aws:iam::123456789012:user/eve,yesterday,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"
    );
    let harness = Harness::start(&scenario);

    let mut exporter = Exporter::start(&harness, &[]);
    let scrape = exporter.scrape();

    assert_eq!(of(&scrape, "aws_iam_users"), Some(3.0));
    assert_eq!(
        of(&scrape, "aws_iam_exporter_credential_report_invalid_rows"),
        Some(2.0)
    );
    assert_eq!(of(&scrape, "aws_iam_exporter_refresh_success"), Some(1.0));
    let log = exporter.log().join("\n");
    assert!(
        log.contains("credential report rows could not be read") && log.contains("skipped=2"),
        "{log}"
    );
}

#[test]
fn an_unreadable_report_keeps_the_last_good_one() {
    let harness = Harness::start(TYPICAL);
    let exporter = Exporter::start(&harness, &["--refresh.interval=1s"]);
    let malformed = account(&[
        ("operation", "GetCredentialReport"),
        ("code", "MalformedReport"),
    ]);

    harness.apply(&format!(
        "{TYPICAL}report_content: \"this is not,a credential report\\n1,2\\n\"\n"
    ));
    wait_until("the malformed report to be counted", || {
        exporter
            .scrape()
            .value("aws_iam_exporter_api_errors_total", &malformed)
            .is_some()
    });
    let scrape = exporter.scrape();

    assert_eq!(of(&scrape, "aws_iam_exporter_refresh_success"), Some(0.0));
    assert_eq!(of(&scrape, "aws_iam_users"), Some(3.0));
    assert_near(
        scrape.value(
            "aws_iam_user_access_key_age_days",
            &account(&[("user", "deploy-bot"), ("key", "1")]),
        ),
        200.0,
        0.01,
        "key age from the last good report",
    );
}

#[test]
fn config_reloads_on_request_and_on_sighup_and_a_broken_file_changes_nothing() {
    let harness = Harness::start(TYPICAL);
    let config = common::temp_dir("reload").join("config.yml");
    let write = |text: &str| std::fs::write(&config, text).expect("write config");
    let root_threshold = |e: &Exporter| {
        e.scrape().value(
            "aws_iam_rotation_threshold_days",
            &account(&[("credential", "root_password")]),
        )
    };
    write("defaults:\n  thresholds: {root_password: 30d}\n");
    let exporter = Exporter::start(&harness, &[&format!("--config.file={}", config.display())]);
    let at_start = root_threshold(&exporter);

    write("defaults:\n  thresholds: {root_password: 7d}\n");
    let reloaded = common::try_http("POST", &exporter.address, "/-/reload", Some(""), &[]);
    let after_reload = root_threshold(&exporter);
    write("defaults:\n  thresholds: {root_password: soon}\n");
    let refused = common::try_http("POST", &exporter.address, "/-/reload", Some(""), &[]);
    let after_refusal = root_threshold(&exporter);
    write(
        "accounts:\n  - {account_id: \"123456789012\", name: renamed, thresholds: {root_password: 14d}}\n",
    );
    exporter.signal("HUP");
    wait_until("the SIGHUP reload", || {
        root_threshold(&exporter) == Some(14.0)
    });

    assert_eq!(at_start, Some(30.0));
    assert_eq!(reloaded.map(|(status, _)| status), Some(200));
    assert_eq!(after_reload, Some(7.0));
    let (status, reason) = refused.expect("answer");
    assert_eq!(status, 500);
    assert!(reason.contains("`soon` is not a duration"), "{reason}");
    assert_eq!(after_refusal, Some(7.0));
    let info = exporter.scrape();
    assert_eq!(
        info.find(
            "aws_iam_account_info",
            &account(&[("account_name", "renamed")])
        )
        .len(),
        1
    );
}

#[test]
fn a_stalled_aws_call_times_out_without_holding_back_the_rest() {
    let scenario = format!(
        "{TYPICAL}delays:\n  - {{service: iam, operation: GetAccountSummary, seconds: 20}}\n"
    );
    let harness = Harness::start(&scenario);

    let exporter = Exporter::start(&harness, &["--aws.timeout=1s"]);
    let scrape = exporter.scrape();

    let timeouts = account(&[("operation", "GetAccountSummary"), ("code", "Timeout")]);
    assert_eq!(
        scrape.value("aws_iam_exporter_api_errors_total", &timeouts),
        Some(1.0)
    );
    assert_eq!(of(&scrape, "aws_iam_exporter_refresh_success"), Some(0.0));
    assert_eq!(of(&scrape, "aws_iam_users"), Some(3.0));
    let took = of(&scrape, "aws_iam_exporter_refresh_duration_seconds").expect("duration");
    assert!(
        (2.5..10.0).contains(&took),
        "the call is given up after about 3 s: {took}"
    );
}
