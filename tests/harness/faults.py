"""Injected errors and delays: which calls fail or stall, and how many times.

Faults are tried in the scenario's order; the first that matches a call and still has
uses left answers it. A fault without `operation` (or `region`) matches every operation
(or region) of its service; `times: N` spends one use per answered call, and no `times`
fails forever.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from aws_protocol import AwsCall
from scenario import Delay, Fault

Rule = TypeVar("Rule", Fault, Delay)


class FaultInjector(Generic[Rule]):
    """The faults (or delays) of one scenario, with what is left of each one's `times`."""

    def __init__(self, faults: tuple[Rule, ...]):
        self._faults = faults
        self._remaining = [fault.times for fault in faults]

    def take(self, call: AwsCall) -> Rule | None:
        """The fault that answers `call`, spending one of its uses; None if none does."""
        for index, fault in enumerate(self._faults):
            if not _matches(fault, call):
                continue
            remaining = self._remaining[index]
            if remaining is None:
                return fault
            if remaining > 0:
                self._remaining[index] = remaining - 1
                return fault
        return None


def _matches(fault: Fault | Delay, call: AwsCall) -> bool:
    return (
        fault.service == call.service
        and fault.operation in (None, call.operation)
        and fault.region in (None, call.region)
    )
