"""End to end: an account's findings page through Prometheus and Alertmanager, and clear.

The AWS emulator serves tests/scenarios/e2e-bad.yaml (plus one transient API error);
the exporter refreshes it every second; a real Prometheus scrapes the exporter and
evaluates alerts/iam-credentials.rules.yml (with every `for:` shortened, in a copy);
a real Alertmanager routes every alert to a webhook receiver in this process.

The test then checks, in order:

1. exactly the expected alerts arrive as `firing` at the webhook, with their labels and
   annotations, and no other alert follows within a quiet period;
2. every Grafana dashboard query evaluates without error against that Prometheus;
3. once tests/scenarios/e2e-fixed.yaml is applied, every alert arrives as `resolved`
   and Prometheus has no active alert left;
4. every dashboard query returned data in at least one of the two states.

Needs the exporter binary (target/debug, or $IAM_EXPORTER_BIN), `prometheus`,
`prometheus-alertmanager` and the emulator's Python packages; scripts/test.sh provides
all of them. Takes about 20 seconds.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "dashboard")]

import check_dashboard  # noqa: E402
from e2e_stack import REPO, Stack, wait_until, write_yaml  # noqa: E402

SCENARIOS = REPO / "tests" / "scenarios"
BAD_SCENARIO = SCENARIOS / "e2e-bad.yaml"
FIXED_SCENARIO = SCENARIOS / "e2e-fixed.yaml"
RULES = REPO / "alerts" / "iam-credentials.rules.yml"
RUNBOOKS = REPO / "docs" / "runbooks"
DASHBOARD = REPO / "grafana" / "iam-credentials.json"

ACCOUNT_ID = "123456789012"  # account_id of both scenarios
ACCOUNT_ALIAS = "acme-e2e"  # account_alias of both scenarios
ACCOUNT_NAME = "e2e"  # given to the account in the exporter's config file

# Replaces every rule's `for:`, so that an alert fires a few evaluations after its
# condition first holds instead of after 15 minutes or an hour.
SHORT_FOR = "2s"
FIRING_TIMEOUT_SECONDS = 90
QUIET_SECONDS = 5  # after the expected alerts, how long no other may arrive
RESOLVED_TIMEOUT_SECONDS = 90

# Template output that means a template went wrong.
TEMPLATE_ERRORS = ("<no value>", "error expanding", "%!")


# ------------------------------------------------------------------------ expectations


@dataclass
class ExpectedAlert:
    """One alert: its exact label set, and facts its description must state."""

    labels: dict[str, str]
    mentions: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.labels["alertname"]


def expected(alertname: str, severity: str, *mentions: str, **labels: str) -> ExpectedAlert:
    account = {
        "account_id": ACCOUNT_ID,
        "account_alias": ACCOUNT_ALIAS,
        "account_name": ACCOUNT_NAME,
    }
    return ExpectedAlert(
        labels={"alertname": alertname, "severity": severity, **account, **labels},
        mentions=mentions,
    )


# What e2e-bad.yaml triggers with the config below (root password threshold 30 days,
# the user password and access key thresholds left at 90), and nothing else.
EXPECTED_FIRING = [
    # CloudTrail shows the root password changed 85 days ago (exact age), and 85 >= 30.
    # Not DueSoon (that is only below the threshold), not AgeUnknown (the age is exact).
    expected("AwsIamRootPasswordRotationOverdue", "critical", "85.0", "30 days"),
    # root.mfa: none. Not HardwareMfaMissing: that one needs MFA on, only virtual.
    expected(
        "AwsIamRootMfaDisabled", "critical", cis_aws_foundations="1.5", security_hub="IAM.9"
    ),
    # root.access_keys holds one active key.
    expected(
        "AwsIamRootAccessKeyActive",
        "critical",
        "1 active",
        cis_aws_foundations="1.4",
        security_hub="IAM.4",
    ),
    # No password_policy: GetAccountPasswordPolicy answers NoSuchEntity. Without a
    # policy its other series are absent, so neither NoExpiry nor Weak fires.
    expected(
        "AwsIamPasswordPolicyMissing",
        "warning",
        cis_aws_foundations="1.8,1.9",
        security_hub="IAM.15,IAM.16",
    ),
    # deploy-bot's only key is active and 200 days old, and 200 >= 90.
    expected(
        "AwsIamAccessKeyRotationOverdue",
        "warning",
        "deploy-bot",
        "200.0",
        "90 days",
        cis_aws_foundations="1.14",
        security_hub="IAM.3",
        user="deploy-bot",
        key="1",
    ),
    # alice has a console password and no MFA. deploy-bot has no MFA either, but no
    # password, so it is not a console user.
    expected(
        "AwsIamConsoleUserWithoutMfa",
        "warning",
        "alice",
        cis_aws_foundations="1.10",
        security_hub="IAM.5",
        user="alice",
    ),
    # Silent on purpose:
    # - AwsIamRootUsedRecently: root last used 10 days (password) and 2 days (key) ago.
    # - AwsIamCredentialsUnused: alice's password and deploy-bot's key were used a day
    #   ago (the 45-day window is far off), and root credentials are not in scope.
    # - AwsIamExporterRefreshFailing: the injected error is retried within the refresh,
    #   which succeeds.
    # - AwsIamCredentialReportStale: the report is an hour old (limit 8 hours).
]


AlertKey = tuple[tuple[str, str], ...]


def alert_key(labels: dict[str, str]) -> AlertKey:
    """An alert's identity, as Alertmanager sees it: its whole label set."""
    return tuple(sorted(labels.items()))


