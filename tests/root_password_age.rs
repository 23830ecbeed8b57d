//! The root password's age, end to end: CloudTrail events served by the
//! emulator, the state file across restarts, the config file, the account's
//! creation, and CloudTrail failures.

mod common;

use std::path::Path;

use common::{Exporter, Harness, Scrape, temp_dir};

const ID: [(&str, &str); 1] = [("account_id", "123456789012")];

/// A scenario with the given account age and CloudTrail events (YAML flow list).
fn scenario(account_age_days: u32, events: &str, extra: &str) -> String {
    format!(
        r#"
account_id: "123456789012"
account_alias: acme-root
account_created_days_ago: {account_age_days}
root:
  password_present: true
  password_last_used_days_ago: 2
  mfa: hardware
users:
  - name: alice
    created_days_ago: 100
    password: {{changed_days_ago: 10, last_used_days_ago: 1}}
    mfa: virtual
cloudtrail:
  events: {events}
{extra}"#
    )
}

struct RootAge {
    age: Option<f64>,
    exact: Option<f64>,
    sources: Vec<String>,
}

fn root_age(scrape: &Scrape) -> RootAge {
    RootAge {
        age: scrape.value("aws_iam_root_password_age_days", &ID),
        exact: scrape.value("aws_iam_root_password_age_exact", &ID),
        sources: scrape
            .find("aws_iam_root_password_last_changed_timestamp_seconds", &ID)
            .iter()
            .map(|s| s.labels["source"].clone())
            .collect(),
    }
}

fn assert_age(actual: Option<f64>, expected: f64) {
    let actual = actual.expect("aws_iam_root_password_age_days is present");
    assert!(
        (actual - expected).abs() <= 0.1,
        "age {actual}, expected {expected} ± 0.1"
    );
}

/// CloudTrail holding one successful root password change, `days_ago`.
fn root_changed(days_ago: u32) -> String {
    format!(
        "[{{event_name: PasswordUpdated, identity: Root, days_ago: {days_ago}, outcome: Success, region: us-east-1}}]"
    )
}

fn state_flag(path: &Path) -> String {
    format!("--state.file={}", path.display())
}

#[test]
fn root_change_ten_days_ago_is_exact_from_cloudtrail() {
    let harness = Harness::start(&scenario(1095, &root_changed(10), ""));

    let scrape = Exporter::start(&harness, &[]).scrape();

    let root = root_age(&scrape);
    assert_age(root.age, 10.0);
    assert_eq!(root.exact, Some(1.0));
    assert_eq!(root.sources, ["cloudtrail"]);
}

#[test]
fn an_iam_users_password_change_does_not_count() {
    let harness = Harness::start(&scenario(
        1095,
        "[{event_name: PasswordUpdated, identity: IAMUser, user: alice, days_ago: 10, region: us-east-1}]",
        "",
    ));

    let scrape = Exporter::start(&harness, &[]).scrape();

    let root = root_age(&scrape);
    assert_age(root.age, 90.0);
    assert_eq!(root.exact, Some(0.0));
    assert!(root.sources.is_empty());
}

#[test]
fn no_change_in_an_old_account_is_a_ninety_day_lower_bound() {
    let harness = Harness::start(&scenario(3 * 365, "[]", ""));

    let scrape = Exporter::start(&harness, &[]).scrape();

    let root = root_age(&scrape);
    assert_age(root.age, 90.0);
    assert_eq!(root.exact, Some(0.0));
    assert!(root.sources.is_empty());
}

#[test]
fn failed_change_and_other_regions_are_respected() {
    let harness = Harness::start(&scenario(
        1095,
        "[{event_name: PasswordUpdated, identity: Root, days_ago: 3, outcome: Failure, region: us-east-1},
          {event_name: PasswordUpdated, identity: Root, days_ago: 40, outcome: Success, region: eu-west-1},
          {event_name: PasswordUpdated, identity: Root, days_ago: 60, outcome: Success, region: us-east-1}]",
        "",
    ));

    let default_regions = Exporter::start(&harness, &[]).scrape();
    let both_regions =
        Exporter::start(&harness, &["--cloudtrail.regions=us-east-1,eu-west-1"]).scrape();

    assert_age(root_age(&default_regions).age, 60.0);
    assert_age(root_age(&both_regions).age, 40.0);
}

