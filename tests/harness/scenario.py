"""The scenario: what the emulated AWS account looks like, checked and made absolute.

A scenario is a YAML or JSON document (see README.md for every key). Its dates are
written relative to the moment it is applied ("days ago"), so a scenario file never goes
stale. `parse_scenario` validates the document, refusing unknown keys so that a typo
cannot silently change a test, and turns every relative date into a UTC datetime with
whole seconds, as AWS reports them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import yaml

MFA_KINDS = ("none", "virtual", "hardware")
IDENTITY_TYPES = ("Root", "IAMUser")
OUTCOMES = ("Success", "Failure")
MAX_ACCESS_KEYS = 2

_MISSING = object()


class ScenarioError(ValueError):
    """The scenario document is invalid; the message names the offending key."""


@dataclass(frozen=True)
class AccessKey:
    """One access key of a user or of the root user."""

    active: bool
    created: datetime
    last_used: datetime | None
    service: str
    region: str


@dataclass(frozen=True)
class Password:
    """A user's console password."""

    changed: datetime
    last_used: datetime | None


@dataclass(frozen=True)
class User:
    """One IAM user."""

    name: str
    created: datetime
    password: Password | None
    mfa: str
    access_keys: tuple[AccessKey, ...]


@dataclass(frozen=True)
class Root:
    """The root user: what GetAccountSummary, the report and ListVirtualMFADevices say."""

    password_present: bool
    password_last_used: datetime | None
    mfa: str
    access_keys: tuple[AccessKey, ...]


@dataclass(frozen=True)
class PasswordPolicy:
    """The account password policy (None in `Scenario` when there is none)."""

    minimum_length: int
    require_symbols: bool
    require_numbers: bool
    require_uppercase: bool
    require_lowercase: bool
    allow_users_to_change: bool
    max_age_days: int | None
    reuse_prevention: int | None
    hard_expiry: bool


@dataclass(frozen=True)
class SignInEvent:
    """A console sign-in event that CloudTrail LookupEvents returns."""

    event_name: str
    identity: str
    user: str | None
    time: datetime
    outcome: str
    region: str
    malformed: bool


@dataclass(frozen=True)
class Fault:
    """An error to answer instead of the real response, for matching calls."""

    service: str
    operation: str | None
    region: str | None
    code: str
    status: int
    message: str
    times: int | None


@dataclass(frozen=True)
class Delay:
    """A pause before answering matching calls (answered normally afterwards)."""

    service: str
    operation: str | None
    region: str | None
    seconds: float
    times: int | None


@dataclass(frozen=True)
class Scenario:
    """A whole scenario, with every date resolved against `now`."""

    now: datetime
    account_id: str
    account_alias: str | None
    account_created: datetime
    report_generated: datetime
    report_polls_before_complete: int | None
    report_extra_lines: tuple[str, ...]
    report_content: str | None
    root: Root
    password_policy: PasswordPolicy | None
    users: tuple[User, ...]
    events: tuple[SignInEvent, ...]
    faults: tuple[Fault, ...]
    delays: tuple[Delay, ...]


def load_scenario_text(text: str | bytes, now: datetime) -> Scenario:
    """Parses YAML or JSON text (JSON is a subset of YAML) into a scenario."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ScenarioError(f"not valid YAML or JSON: {error}") from error
    return parse_scenario(document, now)


def parse_scenario(document: Any, now: datetime) -> Scenario:
    """Validates a scenario document and resolves its dates against `now`."""
    now = now.replace(microsecond=0)
    top = _Mapping(document, "", {
        "account_id", "account_alias", "account_created_days_ago",
        "report_generated_hours_ago", "report_polls_before_complete",
        "report_extra_lines", "report_content", "root",
        "password_policy", "users", "generate_users", "cloudtrail", "faults", "delays",
    })
    users = _parse_users(top, now)
    return Scenario(
        now=now,
        account_id=_account_id(top.get("account_id"), "account_id"),
        account_alias=top.string("account_alias", None),
        account_created=_ago(now, days=top.number("account_created_days_ago", 365)),
        report_generated=_ago(now, hours=top.number("report_generated_hours_ago", 1)),
        report_polls_before_complete=top.integer("report_polls_before_complete", None, 0),
        report_extra_lines=_strings(top.get("report_extra_lines", []), "report_extra_lines"),
        report_content=top.string("report_content", None),
        root=_parse_root(top.get("root", {}), now),
        password_policy=_parse_policy(top.get("password_policy", None)),
        users=users,
        events=_parse_events(top.get("cloudtrail", {}), now),
        faults=_parse_faults(top.get("faults", [])),
        delays=_parse_delays(top.get("delays", [])),
    )


def _strings(value: Any, path: str) -> tuple[str, ...]:
    """A list of strings, such as raw CSV lines."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ScenarioError(f"{path}: expected a list of strings")
    return tuple(value)


