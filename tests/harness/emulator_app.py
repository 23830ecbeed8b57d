"""The emulator's WSGI application, in front of moto.

Every request goes through here. Control requests (`/_harness/...`) change or report the
emulator's state. A signed AWS call is counted, may be answered by an injected fault,
and is then answered here when moto cannot answer it as AWS would (the credential report,
the account summary's root flags and CloudTrail LookupEvents); everything else goes to
moto unchanged.

One lock serialises all requests: a scenario is then never replaced halfway through a
call, and fault and poll counters advance exactly once per call.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from moto.iam.models import IAMBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.wrappers import Request, Response

import moto_account
from aws_protocol import (
    AwsCall, error_response, json_error, json_response, parse_call, query_error, query_response,
)
from cloudtrail import EventStore, LookupFailure
from credential_report import ReportProgress, build_report
from faults import FaultInjector
from scenario import Delay, Fault, Scenario, ScenarioError, load_scenario_text

CONTROL_PREFIX = "/_harness"
REPORT_GENERATION_STARTED = "No report exists. Starting a new report generation task"

log = logging.getLogger("emulator")


def utc_now() -> datetime:
    """The emulator's clock."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class AccountState:
    """Everything one applied scenario owns, beyond moto's own state."""

    scenario: Scenario
    backend: IAMBackend
    report: ReportProgress
    events: EventStore
    faults: FaultInjector[Fault]
    delays: FaultInjector[Delay]
    password_changed: dict[str, datetime]

    @classmethod
    def install(cls, scenario: Scenario) -> AccountState:
        """Resets moto to the scenario and starts fresh counters for it."""
        backend = moto_account.install(scenario)
        user_ids = {name: user.id for name, user in backend.users.items()}
        return cls(
            scenario=scenario,
            backend=backend,
            report=ReportProgress(scenario.report_polls_before_complete),
            events=EventStore(scenario.events, scenario.account_id, user_ids),
            faults=FaultInjector(scenario.faults),
            delays=FaultInjector(scenario.delays),
            password_changed={
                user.name: user.password.changed for user in scenario.users if user.password
            },
        )

    def max_password_age_days(self) -> int | None:
        """The current policy's maximum age (it may have been changed through the API)."""
        policy = self.backend.account_password_policy
        return (policy.max_password_age or None) if policy is not None else None


class EmulatorApp:
    """The WSGI application: control API, counting, faults, AWS emulation, then moto."""

    def __init__(self, scenario: Scenario):
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._state = AccountState.install(scenario)
        self._handlers: dict[tuple[str, str], Callable[[AwsCall], Response]] = {
            ("iam", "GenerateCredentialReport"): self._generate_credential_report,
            ("iam", "GetCredentialReport"): self._get_credential_report,
            ("iam", "GetAccountSummary"): self._get_account_summary,
            ("cloudtrail", "LookupEvents"): self._lookup_events,
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        request = Request(environ)
        body = request.get_data()
        # The body was consumed above; moto reads it again from a fresh stream.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        control = request.path == CONTROL_PREFIX or request.path.startswith(CONTROL_PREFIX + "/")
        if not control:
            self._stall(request, body)
        with self._lock:
            if control:
                response = self._control(request, body)
            else:
                response = self._aws(request, body, environ)
        return response(environ, start_response)

    def _stall(self, request: Request, body: bytes) -> None:
        """Waits, outside the lock, when a scenario delay matches the call."""
        call = parse_call(request, body)
        if call is None:
            return
        with self._lock:
            delay = self._state.delays.take(call)
        if delay is not None:
            log.debug("%s in %s: delayed %.1f s", call.name, call.region, delay.seconds)
            time.sleep(delay.seconds)

    # Control API

    def _control(self, request: Request, body: bytes) -> Response:
        route = (request.method, request.path)
        if route == ("PUT", "/_harness/scenario"):
            return self._put_scenario(body)
        if route == ("GET", "/_harness/scenario"):
            return _json(200, self._describe())
        if route == ("GET", "/_harness/calls"):
            return _json(200, dict(sorted(self._calls.items())))
        if route == ("POST", "/_harness/calls/reset"):
            self._calls.clear()
            return _json(200, {})
        return _json(404, {"error": f"no control endpoint {request.method} {request.path}"})

    def _put_scenario(self, body: bytes) -> Response:
        try:
            scenario = load_scenario_text(body, utc_now())
        except ScenarioError as error:
            return _json(400, {"error": str(error)})
        self._state = AccountState.install(scenario)
        self._calls.clear()
        log.info("scenario applied: account %s, %d users", scenario.account_id,
                 len(scenario.users))
        return _json(200, self._describe())

    def _describe(self) -> dict[str, Any]:
        scenario = self._state.scenario
        return {
            "account_id": scenario.account_id,
            "applied_at": scenario.now.isoformat(),
            "applied_at_unix": int(scenario.now.timestamp()),
        }

    # AWS calls

    def _aws(self, request: Request, body: bytes, environ: dict[str, Any]) -> Response:
        call = parse_call(request, body)
        if call is None:
            return self._forward(environ)
        self._calls[call.name] += 1

        fault = self._state.faults.take(call)
        if fault is not None:
            log.debug("%s in %s: fault %s", call.name, call.region, fault.code)
            return error_response(call, fault.code, fault.message, fault.status)

        handler = self._handlers.get((call.service, call.operation))
        log.debug("%s in %s", call.name, call.region)
        return handler(call) if handler is not None else self._forward(environ)

    def _forward(self, environ: dict[str, Any]) -> Response:
        # Buffered, so that moto has finished with its state before the lock is released.
        return Response.from_app(self._moto, environ, buffered=True)

    def _generate_credential_report(self, call: AwsCall) -> Response:
        state = self._state.report.generate()
        description = (
            f"<Description>{REPORT_GENERATION_STARTED}</Description>"
            if state == "STARTED" else ""
        )
        return query_response(call, f"<State>{state}</State>{description}")

    def _get_credential_report(self, call: AwsCall) -> Response:
        state = self._state
        if not state.report.ready:
            return query_error(call.service, "ReportInProgress",
                               "Credential report generation is in progress.", 404)
        report = build_report(state.scenario, state.backend.users.values(),
                              state.password_changed, state.max_password_age_days())
        # Malformed answers on purpose: raw lines appended, or the whole CSV replaced.
        report += "".join(f"{line}\n" for line in state.scenario.report_extra_lines).encode()
        if state.scenario.report_content is not None:
            report = state.scenario.report_content.encode()
        generated = state.scenario.report_generated.strftime("%Y-%m-%dT%H:%M:%SZ")
        return query_response(
            call,
            f"<Content>{base64.b64encode(report).decode()}</Content>"
            f"<ReportFormat>text/csv</ReportFormat>"
            f"<GeneratedTime>{generated}</GeneratedTime>",
        )

    def _get_account_summary(self, call: AwsCall) -> Response:
        summary = moto_account.account_summary(self._state.backend, self._state.scenario.root)
        entries = "".join(
            f"<entry><key>{key}</key><value>{value}</value></entry>"
            for key, value in summary.items()
        )
        return query_response(call, f"<SummaryMap>{entries}</SummaryMap>")

    def _lookup_events(self, call: AwsCall) -> Response:
        try:
            answer = self._state.events.lookup(call.json_body or {}, call.region, utc_now())
        except LookupFailure as failure:
            return json_error(failure.code, failure.message, 400)
        return json_response(answer)


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload), status, content_type="application/json")