def describe_key(key: AlertKey) -> str:
    return "{" + ", ".join(f"{name}={value!r}" for name, value in key) + "}"


# ------------------------------------------------------------------------ set-up


def bad_scenario_with_fault(directory: Path) -> Path:
    """e2e-bad.yaml plus one LimitExceeded from GenerateCredentialReport: the exporter
    retries it within the refresh and counts it, so the API-errors panel has data."""
    scenario = yaml.safe_load(BAD_SCENARIO.read_text(encoding="utf-8"))
    scenario.setdefault("faults", []).append(
        {
            "service": "iam",
            "operation": "GenerateCredentialReport",
            "code": "LimitExceeded",
            "status": 409,
            "times": 1,
        }
    )
    return write_yaml(directory / "e2e-bad-with-fault.yaml", scenario)


def exporter_config(directory: Path) -> Path:
    return write_yaml(
        directory / "exporter.yml",
        {
            "accounts": [
                {
                    "account_id": ACCOUNT_ID,
                    "name": ACCOUNT_NAME,
                    "thresholds": {"root_password": "30d"},
                }
            ]
        },
    )


def rules_with_short_for(directory: Path) -> Path:
    """A copy of the shipped rules in which every `for:` is SHORT_FOR."""
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = SHORT_FOR
    return write_yaml(directory / "rules.yml", rules)


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "webhook",
            "group_by": ["alertname", "account_id", "user", "key"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "webhook",
                "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
            }
        ],
    }


def prometheus_config(exporter_url: str, alertmanager_url: str, rules: Path) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [alertmanager_url.removeprefix("http://")]}]}
            ]
        },
        "scrape_configs": [
            {
                "job_name": "iam-credentials",
                "static_configs": [{"targets": [exporter_url.removeprefix("http://")]}],
            }
        ],
    }


@pytest.fixture
def stack(tmp_path: Path):
    """Everything running, on the bad scenario; stopped again after the test."""
    running = Stack(tmp_path)
    try:
        with running.logs_on_failure():
            webhook = running.start_webhook()
            running.start_emulator(bad_scenario_with_fault(tmp_path))
            running.start_exporter(exporter_config(tmp_path))
            running.start_alertmanager(alertmanager_config(webhook.url))
            running.start_prometheus(
                prometheus_config(
                    running.exporter_url, running.alertmanager_url, rules_with_short_for(tmp_path)
                )
            )
        yield running
    finally:
        running.stop()


# ------------------------------------------------------------------------ checks


def firing_keys(alerts: list[dict[str, Any]]) -> set[AlertKey]:
    return {alert_key(a["labels"]) for a in alerts if a["status"] == "firing"}


def resolved_keys(alerts: list[dict[str, Any]]) -> set[AlertKey]:
    return {alert_key(a["labels"]) for a in alerts if a["status"] == "resolved"}


def annotation_problems(expectation: ExpectedAlert, alert: dict[str, Any]) -> list[str]:
    """What is wrong with the annotations of one received alert."""
    problems = []
    name = expectation.name
    annotations = alert["annotations"]
    if not annotations.get("summary", "").strip():
        problems.append(f"{name}: no summary")
    description = annotations.get("description", "")
    for fact in (ACCOUNT_ID, ACCOUNT_ALIAS, *expectation.mentions):
        if fact not in description:
            problems.append(f"{name}: description does not mention {fact!r}: {description!r}")
    for text in annotations.values():
        if any(marker in text for marker in TEMPLATE_ERRORS):
            problems.append(f"{name}: an annotation failed to render: {text!r}")
    runbook_url = annotations.get("runbook_url", "")
    if not runbook_url.endswith(f"docs/runbooks/{name}.md"):
        problems.append(f"{name}: runbook_url {runbook_url!r} is not docs/runbooks/{name}.md")
    if not (RUNBOOKS / f"{name}.md").is_file():
        problems.append(f"{name}: the runbook docs/runbooks/{name}.md does not exist")
    return problems


