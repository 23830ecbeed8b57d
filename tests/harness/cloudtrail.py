"""CloudTrail LookupEvents over the scenario's console sign-in events (moto has none).

Behaves as the real call does in what a client can observe: events only in their own
region, newest first, at most 50 a page with an opaque NextToken, only the last 90 days,
one lookup attribute at most, and CloudTrail's error codes for invalid input. Each event
carries the whole record as a JSON string in `CloudTrailEvent`, shaped like AWS's
documented console sign-in records.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from scenario import SignInEvent

RETENTION = timedelta(days=90)
MAX_RESULTS = 50
SIGNIN_SOURCE = "signin.amazonaws.com"
# Documentation addresses (RFC 5737) and a browser agent, as console records carry.
SOURCE_IP = "192.0.2.44"
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")


class LookupFailure(Exception):
    """An invalid LookupEvents request, with CloudTrail's error code for it."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class StoredEvent:
    """One event as LookupEvents lists it."""

    event_id: str
    event_name: str
    username: str
    time: datetime
    region: str
    record: str

    def summary(self) -> dict[str, Any]:
        """The `Events[]` element of the LookupEvents answer."""
        return {
            "EventId": self.event_id,
            "EventName": self.event_name,
            "ReadOnly": "false",
            "EventTime": int(self.time.timestamp()),
            "EventSource": SIGNIN_SOURCE,
            "Username": self.username,
            "Resources": [],
            "CloudTrailEvent": self.record,
        }


# What each LookupAttributes key compares with. Console sign-in events name no resource
# and no access key, so a lookup by those finds none of them.
_ATTRIBUTES: dict[str, Callable[[StoredEvent], str | None]] = {
    "EventName": lambda event: event.event_name,
    "EventId": lambda event: event.event_id,
    "Username": lambda event: event.username,
    "EventSource": lambda event: SIGNIN_SOURCE,
    "ReadOnly": lambda event: "false",
    "ResourceType": lambda event: None,
    "ResourceName": lambda event: None,
    "AccessKeyId": lambda event: None,
}


def _derived_user_id(name: str) -> str:
    """A stable AWS-like user id for a user the account no longer has."""
    return "AIDA" + uuid.uuid5(uuid.NAMESPACE_OID, name).hex[:17].upper()


def _identity(event: SignInEvent, account_id: str, user_ids: dict[str, str]) -> dict[str, Any]:
    if event.identity == "Root":
        return {
            "type": "Root",
            "principalId": account_id,
            "arn": f"arn:aws:iam::{account_id}:root",
            "accountId": account_id,
        }
    return {
        "type": "IAMUser",
        "principalId": user_ids.get(event.user) or _derived_user_id(event.user),
        "arn": f"arn:aws:iam::{account_id}:user/{event.user}",
        "accountId": account_id,
        "userName": event.user,
    }


def event_record(event: SignInEvent, event_id: str, account_id: str,
                 user_ids: dict[str, str]) -> str:
    """The `CloudTrailEvent` JSON string of one event (deliberately cut if malformed)."""
    record: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": _identity(event, account_id, user_ids),
        "eventTime": event.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": SIGNIN_SOURCE,
        "eventName": event.event_name,
        "awsRegion": event.region,
        "sourceIPAddress": SOURCE_IP,
        "userAgent": USER_AGENT,
        "requestParameters": None,
        # Sign-in records report their outcome under their own event name.
        "responseElements": {event.event_name: event.outcome},
    }
    if event.outcome == "Failure":
        record["errorMessage"] = "Failed authentication"
    record.update({
        "additionalEventData": {"MFAUsed": "No"},
        "eventID": event_id,
        "readOnly": False,
        "eventType": "AwsConsoleSignIn",
        "managementEvent": True,
        "recipientAccountId": account_id,
        "eventCategory": "Management",
    })
    text = json.dumps(record)
    return text[: len(text) // 2] if event.malformed else text


class EventStore:
    """The events of one scenario, and LookupEvents over them."""

    def __init__(self, events: tuple[SignInEvent, ...], account_id: str,
                 user_ids: dict[str, str]):
        stored = []
        for event in events:
            event_id = str(uuid.uuid4())
            stored.append(StoredEvent(
                event_id=event_id,
                event_name=event.event_name,
                username="root" if event.identity == "Root" else event.user,
                time=event.time,
                region=event.region,
                record=event_record(event, event_id, account_id, user_ids),
            ))
        self._events = sorted(stored, key=lambda e: e.time, reverse=True)
        # Tokens of an earlier scenario must not page through this one.
        self._token_prefix = uuid.uuid4().hex

    def lookup(self, request: dict[str, Any], region: str, now: datetime) -> dict[str, Any]:
        """Answers one LookupEvents request made in `region`."""
        matches = self._matching(request, region, now)
        limit = _max_results(request.get("MaxResults"))
        offset = self._offset(request.get("NextToken"))
        page = matches[offset: offset + limit]
        answer: dict[str, Any] = {"Events": [event.summary() for event in page]}
        if offset + limit < len(matches):
            answer["NextToken"] = self._token(offset + limit)
        return answer

    def _matching(self, request: dict[str, Any], region: str, now: datetime) -> list[StoredEvent]:
        start = max(_time(request, "StartTime", now - RETENTION), now - RETENTION)
        end = _time(request, "EndTime", now)
        if start > end:
            raise LookupFailure("InvalidTimeRangeException",
                                "Start time must be before end time.")
        selector = _attribute_filter(request.get("LookupAttributes") or [])
        return [
            event for event in self._events
            if event.region == region and start <= event.time <= end and selector(event)
        ]

    def _token(self, offset: int) -> str:
        return base64.urlsafe_b64encode(f"{self._token_prefix}:{offset}".encode()).decode()

    def _offset(self, token: Any) -> int:
        if token is None:
            return 0
        try:
            prefix, offset = base64.urlsafe_b64decode(str(token)).decode().split(":")
            if prefix == self._token_prefix:
                return int(offset)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
        raise LookupFailure("InvalidNextTokenException", "Invalid NextToken.")


def _time(request: dict[str, Any], key: str, default: datetime) -> datetime:
    value = request.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LookupFailure("ValidationException", f"{key} must be epoch seconds.")
    return datetime.fromtimestamp(value, tz=timezone.utc)


def _max_results(value: Any) -> int:
    if value is None:
        return MAX_RESULTS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RESULTS:
        raise LookupFailure("InvalidMaxResultsException",
                            f"MaxResults must be between 1 and {MAX_RESULTS}.")
    return value


def _attribute_filter(attributes: list[Any]) -> Callable[[StoredEvent], bool]:
    if not attributes:
        return lambda event: True
    if len(attributes) > 1:
        raise LookupFailure("InvalidLookupAttributesException",
                            "You cannot specify more than one lookup attribute.")
    attribute = attributes[0] if isinstance(attributes[0], dict) else {}
    read = _ATTRIBUTES.get(attribute.get("AttributeKey"))
    if read is None:
        raise LookupFailure("InvalidLookupAttributesException",
                            "The lookup attribute key is not valid.")
    wanted = attribute.get("AttributeValue")
    return lambda event: read(event) == wanted
