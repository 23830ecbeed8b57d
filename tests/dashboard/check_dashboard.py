#!/usr/bin/env python3
"""Checks the Grafana dashboard of iam-credentials-exporter.

Static checks (always):

    check_dashboard.py grafana/iam-credentials.json

Every target expression is also run against a Prometheus when one is given; each
expression must evaluate without error and return at least one series:

    check_dashboard.py grafana/iam-credentials.json --prometheus http://127.0.0.1:9090

Exit status 0 when every check passes, 1 when one fails (each failure is printed on its
own line), 2 when the arguments are wrong. Python 3.11 standard library only.

End-to-end tests import `query_all_panels(dashboard_path, prometheus_url)`, which
returns the list of failures instead of printing them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

EXPECTED_UID = "aws-iam-credentials"
DATASOURCE_VARIABLE = "datasource"
ACCOUNT_VARIABLE = "account"
METRIC_PREFIX = "aws_iam_"

# A datasource reference is accepted only when it points at the datasource variable.
ALLOWED_DATASOURCE_UIDS = {"${datasource}", "$datasource"}

# Values substituted for Grafana's variables before an expression is sent to Prometheus.
QUERY_SUBSTITUTIONS = {
    ACCOUNT_VARIABLE: ".*",
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

# Panels that show data but run no query of their own.
PANELS_WITHOUT_QUERIES = {"row", "text", "news", "dashlist", "welcome"}

PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan",
    "atanh", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "cos", "cosh", "count_over_time", "day_of_month", "day_of_week", "day_of_year",
    "days_in_month", "deg", "delta", "deriv", "double_exponential_smoothing", "exp",
    "floor", "histogram_avg", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum",
    "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time",
    "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
    "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round",
    "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc",
    "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time",
    "tan", "tanh", "time", "timestamp", "vector", "year",
}
PROMQL_AGGREGATIONS = {
    "avg", "bottomk", "count", "count_values", "group", "limit_ratio", "limitk", "max",
    "min", "quantile", "stddev", "stdvar", "sum", "topk",
}
PROMQL_KEYWORDS = {
    "and", "or", "unless", "atan2", "bool", "by", "without", "on", "ignoring",
    "group_left", "group_right", "offset", "inf", "nan",
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*(?:=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_MODIFIER = re.compile(r"\boffset\s+-?[0-9a-zA-Z_$]+|@\s*(?:start\(\)|end\(\)|[0-9.]+)")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_NUMBER = re.compile(
    r"(?<![\w:.])(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\w:])"
)
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


# ------------------------------------------------------------------------ walking


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yields every panel, the ones nested in (collapsed) rows included."""
    for panel in dashboard.get("panels") or []:
        yield panel
        for nested in panel.get("panels") or []:
            yield nested