_NO_DATA = re.compile(r": no (?:data|values): ")


def run_dashboard_queries(prometheus_url: str, state: str) -> tuple[set[str], list[str]]:
    """Runs every dashboard query: (failures that are only "no data", errors).

    query_all_panels words each failure as "<panel and query>: no data: <expr>" (or
    "variable ...: no values: <expr>") when the query returned nothing, and otherwise
    names the error; the wording is the same in every state, so the "no data" messages
    of two states can be intersected.
    """
    failures = check_dashboard.query_all_panels(DASHBOARD, prometheus_url)
    empty = {f for f in failures if _NO_DATA.search(f)}
    errors = [f"{state}: {f}" for f in failures if f not in empty]
    print(f"dashboard queries without data in the {state} state ({len(empty)}):")
    for failure in sorted(empty):
        print(f"  {failure}")
    return empty, errors


def assert_exactly_these_fire(stack: Stack, expected: dict[AlertKey, ExpectedAlert]) -> None:
    """Waits for every expected alert to arrive as firing, then for a quiet period in
    which no other may arrive; checks labels, annotations and Prometheus' own view."""
    webhook = stack.webhook
    assert webhook is not None

    arrived = webhook.wait_for(
        lambda alerts: expected.keys() <= firing_keys(alerts), FIRING_TIMEOUT_SECONDS
    )
    missing = expected.keys() - firing_keys(webhook.alerts())
    assert arrived, "never arrived as firing:\n" + "\n".join(map(describe_key, sorted(missing)))
    webhook.wait_for(lambda alerts: bool(firing_keys(alerts) - expected.keys()), QUIET_SECONDS)
    stack.check_running()

    received = webhook.alerts()
    unexpected = firing_keys(received) - expected.keys()
    assert not unexpected, "unexpected alerts fired:\n" + "\n".join(
        map(describe_key, sorted(unexpected))
    )
    problems = set()
    for alert in received:
        problems.update(annotation_problems(expected[alert_key(alert["labels"])], alert))
    assert not problems, "\n".join(sorted(problems))
    in_prometheus = {
        alert_key(a["labels"]) for a in stack.prometheus_alerts() if a["state"] == "firing"
    }
    assert in_prometheus == expected.keys()


def assert_all_resolve(stack: Stack, expected: dict[AlertKey, ExpectedAlert]) -> None:
    """Waits for every alert to arrive as resolved and for Prometheus to hold no
    active alert; checks that nothing new fired meanwhile."""
    webhook = stack.webhook
    assert webhook is not None

    resolved = webhook.wait_for(
        lambda alerts: expected.keys() <= resolved_keys(alerts), RESOLVED_TIMEOUT_SECONDS
    )
    unresolved = expected.keys() - resolved_keys(webhook.alerts())
    assert resolved, "never arrived as resolved:\n" + "\n".join(
        map(describe_key, sorted(unresolved))
    )
    try:
        wait_until(
            lambda: not stack.prometheus_alerts(),
            RESOLVED_TIMEOUT_SECONDS,
            "Prometheus to have no active alert",
        )
    except TimeoutError:
        pytest.fail(f"alerts still active in Prometheus: {stack.prometheus_alerts()}")
    stack.check_running()
    late = firing_keys(webhook.alerts()) - expected.keys()
    assert not late, "fired after the fix:\n" + "\n".join(map(describe_key, sorted(late)))


# ------------------------------------------------------------------------ the test


def test_findings_page_with_runbooks_and_resolve_once_remediated(stack: Stack) -> None:
    expected = {alert_key(e.labels): e for e in EXPECTED_FIRING}
    fixed_scenario = yaml.safe_load(FIXED_SCENARIO.read_text(encoding="utf-8"))

    with stack.logs_on_failure():
        assert_exactly_these_fire(stack, expected)
        bad_empty, bad_errors = run_dashboard_queries(stack.prometheus_url, "bad")

        stack.apply_scenario(fixed_scenario)
        assert_all_resolve(stack, expected)
        fixed_empty, fixed_errors = run_dashboard_queries(stack.prometheus_url, "fixed")

        assert not bad_errors + fixed_errors, "\n".join(bad_errors + fixed_errors)
        never = sorted(bad_empty & fixed_empty)
        assert not never, "dashboard queries with data in neither state:\n" + "\n".join(never)
