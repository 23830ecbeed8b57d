"""Self-tests of the AWS emulator, driven exactly as a client drives it.

Each test talks to a real emulator process, started with its command line and found
through its READY line, using boto3 with the test credentials. Expected dates are
computed from the moment the emulator applied the scenario (`applied_at_unix`), so they
are exact.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

HARNESS = Path(__file__).resolve().parent
EMULATOR = HARNESS / "emulator.py"
SCENARIOS = HARNESS.parent / "scenarios"
READY_TIMEOUT_SECONDS = 30
EXIT_TIMEOUT_SECONDS = 10
HTTP_TIMEOUT_SECONDS = 30
ACCOUNT = "123456789012"
# No retries: every call a test makes reaches the emulator exactly once.
NO_RETRIES = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)


class Emulator:
    """A running emulator process and clients for it."""

    def __init__(self, process: subprocess.Popen, url: str):
        self.process = process
        self.url = url

    def client(self, service: str, region: str = "us-east-1") -> Any:
        return boto3.client(
            service, endpoint_url=self.url, region_name=region, config=NO_RETRIES,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def apply(self, scenario: dict[str, Any]) -> datetime:
        """Applies a scenario; returns the emulator's clock at that moment."""
        status, answer = self.control("PUT", "/_harness/scenario", scenario)
        assert status == 200, answer
        return datetime.fromtimestamp(answer["applied_at_unix"], tz=timezone.utc)

    def calls(self) -> dict[str, int]:
        return self.control("GET", "/_harness/calls")[1]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(EXIT_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(EXIT_TIMEOUT_SECONDS)
        self.process.stdout.close()


def start_emulator(scenario: Path, *extra: str) -> Emulator:
    process = subprocess.Popen(
        [sys.executable, str(EMULATOR), "--scenario", str(scenario), "--port", "0", *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    line = read_line(process, READY_TIMEOUT_SECONDS)
    assert line.startswith("READY http://127.0.0.1:"), line
    return Emulator(process, line.split()[1])


def read_line(process: subprocess.Popen, timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        process.kill()
        pytest.fail(f"no line on stdout within {timeout} s")
    return process.stdout.readline().strip()


@pytest.fixture(scope="session")
def emulator() -> Any:
    running = start_emulator(SCENARIOS / "basic.yaml")
    yield running
    running.stop()


def ago(now: datetime, days: float) -> datetime:
    return (now - timedelta(days=days)).replace(microsecond=0)


def aws_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def report_rows(emulator: Emulator) -> list[dict[str, str]]:
    iam = emulator.client("iam")
    assert iam.generate_credential_report()["State"] == "COMPLETE"
    content = iam.get_credential_report()["Content"].decode()
    return list(csv.DictReader(io.StringIO(content)))


def error_of(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response


def scenario(**overrides: Any) -> dict[str, Any]:
    """A small scenario; keyword arguments replace its top-level keys."""
    document: dict[str, Any] = {
        "account_id": ACCOUNT,
        "account_alias": "acme-test",
        "account_created_days_ago": 1000,
        "report_generated_hours_ago": 3,
        "root": {"password_present": True, "password_last_used_days_ago": 4, "mfa": "none"},
        "users": [
            {
                "name": "alice",
                "created_days_ago": 400,
                "password": {"changed_days_ago": 30, "last_used_days_ago": 1},
                "mfa": "virtual",
                "access_keys": [
                    {"active": True, "created_days_ago": 200, "last_used_days_ago": 5,
                     "service": "s3", "region": "eu-west-1"},
                    {"active": False, "created_days_ago": 300},
                ],
            },
            {"name": "bob", "created_days_ago": 50},
        ],
    }
    document.update(overrides)
    return document


# The command line


def test_exits_when_stdin_reaches_end_of_file() -> None:
    running = start_emulator(SCENARIOS / "basic.yaml")

    running.process.stdin.close()

    assert running.process.wait(EXIT_TIMEOUT_SECONDS) == 0
    running.process.stdout.close()


def test_exits_on_sigterm() -> None:
    running = start_emulator(SCENARIOS / "basic.yaml")

    running.process.send_signal(signal.SIGTERM)

    assert running.process.wait(EXIT_TIMEOUT_SECONDS) == 0
    running.stop()


def test_refuses_an_invalid_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("account_id: '1234'\nusers: []\n")

    result = subprocess.run(
        [sys.executable, str(EMULATOR), "--scenario", str(path)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=READY_TIMEOUT_SECONDS,
    )

    assert result.returncode == 2
    assert "account_id: expected 12 digits" in result.stderr
    assert result.stdout == ""


def test_every_shipped_scenario_loads(emulator: Emulator) -> None:
    for path in sorted(SCENARIOS.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())

        status, answer = emulator.control("PUT", "/_harness/scenario", document)

        assert status == 200, (path.name, answer)


# The credential report


def test_report_has_aws_columns_in_aws_order(emulator: Emulator) -> None:
    emulator.apply(scenario())

    content = emulator.client("iam").get_credential_report()["Content"].decode()

    assert content.splitlines()[0] == (
        "user,arn,user_creation_time,password_enabled,password_last_used,"
        "password_last_changed,password_next_rotation,mfa_active,access_key_1_active,"
        "access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,"
        "access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,"
        "access_key_2_last_used_date,access_key_2_last_used_region,"
        "access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,"
        "cert_2_last_rotated"
    )
    assert content.endswith("\n")


def test_report_starts_with_the_root_row(emulator: Emulator) -> None:
    now = emulator.apply(scenario(root={
        "password_present": True, "password_last_used_days_ago": 4, "mfa": "hardware",
        "access_keys": [{"active": True, "created_days_ago": 400, "last_used_days_ago": 2,
                         "service": "ec2", "region": "us-west-2"}],
    }))

    root = report_rows(emulator)[0]

    assert root == {
        "user": "<root_account>",
        "arn": f"arn:aws:iam::{ACCOUNT}:root",
        "user_creation_time": aws_time(ago(now, 1000)),
        "password_enabled": "not_supported",
        "password_last_used": aws_time(ago(now, 4)),
        "password_last_changed": "not_supported",
        "password_next_rotation": "not_supported",
        "mfa_active": "true",
        "access_key_1_active": "true",
        "access_key_1_last_rotated": aws_time(ago(now, 400)),
        "access_key_1_last_used_date": aws_time(ago(now, 2)),
        "access_key_1_last_used_region": "us-west-2",
        "access_key_1_last_used_service": "ec2",
        "access_key_2_active": "false",
        "access_key_2_last_rotated": "N/A",
        "access_key_2_last_used_date": "N/A",
        "access_key_2_last_used_region": "N/A",
        "access_key_2_last_used_service": "N/A",
        "cert_1_active": "false",
        "cert_1_last_rotated": "N/A",
        "cert_2_active": "false",
        "cert_2_last_rotated": "N/A",
    }


def test_root_row_says_no_information_when_the_password_was_never_used(
    emulator: Emulator,
) -> None:
    emulator.apply(scenario(root={"password_last_used_days_ago": None}))

    root = report_rows(emulator)[0]

    assert root["password_last_used"] == "no_information"
    assert root["mfa_active"] == "false"
    assert root["access_key_1_active"] == "false"


def test_user_rows_carry_the_scenario_dates(emulator: Emulator) -> None:
    now = emulator.apply(scenario())

    alice, bob = report_rows(emulator)[1:]

    assert alice == {
        "user": "alice",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
        "user_creation_time": aws_time(ago(now, 400)),
        "password_enabled": "true",
        "password_last_used": aws_time(ago(now, 1)),
        "password_last_changed": aws_time(ago(now, 30)),
        "password_next_rotation": "N/A",
        "mfa_active": "true",
        "access_key_1_active": "true",
        "access_key_1_last_rotated": aws_time(ago(now, 200)),
        "access_key_1_last_used_date": aws_time(ago(now, 5)),
        "access_key_1_last_used_region": "eu-west-1",
        "access_key_1_last_used_service": "s3",
        "access_key_2_active": "false",
        "access_key_2_last_rotated": aws_time(ago(now, 300)),
        "access_key_2_last_used_date": "N/A",
        "access_key_2_last_used_region": "N/A",
        "access_key_2_last_used_service": "N/A",
        "cert_1_active": "false",
        "cert_1_last_rotated": "N/A",
        "cert_2_active": "false",
        "cert_2_last_rotated": "N/A",
    }
    assert bob["password_enabled"] == "false"
    assert bob["password_last_used"] == "N/A"
    assert bob["password_last_changed"] == "N/A"
    assert bob["mfa_active"] == "false"
    assert bob["access_key_1_active"] == "false"
    assert bob["access_key_1_last_rotated"] == "N/A"


def test_user_row_says_no_information_for_a_password_never_used(emulator: Emulator) -> None:
    emulator.apply(scenario(users=[
        {"name": "carol", "password": {"changed_days_ago": 3, "last_used_days_ago": None}},
    ]))

    carol = report_rows(emulator)[1]

    assert carol["password_enabled"] == "true"
    assert carol["password_last_used"] == "no_information"


def test_next_rotation_follows_the_policy_maximum_age(emulator: Emulator) -> None:
    now = emulator.apply(scenario(password_policy={"max_age_days": 90}))

    alice = report_rows(emulator)[1]

    assert alice["password_next_rotation"] == aws_time(ago(now, 30) + timedelta(days=90))


def test_report_reflects_users_created_through_the_api(emulator: Emulator) -> None:
    emulator.apply(scenario())
    emulator.client("iam").create_user(UserName="dave")

    names = [row["user"] for row in report_rows(emulator)]

    assert names == ["<root_account>", "alice", "bob", "dave"]


def test_report_generated_time_is_hours_before_the_scenario(emulator: Emulator) -> None:
    now = emulator.apply(scenario(report_generated_hours_ago=5))

    report = emulator.client("iam").get_credential_report()

    assert report["ReportFormat"] == "text/csv"
    assert report["GeneratedTime"].timestamp() == (now - timedelta(hours=5)).timestamp()


def test_report_content_is_base64_in_the_xml(emulator: Emulator) -> None:
    emulator.apply(scenario())
    seen: list[str] = []
    iam = emulator.client("iam")
    iam.meta.events.register("after-call.iam.GetCredentialReport",
                             lambda http_response, **_: seen.append(http_response.text))

    iam.get_credential_report()

    encoded = seen[0].split("<Content>")[1].split("</Content>")[0]
    assert base64.b64decode(encoded).decode().startswith("user,arn,")


def test_report_polls_go_started_inprogress_complete(emulator: Emulator) -> None:
    emulator.apply(scenario(report_polls_before_complete=2))
    iam = emulator.client("iam")

    before = error_of(iam.get_credential_report)
    states = [iam.generate_credential_report()["State"] for _ in range(4)]

    assert before["Error"]["Code"] == "ReportInProgress"
    assert before["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert states == ["STARTED", "INPROGRESS", "INPROGRESS", "COMPLETE"]
    assert iam.get_credential_report()["Content"].startswith(b"user,arn,")
    assert iam.generate_credential_report()["State"] == "COMPLETE"


def test_report_is_not_ready_while_generation_is_in_progress(emulator: Emulator) -> None:
    emulator.apply(scenario(report_polls_before_complete=1))
    iam = emulator.client("iam")

    iam.generate_credential_report()
    iam.generate_credential_report()
    still_running = error_of(iam.get_credential_report)

    assert still_running["Error"]["Code"] == "ReportInProgress"


# Account summary, MFA, policy, alias, keys, identity


@pytest.mark.parametrize("root, flags", [
    ({"mfa": "none", "password_present": True},
     {"AccountMFAEnabled": 0, "AccountAccessKeysPresent": 0, "AccountPasswordPresent": 1,
      "MFADevices": 1, "MFADevicesInUse": 1}),
    ({"mfa": "virtual", "password_present": False},
     {"AccountMFAEnabled": 1, "AccountAccessKeysPresent": 0, "AccountPasswordPresent": 0,
      "MFADevices": 2, "MFADevicesInUse": 2}),
    ({"mfa": "hardware", "access_keys": [{"active": False, "created_days_ago": 9}]},
     {"AccountMFAEnabled": 1, "AccountAccessKeysPresent": 1, "AccountPasswordPresent": 1,
      "MFADevices": 2, "MFADevicesInUse": 2}),
])
def test_account_summary_reports_the_root_flags(
    emulator: Emulator, root: dict[str, Any], flags: dict[str, int],
) -> None:
    emulator.apply(scenario(root=root))

    summary = emulator.client("iam").get_account_summary()["SummaryMap"]

    assert {key: summary[key] for key in flags} == flags
    assert summary["Users"] == 2
    assert summary["UsersQuota"] == 5000


def test_root_virtual_mfa_is_listed_under_the_root_arn(emulator: Emulator) -> None:
    now = emulator.apply(scenario(root={"mfa": "virtual"}))
    iam = emulator.client("iam")

    for status in ("Assigned", "Any"):
        devices = iam.list_virtual_mfa_devices(AssignmentStatus=status)["VirtualMFADevices"]
        users = {device["User"]["Arn"]: device for device in devices}
        root = users[f"arn:aws:iam::{ACCOUNT}:root"]
        assert root["SerialNumber"] == f"arn:aws:iam::{ACCOUNT}:mfa/root-account-mfa-device"
        assert root["User"]["UserId"] == ACCOUNT
        assert root["EnableDate"].timestamp() == ago(now, 1000).timestamp()
        assert f"arn:aws:iam::{ACCOUNT}:user/alice" in users


def test_root_hardware_mfa_has_no_virtual_device(emulator: Emulator) -> None:
    emulator.apply(scenario(root={"mfa": "hardware"}))
    iam = emulator.client("iam")

    devices = iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")["VirtualMFADevices"]

    assert [d["User"]["Arn"] for d in devices] == [f"arn:aws:iam::{ACCOUNT}:user/alice"]
    assert iam.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 1
    assert report_rows(emulator)[0]["mfa_active"] == "true"


def test_user_mfa_devices_are_listed(emulator: Emulator) -> None:
    emulator.apply(scenario(users=[
        {"name": "alice", "mfa": "virtual"},
        {"name": "hana", "mfa": "hardware"},
        {"name": "ivan"},
    ]))
    iam = emulator.client("iam")

    devices = {name: iam.list_mfa_devices(UserName=name)["MFADevices"]
               for name in ("alice", "hana", "ivan")}

    assert devices["alice"][0]["SerialNumber"] == f"arn:aws:iam::{ACCOUNT}:mfa/alice"
    assert devices["hana"][0]["SerialNumber"].startswith("GAHT")
    assert devices["ivan"] == []
    assert [row["mfa_active"] for row in report_rows(emulator)[1:]] == ["true", "true", "false"]


def test_password_policy_absent_is_no_such_entity(emulator: Emulator) -> None:
    emulator.apply(scenario(password_policy=None))

    error = error_of(emulator.client("iam").get_account_password_policy)

    assert error["Error"]["Code"] == "NoSuchEntity"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_password_policy_is_answered_as_aws_does(emulator: Emulator) -> None:
    emulator.apply(scenario(password_policy={
        "minimum_length": 14, "require_symbols": True, "require_numbers": True,
        "require_uppercase": True, "require_lowercase": True, "allow_users_to_change": True,
        "max_age_days": 90, "reuse_prevention": 24, "hard_expiry": False,
    }))

    policy = emulator.client("iam").get_account_password_policy()["PasswordPolicy"]

    assert policy == {
        "MinimumPasswordLength": 14, "RequireSymbols": True, "RequireNumbers": True,
        "RequireUppercaseCharacters": True, "RequireLowercaseCharacters": True,
        "AllowUsersToChangePassword": True, "ExpirePasswords": True, "MaxPasswordAge": 90,
        "PasswordReusePrevention": 24, "HardExpiry": False,
    }


def test_password_policy_without_expiry_or_reuse_leaves_them_out(emulator: Emulator) -> None:
    emulator.apply(scenario(password_policy={"minimum_length": 8}))

    policy = emulator.client("iam").get_account_password_policy()["PasswordPolicy"]

    assert policy["ExpirePasswords"] is False
    assert "MaxPasswordAge" not in policy
    assert "PasswordReusePrevention" not in policy


def test_account_alias_is_listed(emulator: Emulator) -> None:
    emulator.apply(scenario())

    assert emulator.client("iam").list_account_aliases()["AccountAliases"] == ["acme-test"]


def test_no_alias_lists_none(emulator: Emulator) -> None:
    emulator.apply(scenario(account_alias=None))

    assert emulator.client("iam").list_account_aliases()["AccountAliases"] == []


def test_access_key_last_use_is_answered_by_the_api(emulator: Emulator) -> None:
    now = emulator.apply(scenario())
    iam = emulator.client("iam")

    keys = iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]
    used = iam.get_access_key_last_used(AccessKeyId=keys[0]["AccessKeyId"])
    unused = iam.get_access_key_last_used(AccessKeyId=keys[1]["AccessKeyId"])

    assert [(k["Status"], k["CreateDate"].timestamp()) for k in keys] == [
        ("Active", ago(now, 200).timestamp()), ("Inactive", ago(now, 300).timestamp()),
    ]
    assert used["AccessKeyLastUsed"]["LastUsedDate"].timestamp() == ago(now, 5).timestamp()
    assert used["AccessKeyLastUsed"]["ServiceName"] == "s3"
    assert used["AccessKeyLastUsed"]["Region"] == "eu-west-1"
    assert "LastUsedDate" not in unused["AccessKeyLastUsed"]


def test_login_profile_and_password_last_used_are_answered(emulator: Emulator) -> None:
    now = emulator.apply(scenario())
    iam = emulator.client("iam")

    alice = iam.get_user(UserName="alice")["User"]
    missing = error_of(iam.get_login_profile, UserName="bob")

    assert iam.get_login_profile(UserName="alice")["LoginProfile"]["UserName"] == "alice"
    assert alice["CreateDate"].timestamp() == ago(now, 400).timestamp()
    assert alice["PasswordLastUsed"].timestamp() == ago(now, 1).timestamp()
    assert missing["Error"]["Code"] == "NoSuchEntity"


def test_caller_identity_is_the_scenario_account(emulator: Emulator) -> None:
    emulator.apply(scenario())
    sts = emulator.client("sts")
    first = sts.get_caller_identity()["Account"]

    emulator.apply(scenario())
    same = sts.get_caller_identity()["Account"]
    emulator.apply(scenario(account_id="999988887777"))
    other = sts.get_caller_identity()["Account"]

    assert (first, same, other) == (ACCOUNT, ACCOUNT, "999988887777")
    assert report_rows(emulator)[0]["arn"] == "arn:aws:iam::999988887777:root"


# CloudTrail LookupEvents


def lookup_all(client: Any, **kwargs: Any) -> list[dict[str, Any]]:
    events, token = [], None
    while True:
        page = client.lookup_events(**kwargs, **({"NextToken": token} if token else {}))
        events.extend(page["Events"])
        token = page.get("NextToken")
        if not token:
            return events


def by_name(name: str) -> list[dict[str, str]]:
    return [{"AttributeKey": "EventName", "AttributeValue": name}]


def test_lookup_returns_a_root_password_change_as_aws_records_it(emulator: Emulator) -> None:
    now = emulator.apply(scenario(cloudtrail={"events": [
        {"event_name": "PasswordUpdated", "identity": "Root", "days_ago": 10},
    ]}))

    (event,) = emulator.client("cloudtrail").lookup_events(
        LookupAttributes=by_name("PasswordUpdated"))["Events"]

    record = json.loads(event["CloudTrailEvent"])
    assert event["EventName"] == "PasswordUpdated"
    assert event["EventSource"] == "signin.amazonaws.com"
    assert event["ReadOnly"] == "false"
    assert event["Username"] == "root"
    assert event["Resources"] == []
    assert event["EventTime"].timestamp() == ago(now, 10).timestamp()
    assert record == {
        "eventVersion": "1.08",
        "userIdentity": {"type": "Root", "principalId": ACCOUNT,
                         "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT},
        "eventTime": ago(now, 10).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "signin.amazonaws.com",
        "eventName": "PasswordUpdated",
        "awsRegion": "us-east-1",
        "sourceIPAddress": record["sourceIPAddress"],
        "userAgent": record["userAgent"],
        "requestParameters": None,
        "responseElements": {"PasswordUpdated": "Success"},
        "additionalEventData": record["additionalEventData"],
        "eventID": event["EventId"],
        "readOnly": False,
        "eventType": "AwsConsoleSignIn",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }


def test_lookup_describes_user_events_and_failures(emulator: Emulator) -> None:
    emulator.apply(scenario(cloudtrail={"events": [
        {"event_name": "PasswordUpdated", "identity": "IAMUser", "user": "alice",
         "days_ago": 5, "outcome": "Failure"},
        {"event_name": "PasswordRecoveryCompleted", "days_ago": 6},
    ]}))

    failed, recovered = emulator.client("cloudtrail").lookup_events()["Events"]

    failed_record = json.loads(failed["CloudTrailEvent"])
    assert failed["Username"] == "alice"
    assert failed_record["userIdentity"]["type"] == "IAMUser"
    assert failed_record["userIdentity"]["userName"] == "alice"
    assert failed_record["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert failed_record["responseElements"] == {"PasswordUpdated": "Failure"}
    assert failed_record["errorMessage"]
    recovered_record = json.loads(recovered["CloudTrailEvent"])
    assert recovered_record["responseElements"] == {"PasswordRecoveryCompleted": "Success"}


def test_lookup_filters_by_event_name(emulator: Emulator) -> None:
    emulator.apply(scenario(cloudtrail={"events": [
        {"event_name": "PasswordUpdated", "days_ago": 3},
        {"event_name": "ConsoleLogin", "days_ago": 2},
        {"event_name": "PasswordUpdated", "days_ago": 1},
    ]}))
    client = emulator.client("cloudtrail")

    updated = client.lookup_events(LookupAttributes=by_name("PasswordUpdated"))["Events"]
    logins = client.lookup_events(LookupAttributes=by_name("ConsoleLogin"))["Events"]

    assert [e["EventName"] for e in updated] == ["PasswordUpdated", "PasswordUpdated"]
    assert [e["EventName"] for e in logins] == ["ConsoleLogin"]


def test_lookup_honours_the_time_range_and_keeps_90_days(emulator: Emulator) -> None:
    now = emulator.apply(scenario(cloudtrail={"events": [
        {"days_ago": days} for days in (1, 10, 20, 30, 89, 95)
    ]}))
    client = emulator.client("cloudtrail")

    window = client.lookup_events(StartTime=now - timedelta(days=25),
                                  EndTime=now - timedelta(days=5))["Events"]
    everything = client.lookup_events(StartTime=now - timedelta(days=400))["Events"]

    assert [e["EventTime"].timestamp() for e in window] == [
        ago(now, 10).timestamp(), ago(now, 20).timestamp(),
    ]
    assert len(everything) == 5


def test_lookup_returns_events_only_in_their_region(emulator: Emulator) -> None:
    emulator.apply(scenario(cloudtrail={"events": [
        {"days_ago": 1, "region": "us-east-1"},
        {"days_ago": 2, "region": "eu-west-1"},
        {"days_ago": 3, "region": "eu-west-1"},
    ]}))

    east = emulator.client("cloudtrail", "us-east-1").lookup_events()["Events"]
    west = emulator.client("cloudtrail", "eu-west-1").lookup_events()["Events"]
    south = emulator.client("cloudtrail", "ap-south-1").lookup_events()["Events"]

    assert len(east) == 1
    assert [json.loads(e["CloudTrailEvent"])["awsRegion"] for e in west] == ["eu-west-1"] * 2
    assert south == []


def test_lookup_pages_newest_first_fifty_at_a_time(emulator: Emulator) -> None:
    emulator.apply(scenario(cloudtrail={"events": [
        {"days_ago": index * 0.5} for index in range(120)
    ]}))
    client = emulator.client("cloudtrail")
    emulator.control("POST", "/_harness/calls/reset")

    first = client.lookup_events(LookupAttributes=by_name("PasswordUpdated"))
    events = lookup_all(client, LookupAttributes=by_name("PasswordUpdated"))

    assert len(first["Events"]) == 50 and first["NextToken"]
    assert len(events) == 120
    assert len({e["EventId"] for e in events}) == 120
    times = [e["EventTime"] for e in events]
    assert times == sorted(times, reverse=True)
    assert emulator.calls() == {"cloudtrail:LookupEvents": 4}


def test_lookup_honours_max_results(emulator: Emulator) -> None:
    emulator.apply(scenario(cloudtrail={"events": [{"days_ago": d} for d in range(7)]}))
    client = emulator.client("cloudtrail")

    page = client.lookup_events(MaxResults=5)
    too_many = error_of(client.lookup_events, MaxResults=51)
    bad_token = error_of(client.lookup_events, NextToken="bm90LWEtdG9rZW4=")

    assert len(page["Events"]) == 5
    assert len(client.lookup_events(NextToken=page["NextToken"])["Events"]) == 2
    assert too_many["Error"]["Code"] == "InvalidMaxResultsException"
    assert bad_token["Error"]["Code"] == "InvalidNextTokenException"


def test_malformed_event_carries_invalid_json(emulator: Emulator) -> None:
    emulator.apply(scenario(cloudtrail={"events": [{"days_ago": 1, "malformed": True}]}))

    (event,) = emulator.client("cloudtrail").lookup_events()["Events"]

    with pytest.raises(json.JSONDecodeError):
        json.loads(event["CloudTrailEvent"])


# Faults


def test_iam_fault_fails_the_first_calls_then_lets_them_through(emulator: Emulator) -> None:
    emulator.apply(scenario(faults=[
        {"service": "iam", "operation": "GetAccountSummary", "code": "AccessDenied",
         "status": 403, "message": "not allowed", "times": 2},
    ]))
    iam = emulator.client("iam")

    errors = [error_of(iam.get_account_summary) for _ in range(2)]
    summary = iam.get_account_summary()

    for error in errors:
        assert error["Error"] == {"Type": "Sender", "Code": "AccessDenied",
                                  "Message": "not allowed"}
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert summary["SummaryMap"]["Users"] == 2
    assert iam.list_account_aliases()["AccountAliases"] == ["acme-test"]
    assert emulator.calls()["iam:GetAccountSummary"] == 3


def test_fault_without_times_always_fails(emulator: Emulator) -> None:
    emulator.apply(scenario(faults=[
        {"service": "iam", "operation": "GetCredentialReport", "code": "ServiceFailure",
         "status": 500, "times": None},
    ]))
    iam = emulator.client("iam")

    errors = [error_of(iam.get_credential_report) for _ in range(3)]

    assert [e["Error"]["Code"] for e in errors] == ["ServiceFailure"] * 3
    assert errors[0]["Error"]["Type"] == "Receiver"
    assert errors[0]["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_cloudtrail_fault_is_a_json_error(emulator: Emulator) -> None:
    emulator.apply(scenario(faults=[
        {"service": "cloudtrail", "operation": "LookupEvents",
         "code": "AccessDeniedException", "status": 400, "times": 1},
    ]))
    client = emulator.client("cloudtrail")

    error = error_of(client.lookup_events)

    assert error["Error"]["Code"] == "AccessDeniedException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "AccessDeniedException"
    assert client.lookup_events()["Events"] == []


def test_delay_stalls_only_the_matching_call_and_only_as_often_as_asked(
        emulator: Emulator) -> None:
    emulator.apply(scenario(delays=[
        {"service": "iam", "operation": "GetAccountSummary", "seconds": 1.5, "times": 1},
    ]))
    iam = emulator.client("iam")
    results: dict[str, float] = {}

    def timed(name: str, call: Any) -> None:
        started = time.monotonic()
        call()
        results[name] = time.monotonic() - started

    slow = threading.Thread(target=timed, args=("summary", iam.get_account_summary))
    slow.start()
    time.sleep(0.2)
    timed("aliases", iam.list_account_aliases)  # not held up by the stalled call
    slow.join(timeout=10)
    timed("summary again", iam.get_account_summary)

    assert results["summary"] >= 1.5
    assert results["aliases"] < 1.0
    assert results["summary again"] < 1.0


def test_fault_can_target_one_region(emulator: Emulator) -> None:
    emulator.apply(scenario(faults=[
        {"service": "cloudtrail", "region": "eu-west-1", "code": "ThrottlingException"},
    ]))

    error = error_of(emulator.client("cloudtrail", "eu-west-1").lookup_events)

    assert error["Error"]["Code"] == "ThrottlingException"
    assert emulator.client("cloudtrail", "us-east-1").lookup_events()["Events"] == []


def test_sts_fault_is_a_query_error(emulator: Emulator) -> None:
    emulator.apply(scenario(faults=[
        {"service": "sts", "operation": "GetCallerIdentity", "code": "ExpiredToken",
         "status": 400},
    ]))

    error = error_of(emulator.client("sts").get_caller_identity)

    assert error["Error"]["Code"] == "ExpiredToken"


# Control API


def test_calls_are_counted_per_operation_and_can_be_reset(emulator: Emulator) -> None:
    emulator.apply(scenario())
    iam = emulator.client("iam")

    iam.get_account_summary()
    iam.get_account_summary()
    iam.list_account_aliases()
    emulator.client("sts").get_caller_identity()
    emulator.client("cloudtrail").lookup_events()
    counted = emulator.calls()
    emulator.control("POST", "/_harness/calls/reset")

    assert counted == {
        "iam:GetAccountSummary": 2, "iam:ListAccountAliases": 1,
        "sts:GetCallerIdentity": 1, "cloudtrail:LookupEvents": 1,
    }
    assert emulator.calls() == {}


def test_putting_a_scenario_replaces_all_state(emulator: Emulator) -> None:
    emulator.apply(scenario())
    iam = emulator.client("iam")
    iam.create_user(UserName="temporary")
    iam.get_account_summary()

    emulator.apply(scenario(users=[{"name": "zoe"}]))

    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["zoe"]
    assert emulator.calls() == {"iam:ListUsers": 1}


def test_an_invalid_scenario_is_refused_and_changes_nothing(emulator: Emulator) -> None:
    emulator.apply(scenario())

    status, answer = emulator.control("PUT", "/_harness/scenario",
                                      scenario(root={"mfa": "biometric"}))

    assert status == 400
    assert answer["error"] == "root.mfa: expected one of ['none', 'virtual', 'hardware']"
    assert len(emulator.client("iam").list_users()["Users"]) == 2


def test_unknown_scenario_keys_are_refused(emulator: Emulator) -> None:
    status, answer = emulator.control("PUT", "/_harness/scenario",
                                      scenario(users=[{"name": "x", "pasword": {}}]))

    assert status == 400
    assert answer["error"] == "users[0]: unknown key(s) ['pasword']"


def test_scenario_endpoint_tells_when_it_was_applied(emulator: Emulator) -> None:
    now = emulator.apply(scenario())

    status, answer = emulator.control("GET", "/_harness/scenario")

    assert status == 200
    assert answer == {"account_id": ACCOUNT, "applied_at": now.isoformat(),
                      "applied_at_unix": int(now.timestamp())}


def test_unknown_control_path_is_not_found(emulator: Emulator) -> None:
    status, _ = emulator.control("GET", "/_harness/nothing")

    assert status == 404


# Scale


def test_five_thousand_users_report_quickly(emulator: Emulator) -> None:
    started = time.monotonic()
    now = emulator.apply(scenario(users=[], generate_users={
        "count": 5000, "prefix": "user",
        "password": {"changed_days_ago": 10, "last_used_days_ago": 1},
        "mfa": "virtual",
        "access_keys": [{"active": True, "created_days_ago": 30, "last_used_days_ago": 1}],
    }))
    applied = time.monotonic()
    rows = report_rows(emulator)
    reported = time.monotonic()

    assert len(rows) == 5001
    assert rows[1]["user"] == "user0001" and rows[-1]["user"] == "user5000"
    assert rows[-1]["access_key_1_last_rotated"] == aws_time(ago(now, 30))
    assert emulator.client("iam").get_account_summary()["SummaryMap"]["Users"] == 5000
    assert applied - started < 10
    assert reported - applied < 2

