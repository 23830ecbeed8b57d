"""Puts a scenario into moto's in-memory IAM, dated in the past.

Moto's API creates everything "now", so users, login profiles, access keys, MFA devices,
the password policy and the alias are created through moto's backend objects and then
given the scenario's dates. The root user, which moto does not know, gets a virtual MFA
device assigned to the root ARN where moto's ListVirtualMFADevices will list it, and an
account summary that adds its flags to moto's.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from datetime import datetime

from moto.iam.models import AccessKeyLastUsed, IAMBackend, iam_backends
from moto.moto_api._internal.models import moto_api_backend

from scenario import PasswordPolicy, Root, Scenario, User

# IAM is global: moto keeps it under the partition name rather than a region.
IAM_PARTITION = "aws"
IAM_REGION = "us-east-1"
ROOT_MFA_DEVICE_NAME = "root-account-mfa-device"
# Moto stores a password for a login profile; its value never matters here.
PLACEHOLDER_PASSWORD = "Scenario-Password-1"


@dataclass(frozen=True)
class RootIdentity:
    """The `User` element AWS puts in a virtual MFA device assigned to the root user."""

    user_id: str
    arn: str
    create_date: datetime


def root_arn(account_id: str) -> str:
    """The root user's ARN."""
    return f"arn:aws:iam::{account_id}:root"


def install(scenario: Scenario) -> IAMBackend:
    """Forgets all of moto's state and builds the scenario's account in it."""
    moto_api_backend.reset()
    # Moto picks the account of each request from this variable before anything else
    # (BaseResponse.get_current_account), so every call, whatever key signed it, lands
    # in the scenario's account, and STS GetCallerIdentity answers its id.
    os.environ["MOTO_ACCOUNT_ID"] = scenario.account_id
    backend = iam_backends[scenario.account_id][IAM_PARTITION]

    for user in scenario.users:
        _create_user(backend, user)
    if scenario.root.mfa == "virtual":
        _assign_root_virtual_mfa(backend, scenario)
    if scenario.password_policy is not None:
        _set_password_policy(backend, scenario.password_policy)
    if scenario.account_alias is not None:
        backend.create_account_alias(scenario.account_alias)
    return backend


def _create_user(backend: IAMBackend, spec: User) -> None:
    user = backend.create_user(region_name=IAM_REGION, user_name=spec.name)
    user.create_date = spec.created
    if spec.password is not None:
        backend.create_login_profile(spec.name, PLACEHOLDER_PASSWORD)
        user.password_last_used = spec.password.last_used
    for key_spec in spec.access_keys:
        key = backend.create_access_key(
            spec.name, status="Active" if key_spec.active else "Inactive"
        )
        key.create_date = key_spec.created
        if key_spec.last_used is not None:
            key.last_used = AccessKeyLastUsed(
                timestamp=key_spec.last_used, service=key_spec.service, region=key_spec.region
            )
    if spec.mfa == "virtual":
        device = backend.create_virtual_mfa_device(spec.name, "/")
        _enable_user_mfa(backend, spec, device.serial_number)
        device.enable_date = spec.created
    elif spec.mfa == "hardware":
        # A hardware token is known by its serial number only; no virtual device exists.
        _enable_user_mfa(backend, spec, f"GAHT{zlib.crc32(spec.name.encode()) % 10**8:08d}")


def _enable_user_mfa(backend: IAMBackend, spec: User, serial_number: str) -> None:
    backend.enable_mfa_device(spec.name, serial_number, "123456", "654321")
    backend.users[spec.name].mfa_devices[serial_number].enable_date = spec.created


def _assign_root_virtual_mfa(backend: IAMBackend, scenario: Scenario) -> None:
    device = backend.create_virtual_mfa_device(ROOT_MFA_DEVICE_NAME, "/")
    device.enable_date = scenario.account_created
    # Moto's serializer reads the device's `user` attribute for the `User` element.
    device.user = RootIdentity(
        user_id=scenario.account_id,
        arn=root_arn(scenario.account_id),
        create_date=scenario.account_created,
    )


def _set_password_policy(backend: IAMBackend, policy: PasswordPolicy) -> None:
    # None (never expire, reuse allowed) makes moto leave MaxPasswordAge and
    # PasswordReusePrevention out of its answer, as AWS does.
    backend.update_account_password_policy(
        allow_change_password=policy.allow_users_to_change,
        hard_expiry=policy.hard_expiry,
        max_password_age=policy.max_age_days,
        minimum_password_length=policy.minimum_length,
        password_reuse_prevention=policy.reuse_prevention,
        require_lowercase_characters=policy.require_lowercase,
        require_numbers=policy.require_numbers,
        require_symbols=policy.require_symbols,
        require_uppercase_characters=policy.require_uppercase,
    )


def account_summary(backend: IAMBackend, root: Root) -> dict[str, int]:
    """Moto's GetAccountSummary map, completed with the root user's facts.

    Moto always answers 0 for the root flags, has no AccountPasswordPresent, and its
    MFA counts know only virtual devices and IAM users.
    """
    summary = dict(backend.get_account_summary().summary_map)
    virtual = backend.virtual_mfa_devices
    in_use = 0
    hardware = int(root.mfa == "hardware")
    for user in backend.users.values():
        in_use += len(user.mfa_devices)
        hardware += sum(1 for serial in user.mfa_devices if serial not in virtual)
    summary.update(
        AccountMFAEnabled=int(root.mfa != "none"),
        AccountAccessKeysPresent=int(bool(root.access_keys)),
        AccountPasswordPresent=int(root.password_present),
        MFADevices=len(virtual) + hardware,
        MFADevicesInUse=in_use + int(root.mfa != "none"),
    )
    return summary