#[test]
fn password_recovery_counts_as_a_change() {
    let harness = Harness::start(&scenario(
        1095,
        "[{event_name: PasswordRecoveryCompleted, identity: Root, days_ago: 7, outcome: Success, region: us-east-1}]",
        "",
    ));

    let root = root_age(&Exporter::start(&harness, &[]).scrape());

    assert_age(root.age, 7.0);
    assert_eq!(root.exact, Some(1.0));
}

#[test]
fn malformed_events_are_skipped_and_the_next_one_used() {
    let harness = Harness::start(&scenario(
        1095,
        "[{event_name: PasswordUpdated, identity: Root, days_ago: 5, malformed: true, region: us-east-1},
          {event_name: PasswordUpdated, identity: Root, days_ago: 25, outcome: Success, region: us-east-1}]",
        "",
    ));

    let mut exporter = Exporter::start(&harness, &[]);
    let root = root_age(&exporter.scrape());

    assert_age(root.age, 25.0);
    assert!(
        exporter
            .log()
            .iter()
            .any(|l| l.contains("unreadable CloudTrail events skipped"))
    );
}

#[test]
fn remembered_change_stays_exact_after_leaving_the_cloudtrail_window() {
    let harness = Harness::start(&scenario(1095, &root_changed(80), ""));
    let state = temp_dir("state").join("state.json");

    let mut first = Exporter::start(&harness, &[&state_flag(&state)]);
    let seen = root_age(&first.scrape());
    assert_eq!(first.terminate(), Some(0));
    // A 60-day window no longer reaches the 80-day-old event, as CloudTrail's
    // 90 days will not once ten more days have passed.
    let second = Exporter::start(
        &harness,
        &[&state_flag(&state), "--cloudtrail.lookback=60d"],
    );
    let remembered = root_age(&second.scrape());
    let without_state =
        root_age(&Exporter::start(&harness, &["--cloudtrail.lookback=60d"]).scrape());

    assert_age(seen.age, 80.0);
    assert_eq!(seen.sources, ["cloudtrail"]);
    assert!(
        std::fs::read_to_string(&state)
            .expect("state file written")
            .contains("PasswordUpdated")
    );
    assert_age(remembered.age, 80.0);
    assert_eq!(remembered.exact, Some(1.0));
    assert_eq!(remembered.sources, ["state"]);
    assert_age(without_state.age, 60.0);
    assert_eq!(without_state.exact, Some(0.0));
}

#[test]
fn corrupt_state_file_is_moved_aside_and_the_exporter_goes_on() {
    let harness = Harness::start(&scenario(1095, &root_changed(12), ""));
    let dir = temp_dir("corrupt");
    let state = dir.join("state.json");
    std::fs::write(&state, "{\"version\": 1, \"accounts\": {\"1234").expect("write");

    let mut exporter = Exporter::start(&harness, &[&state_flag(&state)]);
    let root = root_age(&exporter.scrape());

    assert_age(root.age, 12.0);
    let log = exporter.log().join("\n");
    assert!(
        log.contains("level=warn") && log.contains("state file unusable"),
        "{log}"
    );
    let moved: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("state.json.corrupt-"))
        .collect();
    assert_eq!(moved.len(), 1, "the corrupt file is kept aside");
    assert!(
        std::fs::read_to_string(&state)
            .expect("new state")
            .contains("\"version\": 1")
    );
}

#[test]
fn young_account_without_change_is_as_old_as_the_account() {
    let harness = Harness::start(&scenario(30, "[]", ""));

    let scrape = Exporter::start(&harness, &[]).scrape();

    let root = root_age(&scrape);
    assert_age(root.age, 30.0);
    assert_eq!(root.exact, Some(1.0));
    assert_eq!(root.sources, ["account_creation"]);
}