def iter_targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yields (panel, target) for every query target of every panel."""
    for panel in iter_panels(dashboard):
        for target in panel.get("targets") or []:
            yield panel, target


def describe(panel: dict[str, Any]) -> str:
    return f"panel {panel.get('id')!r} {panel.get('title', '(untitled)')!r}"


def _walk_datasources(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}"
            if key in ("datasource", "datasourceUid"):
                yield child, value
            yield from _walk_datasources(value, child)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk_datasources(value, f"{path}[{index}]")


def _datasource_is_variable(value: Any) -> bool:
    if isinstance(value, str):
        return value in ALLOWED_DATASOURCE_UIDS
    if isinstance(value, dict):
        return value.get("uid") in ALLOWED_DATASOURCE_UIDS and value.get("type") in (
            None,
            "prometheus",
        )
    return False


# ------------------------------------------------------------------------ PromQL


def expression_variables(expr: str) -> set[str]:
    """Names of the Grafana variables an expression uses ($x, ${x}, ${x:fmt}, [[x]])."""
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(expr)}


def metric_names(expr: str) -> tuple[set[str], set[str]]:
    """Returns (metric names, unknown function names) used by a PromQL expression.

    The expression is reduced to its skeleton: strings, label matchers, range and
    subquery brackets, label lists of by/without/on/ignoring/group_*, offsets, numbers
    and Grafana variables are removed; what remains is functions, operators, keywords
    and metric names. Good enough for dashboard expressions; Prometheus itself judges
    the syntax in --prometheus mode.
    """
    metrics: set[str] = set()
    for match in _NAME_MATCHER.finditer(expr):
        metrics.add(match.group(1)[1:-1])
    skeleton = _STRING.sub('""', expr)
    previous = None
    while previous != skeleton:
        previous = skeleton
        skeleton = _BRACES.sub(" ", skeleton)
        skeleton = _BRACKETS.sub(" ", skeleton)
    skeleton = _LABEL_LIST.sub(" ", skeleton)
    skeleton = _MODIFIER.sub(" ", skeleton)
    skeleton = _VARIABLE.sub(" ", skeleton)
    skeleton = _NUMBER.sub(" ", skeleton)

    unknown_functions: set[str] = set()
    for match in _IDENTIFIER.finditer(skeleton):
        word = match.group(0)
        lowered = word.lower()
        followed_by_call = skeleton[match.end():].lstrip().startswith("(")
        if lowered in PROMQL_KEYWORDS:
            continue
        if followed_by_call:
            if lowered in PROMQL_FUNCTIONS or lowered in PROMQL_AGGREGATIONS:
                continue
            unknown_functions.add(word)
        else:
            metrics.add(word)
    return metrics, unknown_functions


def substitute_variables(expr: str) -> str:
    """Replaces Grafana variables with values Prometheus accepts in an instant query."""

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return QUERY_SUBSTITUTIONS.get(name, match.group(0))

    return _VARIABLE.sub(replace, expr)


# ------------------------------------------------------------------------ static checks


def _rectangles_overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def _check_layout(panels: list[dict[str, Any]], where: str) -> list[str]:
    failures = []
    placed: list[dict[str, Any]] = []
    for panel in panels:
        grid = panel.get("gridPos")
        if not isinstance(grid, dict) or not all(
            isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")
        ):
            failures.append(f"{describe(panel)}: gridPos needs integer x, y, w and h")
            continue
        if grid["x"] < 0 or grid["y"] < 0 or grid["w"] <= 0 or grid["h"] <= 0:
            failures.append(f"{describe(panel)}: gridPos {grid} has a negative or empty size")
        if grid["x"] + grid["w"] > 24:
            failures.append(f"{describe(panel)}: gridPos {grid} is wider than the 24 columns")
        for other in placed:
            if _rectangles_overlap(grid, other["gridPos"]):
                failures.append(
                    f"{describe(panel)} overlaps {describe(other)}{where}: "
                    f"{grid} and {other['gridPos']}"
                )
        placed.append(panel)
    return failures


def _check_variables(dashboard: dict[str, Any]) -> list[str]:
    failures = []
    variables = {v.get("name"): v for v in (dashboard.get("templating") or {}).get("list") or []}
    datasource = variables.get(DATASOURCE_VARIABLE)
    if datasource is None or datasource.get("type") != "datasource":
        failures.append(
            f"dashboard: no template variable {DATASOURCE_VARIABLE!r} of type 'datasource'"
        )
    elif datasource.get("query") != "prometheus":
        failures.append(
            f"dashboard: variable {DATASOURCE_VARIABLE!r} must list Prometheus datasources "
            f"(query 'prometheus'), not {datasource.get('query')!r}"
        )
    if ACCOUNT_VARIABLE not in variables:
        failures.append(f"dashboard: no template variable {ACCOUNT_VARIABLE!r}")
    return failures


def _check_panel(panel: dict[str, Any]) -> list[str]:
    failures = []
    kind = panel.get("type")
    if not str(panel.get("description") or "").strip():
        failures.append(f"{describe(panel)}: has no description")
    if kind in PANELS_WITHOUT_QUERIES:
        return failures

    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    overrides = (panel.get("fieldConfig") or {}).get("overrides") or []
    field_units = [
        prop
        for override in overrides
        for prop in override.get("properties") or []
        if prop.get("id") == "unit" and prop.get("value")
    ]
    if not defaults.get("unit") and not (kind == "table" and field_units):
        failures.append(
            f"{describe(panel)}: no unit (fieldConfig.defaults.unit"
            + (", or per-field units in overrides" if kind == "table" else "")
            + ")"
        )

    if not _datasource_is_variable(panel.get("datasource")):
        failures.append(
            f"{describe(panel)}: datasource must be "
            f'{{"type": "prometheus", "uid": "${{{DATASOURCE_VARIABLE}}}"}}, '
            f"found {panel.get('datasource')!r}"
        )
    targets = panel.get("targets") or []
    if not targets:
        failures.append(f"{describe(panel)}: has no query")
    for target in targets:
        failures.extend(_check_target(panel, target))
    return failures


def _check_target(panel: dict[str, Any], target: dict[str, Any]) -> list[str]:
    failures = []
    where = f"{describe(panel)} query {target.get('refId')!r}"
    if not _datasource_is_variable(target.get("datasource")):
        failures.append(
            f"{where}: datasource must be the ${DATASOURCE_VARIABLE} variable, "
            f"found {target.get('datasource')!r}"
        )
    expr = target.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        failures.append(f"{where}: has no PromQL expression (expr)")
        return failures
    if ACCOUNT_VARIABLE not in expression_variables(expr):
        failures.append(f"{where}: does not filter on ${ACCOUNT_VARIABLE}: {expr}")
    metrics, unknown_functions = metric_names(expr)
    foreign = sorted(m for m in metrics if not m.startswith(METRIC_PREFIX))
    if foreign:
        failures.append(
            f"{where}: uses metrics outside {METRIC_PREFIX}*: {', '.join(foreign)}: {expr}"
        )
    if not metrics:
        failures.append(f"{where}: uses no {METRIC_PREFIX}* metric: {expr}")
    if unknown_functions:
        failures.append(
            f"{where}: unknown PromQL functions {', '.join(sorted(unknown_functions))}: {expr}"
        )
    return failures


def check_static(dashboard: Any) -> list[str]:
    """Returns one message per failed static check of a parsed dashboard."""
    if not isinstance(dashboard, dict):
        return ["dashboard: the top level of the JSON is not an object"]
    failures = []
    if dashboard.get("uid") != EXPECTED_UID:
        failures.append(f"dashboard: uid is {dashboard.get('uid')!r}, expected {EXPECTED_UID!r}")
    failures.extend(_check_variables(dashboard))

    for path, value in _walk_datasources(dashboard, "$"):
        if not _datasource_is_variable(value):
            failures.append(
                f"{path}: datasource {value!r} is not the ${DATASOURCE_VARIABLE} variable"
            )

    seen_ids: dict[Any, dict[str, Any]] = {}
    for panel in iter_panels(dashboard):
        panel_id = panel.get("id")
        if panel_id is None:
            failures.append(f"{describe(panel)}: has no id")
        elif panel_id in seen_ids:
            failures.append(f"{describe(panel)}: id is also used by {describe(seen_ids[panel_id])}")
        else:
            seen_ids[panel_id] = panel
        failures.extend(_check_panel(panel))

    top_level = dashboard.get("panels") or []
    failures.extend(_check_layout(top_level, ""))
    for panel in top_level:
        if panel.get("type") == "row" and panel.get("panels"):
            failures.extend(_check_layout(panel["panels"], f" inside row {panel.get('title')!r}"))
    return failures


def load_dashboard(path: str | Path) -> tuple[Any, list[str]]:
    """Reads a dashboard file: (parsed JSON or None, failures)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        return None, [f"{path}: cannot be read: {error}"]
    try:
        return json.loads(text), []
    except json.JSONDecodeError as error:
        return None, [f"{path}: invalid JSON: {error}"]