class _Mapping:
    """Reads one mapping of the document; every error names the key's path."""

    def __init__(self, value: Any, path: str, keys: set[str]):
        if not isinstance(value, dict):
            raise ScenarioError(f"{path or 'scenario'}: expected a mapping")
        unknown = sorted(set(value) - keys)
        if unknown:
            raise ScenarioError(f"{path or 'scenario'}: unknown key(s) {unknown}")
        self._value = value
        self._path = path

    def path(self, key: str) -> str:
        """The dotted path of `key`, for error messages."""
        return f"{self._path}.{key}" if self._path else key

    def get(self, key: str, default: Any = _MISSING) -> Any:
        """The raw value; a missing or null key gives `default`, or fails without one."""
        value = self._value.get(key)
        if value is not None:
            return value
        if default is _MISSING:
            raise ScenarioError(f"{self.path(key)}: required")
        return default

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        """A true/false value."""
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise ScenarioError(f"{self.path(key)}: expected true or false")
        return value

    def number(self, key: str, default: Any = _MISSING) -> float:
        """A number of at least zero (days and hours ago)."""
        return self._non_negative(key, self.get(key, default))

    def _non_negative(self, key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ScenarioError(f"{self.path(key)}: expected a number >= 0")
        return value

    def integer(self, key: str, default: Any, low: int, high: int | None = None) -> Any:
        """An integer within [low, high]; `default` (possibly None) when absent."""
        value = self.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high
        ):
            bounds = f"between {low} and {high}" if high is not None else f">= {low}"
            raise ScenarioError(f"{self.path(key)}: expected an integer {bounds}")
        return value

    def string(self, key: str, default: Any = _MISSING) -> Any:
        """A non-empty string; `default` (possibly None) when absent."""
        value = self.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise ScenarioError(f"{self.path(key)}: expected a non-empty string")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        """One of `choices`."""
        value = self.get(key, default)
        if value not in choices:
            raise ScenarioError(f"{self.path(key)}: expected one of {list(choices)}")
        return value

    def ago(self, key: str, now: datetime, default: Any = _MISSING) -> Any:
        """A `..._days_ago` key as a datetime; None when absent and `default` is None."""
        value = self.get(key, default)
        if value is None:
            return None
        return _ago(now, days=self._non_negative(key, value))

    def items(self, key: str) -> list[Any]:
        """A list value (absent means empty)."""
        value = self.get(key, [])
        if not isinstance(value, list):
            raise ScenarioError(f"{self.path(key)}: expected a list")
        return value


def _ago(now: datetime, days: float = 0, hours: float = 0) -> datetime:
    """`now` minus a duration, to the whole second as AWS writes times."""
    return (now - timedelta(days=days, hours=hours)).replace(microsecond=0)


def _account_id(value: Any, path: str) -> str:
    # YAML reads an unquoted account id as an integer; accept it as long as it has
    # twelve digits (a leading zero would have been lost, so it must be quoted).
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not re.fullmatch(r"\d{12}", text):
        raise ScenarioError(f"{path}: expected 12 digits (quote it in YAML)")
    return text


def _parse_access_keys(owner: _Mapping, now: datetime) -> tuple[AccessKey, ...]:
    entries = owner.items("access_keys")
    if len(entries) > MAX_ACCESS_KEYS:
        raise ScenarioError(f"{owner.path('access_keys')}: at most {MAX_ACCESS_KEYS} keys")
    keys = []
    for index, entry in enumerate(entries):
        key = _Mapping(entry, f"{owner.path('access_keys')}[{index}]", {
            "active", "created_days_ago", "last_used_days_ago", "service", "region",
        })
        keys.append(AccessKey(
            active=key.boolean("active", True),
            created=key.ago("created_days_ago", now),
            last_used=key.ago("last_used_days_ago", now, None),
            service=key.string("service", "s3"),
            region=key.string("region", "us-east-1"),
        ))
    return tuple(keys)


def _parse_root(value: Any, now: datetime) -> Root:
    root = _Mapping(value, "root", {
        "password_present", "password_last_used_days_ago", "mfa", "access_keys",
    })
    return Root(
        password_present=root.boolean("password_present", True),
        password_last_used=root.ago("password_last_used_days_ago", now, None),
        mfa=root.choice("mfa", MFA_KINDS, "none"),
        access_keys=_parse_access_keys(root, now),
    )


def _parse_policy(value: Any) -> PasswordPolicy | None:
    if value is None:
        return None
    policy = _Mapping(value, "password_policy", {
        "minimum_length", "require_symbols", "require_numbers", "require_uppercase",
        "require_lowercase", "allow_users_to_change", "max_age_days", "reuse_prevention",
        "hard_expiry",
    })
    # The ranges are AWS's own limits for UpdateAccountPasswordPolicy.
    return PasswordPolicy(
        minimum_length=policy.integer("minimum_length", 8, 6, 128),
        require_symbols=policy.boolean("require_symbols", False),
        require_numbers=policy.boolean("require_numbers", False),
        require_uppercase=policy.boolean("require_uppercase", False),
        require_lowercase=policy.boolean("require_lowercase", False),
        allow_users_to_change=policy.boolean("allow_users_to_change", True),
        max_age_days=policy.integer("max_age_days", None, 1, 1095),
        reuse_prevention=policy.integer("reuse_prevention", None, 1, 24),
        hard_expiry=policy.boolean("hard_expiry", False),
    )


