"""The IAM credential report as AWS writes it, and the progress of its generation.

Moto's own report has no root row, dates every password change at the user's creation,
writes `not_supported` where AWS writes `N/A`, and has no "in progress" state. The CSV
here is built from moto's users (so calls that change them are reflected) and from the
scenario, for what moto does not keep: the root user and password change dates.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from moto.iam.models import AccessKey as MotoAccessKey
from moto.iam.models import User as MotoUser

from scenario import AccessKey, Scenario

# AWS's column order today (IAM User Guide, "Getting credential reports").
COLUMNS = (
    "user", "arn", "user_creation_time", "password_enabled", "password_last_used",
    "password_last_changed", "password_next_rotation", "mfa_active",
    "access_key_1_active", "access_key_1_last_rotated", "access_key_1_last_used_date",
    "access_key_1_last_used_region", "access_key_1_last_used_service",
    "access_key_2_active", "access_key_2_last_rotated", "access_key_2_last_used_date",
    "access_key_2_last_used_region", "access_key_2_last_used_service",
    "cert_1_active", "cert_1_last_rotated", "cert_2_active", "cert_2_last_rotated",
)
ROOT_USER = "<root_account>"
NOT_APPLICABLE = "N/A"
NO_INFORMATION = "no_information"
NOT_SUPPORTED = "not_supported"
# Scenarios have no signing certificates: both certificate column pairs stay empty.
NO_CERTIFICATES = ("false", NOT_APPLICABLE, "false", NOT_APPLICABLE)


def report_time(value: datetime) -> str:
    """A timestamp as the report writes it: `2026-01-12T08:21:07+00:00`."""
    return value.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _date_or(value: datetime | None, missing: str) -> str:
    return report_time(value) if value is not None else missing


def _key_cells(active: bool, rotated: datetime,
               last_use: tuple[datetime, str, str] | None) -> list[str]:
    """The five columns of one key; `last_use` is (when, region, service)."""
    if last_use is None:
        used = [NOT_APPLICABLE, NOT_APPLICABLE, NOT_APPLICABLE]
    else:
        when, region, service = last_use
        used = [report_time(when), region, service]
    return [_flag(active), report_time(rotated), *used]


def _key_columns(keys: list[list[str]]) -> list[str]:
    """The ten access key columns from the cells of up to two keys."""
    absent = ["false", NOT_APPLICABLE, NOT_APPLICABLE, NOT_APPLICABLE, NOT_APPLICABLE]
    padded = keys + [absent] * (2 - len(keys))
    return padded[0] + padded[1]


def _scenario_key(key: AccessKey) -> list[str]:
    last_use = None if key.last_used is None else (key.last_used, key.region, key.service)
    return _key_cells(key.active, key.created, last_use)


def _moto_key(key: MotoAccessKey) -> list[str]:
    used = key.last_used
    last_use = None if used is None else (used.timestamp, used.region, used.service)
    return _key_cells(key.status == "Active", key.create_date, last_use)


def root_row(scenario: Scenario) -> list[str]:
    """The `<root_account>` row: AWS never tells the root password's change date."""
    root = scenario.root
    return [
        ROOT_USER,
        f"arn:aws:iam::{scenario.account_id}:root",
        report_time(scenario.account_created),
        NOT_SUPPORTED,
        _date_or(root.password_last_used, NO_INFORMATION),
        NOT_SUPPORTED,
        NOT_SUPPORTED,
        _flag(root.mfa != "none"),
        *_key_columns([_scenario_key(key) for key in root.access_keys]),
        *NO_CERTIFICATES,
    ]


def user_row(user: MotoUser, password_changed: datetime | None,
             max_password_age_days: int | None) -> list[str]:
    """One IAM user's row; `password_changed` falls back to the user's creation."""
    if user.password:
        changed = password_changed or user.create_date
        password = [
            "true",
            _date_or(user.password_last_used, NO_INFORMATION),
            report_time(changed),
            _next_rotation(changed, max_password_age_days),
        ]
    else:
        password = ["false", NOT_APPLICABLE, NOT_APPLICABLE, NOT_APPLICABLE]
    return [
        user.name,
        user.arn,
        report_time(user.create_date),
        *password,
        _flag(bool(user.mfa_devices)),
        *_key_columns([_moto_key(key) for key in user.access_keys]),
        *NO_CERTIFICATES,
    ]


def _next_rotation(changed: datetime, max_age_days: int | None) -> str:
    if max_age_days is None:
        return NOT_APPLICABLE
    return report_time(changed + timedelta(days=max_age_days))


def build_report(scenario: Scenario, users: Iterable[MotoUser],
                 password_changed: Mapping[str, datetime],
                 max_password_age_days: int | None) -> bytes:
    """The whole CSV: header, root row, then one row per user (linear in the users)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerow(root_row(scenario))
    for user in users:
        writer.writerow(user_row(user, password_changed.get(user.name), max_password_age_days))
    return out.getvalue().encode()


class ReportProgress:
    """What GenerateCredentialReport answers, call after call.

    With `polls_before_complete` = N the first call answers STARTED, the next N answer
    INPROGRESS, and every later one COMPLETE; the report can be fetched only once
    COMPLETE was answered. Without it a report already exists, as in an account that
    generated one recently: every call answers COMPLETE.
    """

    def __init__(self, polls_before_complete: int | None):
        if polls_before_complete is None:
            self._answers: deque[str] = deque()
        else:
            self._answers = deque(["STARTED"] + ["INPROGRESS"] * polls_before_complete)
        self._ready = polls_before_complete is None

    def generate(self) -> str:
        """The state to answer to one GenerateCredentialReport call."""
        if self._answers:
            return self._answers.popleft()
        self._ready = True
        return "COMPLETE"

    @property
    def ready(self) -> bool:
        """Whether GetCredentialReport can return the report."""
        return self._ready