def check_file(path: str | Path) -> list[str]:
    """Static checks of a dashboard file."""
    dashboard, failures = load_dashboard(path)
    if dashboard is None:
        return failures
    return check_static(dashboard)


# ------------------------------------------------------------------------ Prometheus


def instant_query(prometheus_url: str, expr: str, timeout: float = 10.0) -> tuple[list, str]:
    """Runs an instant query: (result list, error message or "")."""
    url = prometheus_url.rstrip("/") + "/api/v1/query"
    body = urllib.parse.urlencode({"query": expr}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.load(response)
    except urllib.error.HTTPError as error:
        try:
            payload = json.load(error)
        except (json.JSONDecodeError, ValueError):
            return [], f"HTTP {error.code} from {url}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return [], f"cannot query {url}: {error}"
    if payload.get("status") != "success":
        return [], f"{payload.get('errorType', 'error')}: {payload.get('error', payload)}"
    data = payload.get("data") or {}
    if data.get("resultType") in ("scalar", "string"):
        return [data.get("result")], ""
    return list(data.get("result") or []), ""


def _variable_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Yields (variable name, PromQL) for label_values(metric, label) query variables."""
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        match = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\s*\)\s*", str(query or ""))
        if match:
            yield variable["name"], f"group by ({match.group(2)}) ({match.group(1)})"


def query_all_panels(
    dashboard_path: str | Path, prometheus_url: str, allow_empty: Iterable[str] = ()
) -> list[str]:
    """Runs every target expression (and label_values variable) as an instant query.

    Returns one message per expression that errors or returns no data; an empty list
    means every panel has data. `allow_empty` lists queries that may return nothing,
    such as findings a test scenario deliberately avoids: a panel title exempts all of
    that panel's queries, "title:refId" exempts one (e.g. "Oldest active access
    keys:C", a last-used column when no key was ever used). Errors are never exempt.
    """
    dashboard, failures = load_dashboard(dashboard_path)
    if dashboard is None:
        return failures
    allowed = set(allow_empty)

    for name, expr in _variable_queries(dashboard):
        result, error = instant_query(prometheus_url, substitute_variables(expr))
        if error:
            failures.append(f"variable {name!r}: {error}: {expr}")
        elif not result:
            failures.append(f"variable {name!r}: no values: {expr}")

    for panel, target in iter_targets(dashboard):
        expr = target.get("expr")
        if not isinstance(expr, str) or not expr.strip():
            continue
        sent = substitute_variables(expr)
        where = f"{describe(panel)} query {target.get('refId')!r}"
        left = expression_variables(sent)
        if left:
            failures.append(f"{where}: no value for variables {sorted(left)}: {expr}")
            continue
        result, error = instant_query(prometheus_url, sent)
        if error:
            failures.append(f"{where}: {error}: {sent}")
        elif not result and not allowed & {
            panel.get("title"),
            f"{panel.get('title')}:{target.get('refId')}",
        }:
            failures.append(f"{where}: no data: {sent}")
    return failures


# ------------------------------------------------------------------------ command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check the iam-credentials-exporter Grafana dashboard."
    )
    parser.add_argument("dashboard", help="path to the dashboard JSON")
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        help="also run every query against this Prometheus (e.g. http://127.0.0.1:9090)",
    )
    parser.add_argument(
        "--allow-empty",
        metavar="TITLE",
        action="append",
        default=[],
        help='panel title, or "title:refId" for one query, that may return no data '
        "(repeatable)",
    )
    args = parser.parse_args(argv)

    failures = check_file(args.dashboard)
    if args.prometheus:
        failures.extend(query_all_panels(args.dashboard, args.prometheus, args.allow_empty))

    for failure in failures:
        print(f"FAIL {failure}")
    if failures:
        print(f"{len(failures)} check(s) failed for {args.dashboard}", file=sys.stderr)
        return 1

    dashboard, _ = load_dashboard(args.dashboard)
    panels = sum(1 for _ in iter_panels(dashboard))
    targets = sum(1 for _ in iter_targets(dashboard))
    summary = f"OK {args.dashboard}: {panels} panels and {targets} queries pass the static checks"
    if args.prometheus:
        summary += f"; every query returns data from {args.prometheus}"
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