#[test]
fn cloudtrail_denied_falls_back_to_the_state_file() {
    let harness = Harness::start(&scenario(
        1095,
        &root_changed(5),
        "faults:\n  - {service: cloudtrail, operation: LookupEvents, code: AccessDeniedException, status: 400}",
    ));
    let state = temp_dir("denied").join("state.json");
    let changed = chrono::Utc::now() - chrono::Duration::days(50);
    std::fs::write(
        &state,
        format!(
            r#"{{"version": 1, "accounts": {{"123456789012": {{"root_password_last_changed": "{}",
            "event_id": "e-1", "event_name": "PasswordUpdated", "recorded_at": "{}"}}}}}}"#,
            changed.to_rfc3339(),
            changed.to_rfc3339()
        ),
    )
    .expect("write state");

    let scrape = Exporter::start(&harness, &[&state_flag(&state)]).scrape();

    let root = root_age(&scrape);
    assert_age(root.age, 50.0);
    assert_eq!(root.sources, ["state"]);
    let denied = [
        ("account_id", "123456789012"),
        ("operation", "LookupEvents"),
        ("code", "AccessDeniedException"),
    ];
    assert_eq!(
        scrape.value("aws_iam_exporter_api_errors_total", &denied),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("aws_iam_exporter_refresh_success", &ID),
        Some(0.0)
    );
    assert_eq!(scrape.value("aws_iam_users", &ID), Some(1.0));
    assert_eq!(
        scrape.value("aws_iam_root_hardware_mfa_enabled", &ID),
        Some(1.0)
    );
}

#[test]
fn cloudtrail_denied_with_nothing_remembered_reports_no_made_up_age() {
    let harness = Harness::start(&scenario(
        1095,
        "[]",
        "faults:\n  - {service: cloudtrail, operation: LookupEvents, code: AccessDeniedException, status: 400}",
    ));

    let scrape = Exporter::start(&harness, &[]).scrape();

    let root = root_age(&scrape);
    assert_eq!(root.age, None);
    assert_eq!(root.exact, Some(0.0));
}

#[test]
fn declared_date_and_thresholds_come_from_the_config_file() {
    let harness = Harness::start(&scenario(1095, "[]", ""));
    let dir = temp_dir("declared");
    let config = dir.join("config.yml");
    let declared = (chrono::Utc::now() - chrono::Duration::days(100)).format("%Y-%m-%d");
    std::fs::write(
        &config,
        format!(
            "accounts:\n  - account_id: \"123456789012\"\n    thresholds: {{root_password: 7d}}\n    root_password_last_changed: {declared}\n"
        ),
    )
    .expect("write config");

    let scrape =
        Exporter::start(&harness, &[&format!("--config.file={}", config.display())]).scrape();

    let root = root_age(&scrape);
    let age = root.age.expect("age");
    assert!(
        (100.0..101.0).contains(&age),
        "midnight of the declared day: {age}"
    );
    assert_eq!(root.exact, Some(1.0));
    assert_eq!(root.sources, ["config"]);
    let threshold = [
        ("account_id", "123456789012"),
        ("credential", "root_password"),
    ];
    assert_eq!(
        scrape.value("aws_iam_rotation_threshold_days", &threshold),
        Some(7.0)
    );
}

#[test]
fn root_without_a_password_has_no_age() {
    let text =
        scenario(1095, "[]", "").replace("password_present: true", "password_present: false");
    let harness = Harness::start(&text);

    let scrape = Exporter::start(&harness, &[]).scrape();

    assert_eq!(
        scrape.value("aws_iam_root_password_present", &ID),
        Some(0.0)
    );
    assert_eq!(scrape.value("aws_iam_root_password_age_days", &ID), None);
    assert_eq!(scrape.value("aws_iam_root_password_age_exact", &ID), None);
}

#[test]
fn root_last_use_comes_from_the_report() {
    let harness = Harness::start(&scenario(1095, "[]", ""));

    let scrape = Exporter::start(&harness, &[]).scrape();

    let used = scrape
        .value(
            "aws_iam_root_last_used_timestamp_seconds",
            &[("account_id", "123456789012"), ("credential", "password")],
        )
        .expect("root password last used");
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(((now - used) / 86_400.0 - 2.0).abs() < 0.01);
}

#[test]
fn unwritable_state_file_is_warned_about_and_the_change_kept_in_memory() {
    let harness = Harness::start(&scenario(1095, &root_changed(15), ""));
    let state = temp_dir("unwritable")
        .join("missing-dir")
        .join("state.json");

    let mut exporter = Exporter::start(&harness, &[&state_flag(&state)]);
    let root = root_age(&exporter.scrape());

    assert_age(root.age, 15.0);
    assert_eq!(root.sources, ["cloudtrail"]);
    let log = exporter.log().join("\n");
    assert!(
        log.contains("level=warn") && log.contains("writing the state file failed"),
        "{log}"
    );
    assert!(!state.exists());
}
