#!/usr/bin/env python3
"""Writes prometheusrule.yaml, the Prometheus Operator form of the alert rules.

The rule groups are those of alerts/iam-credentials.rules.yml, unchanged, so
that the rules Kubernetes users load are the ones the promtool tests cover.
Run it after every change to the rules file:

    python3 deploy/kubernetes/generate_prometheusrule.py          # write
    python3 deploy/kubernetes/generate_prometheusrule.py --check  # compare only

Needs PyYAML.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "alerts" / "iam-credentials.rules.yml"
OUTPUT = Path(__file__).resolve().parent / "prometheusrule.yaml"

NAME = "iam-credentials-exporter"
NAMESPACE = "iam-credentials-exporter"

HEADER = """\
# Generated from alerts/iam-credentials.rules.yml by
# deploy/kubernetes/generate_prometheusrule.py; do not edit: change the rules
# file and run the generator again. The comments of the rules file explain
# the rules and the two settings they read.
#
# The Prometheus Operator's Prometheus selects rules by label (ruleSelector):
# add the label yours expects, e.g. `release: kube-prometheus-stack`.
"""


class _Dumper(yaml.SafeDumper):
    """Block-style YAML as Kubernetes manifests are written: sequences
    indented under their key, multi-line strings (PromQL, descriptions) as
    literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    """The PrometheusRule resource holding the groups of a rules file."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": NAME},
        },
        "spec": {"groups": rules["groups"]},
    }


def render(rules_text: str) -> str:
    """The text of prometheusrule.yaml for the given rules file text."""
    rules = yaml.safe_load(rules_text)
    body = yaml.dump(
        prometheus_rule(rules),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when the committed file differs from the generated one",
    )
    args = parser.parse_args(argv)

    wanted = render(RULES.read_text(encoding="utf-8"))
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != wanted:
            print(f"{OUTPUT.relative_to(REPO)} is out of date; run {Path(__file__).name}")
            return 1
        return 0
    OUTPUT.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