_USER_KEYS = {"created_days_ago", "password", "mfa", "access_keys"}


def _parse_user(value: Any, path: str, name: str | None, now: datetime) -> User:
    """One user; `name` None reads it from the document, else the document is a template."""
    user = _Mapping(value, path, _USER_KEYS | ({"name"} if name is None else set()))
    password = None
    if user.get("password", None) is not None:
        entry = _Mapping(user.get("password"), user.path("password"), {
            "changed_days_ago", "last_used_days_ago",
        })
        password = Password(
            changed=entry.ago("changed_days_ago", now),
            last_used=entry.ago("last_used_days_ago", now, None),
        )
    return User(
        name=name if name is not None else user.string("name"),
        created=user.ago("created_days_ago", now, 365),
        password=password,
        mfa=user.choice("mfa", MFA_KINDS, "none"),
        access_keys=_parse_access_keys(user, now),
    )


def _parse_users(top: _Mapping, now: datetime) -> tuple[User, ...]:
    users = [
        _parse_user(entry, f"users[{index}]", None, now)
        for index, entry in enumerate(top.items("users"))
    ]
    if top.get("generate_users", None) is not None:
        users.extend(_generate_users(top.get("generate_users"), now))
    duplicates = sorted(name for name, n in Counter(u.name for u in users).items() if n > 1)
    if duplicates:
        raise ScenarioError(f"users: duplicate names {duplicates}")
    return tuple(users)


def _generate_users(value: Any, now: datetime) -> list[User]:
    """Expands `generate_users`: `count` copies of a user template named prefix0001..."""
    spec = _Mapping(value, "generate_users", _USER_KEYS | {"count", "prefix"})
    count = spec.integer("count", _MISSING, 0, 100_000)
    prefix = spec.string("prefix", "user")
    template_fields = {k: v for k, v in value.items() if k not in ("count", "prefix")}
    template = _parse_user(template_fields, "generate_users", "", now)
    width = len(str(count))
    return [replace(template, name=f"{prefix}{i:0{width}d}") for i in range(1, count + 1)]


def _parse_events(value: Any, now: datetime) -> tuple[SignInEvent, ...]:
    # A user event may name a user the scenario does not create: CloudTrail keeps the
    # events of deleted users.
    cloudtrail = _Mapping(value, "cloudtrail", {"events"})
    events = []
    for index, entry in enumerate(cloudtrail.items("events")):
        event = _Mapping(entry, f"cloudtrail.events[{index}]", {
            "event_name", "identity", "user", "days_ago", "outcome", "region", "malformed",
        })
        identity = event.choice("identity", IDENTITY_TYPES, "Root")
        user = event.string("user", None)
        if identity == "IAMUser" and user is None:
            raise ScenarioError(f"{event.path('user')}: required when identity is IAMUser")
        if identity == "Root" and user is not None:
            raise ScenarioError(f"{event.path('user')}: only for identity IAMUser")
        events.append(SignInEvent(
            event_name=event.string("event_name", "PasswordUpdated"),
            identity=identity,
            user=user,
            time=event.ago("days_ago", now),
            outcome=event.choice("outcome", OUTCOMES, "Success"),
            region=event.string("region", "us-east-1"),
            malformed=event.boolean("malformed", False),
        ))
    return tuple(events)


def _parse_faults(value: Any) -> tuple[Fault, ...]:
    if not isinstance(value, list):
        raise ScenarioError("faults: expected a list")
    faults = []
    for index, entry in enumerate(value):
        fault = _Mapping(entry, f"faults[{index}]", {
            "service", "operation", "region", "code", "status", "message", "times",
        })
        code = fault.string("code")
        faults.append(Fault(
            service=fault.string("service"),
            operation=fault.string("operation", None),
            region=fault.string("region", None),
            code=code,
            status=fault.integer("status", 400, 400, 599),
            message=fault.string("message", f"{code} injected by the scenario"),
            times=fault.integer("times", None, 0),
        ))
    return tuple(faults)


def _parse_delays(value: Any) -> tuple[Delay, ...]:
    if not isinstance(value, list):
        raise ScenarioError("delays: expected a list")
    delays = []
    for index, entry in enumerate(value):
        delay = _Mapping(entry, f"delays[{index}]", {
            "service", "operation", "region", "seconds", "times",
        })
        seconds = delay.number("seconds")
        if not 0 < seconds <= 60:
            raise ScenarioError(f"delays[{index}].seconds: expected more than 0 and at most 60")
        delays.append(Delay(
            service=delay.string("service"),
            operation=delay.string("operation", None),
            region=delay.string("region", None),
            seconds=seconds,
            times=delay.integer("times", None, 0),
        ))
    return tuple(delays)
