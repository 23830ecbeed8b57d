"""The dashboard checker accepts the shipped dashboard and rejects broken ones."""

import copy
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_dashboard  # noqa: E402

DASHBOARD = Path(__file__).resolve().parents[2] / "grafana" / "iam-credentials.json"


@pytest.fixture
def dashboard():
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def first_panel(dashboard, kind):
    return next(p for p in check_dashboard.iter_panels(dashboard) if p["type"] == kind)


def test_the_shipped_dashboard_passes_every_static_check():
    failures = check_dashboard.check_file(DASHBOARD)

    assert failures == []


def test_the_command_line_exits_zero_on_the_shipped_dashboard(capsys):
    status = check_dashboard.main([str(DASHBOARD)])

    assert status == 0
    assert capsys.readouterr().out.startswith("OK ")


def test_a_hard_coded_panel_datasource_uid_fails(dashboard):
    panel = first_panel(dashboard, "stat")
    panel["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}

    failures = check_dashboard.check_static(dashboard)

    assert any("P1809F7CD0C75ACF3" in f and f.startswith("$.panels[") for f in failures)


def test_a_hard_coded_target_datasource_uid_fails(dashboard):
    panel = first_panel(dashboard, "table")
    panel["targets"][0]["datasource"] = {"type": "prometheus", "uid": "prometheus"}

    failures = check_dashboard.check_static(dashboard)

    assert any(".targets[0].datasource" in f for f in failures)
    assert any(f"query {panel['targets'][0]['refId']!r}: datasource" in f for f in failures)


def test_an_import_input_datasource_fails(dashboard):
    dashboard["templating"]["list"][1]["datasource"] = "${DS_PROMETHEUS}"

    failures = check_dashboard.check_static(dashboard)

    assert failures == [
        "$.templating.list[1].datasource: datasource '${DS_PROMETHEUS}' is not the "
        "$datasource variable"
    ]


def test_a_panel_without_description_fails(dashboard):
    panel = first_panel(dashboard, "timeseries")
    del panel["description"]

    failures = check_dashboard.check_static(dashboard)

    assert failures == [f"panel {panel['id']!r} {panel['title']!r}: has no description"]


def test_a_panel_nested_in_a_collapsed_row_is_checked(dashboard):
    row = first_panel(dashboard, "row")
    nested = copy.deepcopy(first_panel(dashboard, "stat"))
    nested["id"] = 999
    nested["description"] = " "
    row["collapsed"] = True
    row["panels"] = [nested]

    failures = check_dashboard.check_static(dashboard)

    assert failures == [f"panel 999 {nested['title']!r}: has no description"]


def test_a_missing_uid_fails(dashboard):
    del dashboard["uid"]

    failures = check_dashboard.check_static(dashboard)

    assert failures == ["dashboard: uid is None, expected 'aws-iam-credentials'"]


def test_a_missing_datasource_variable_fails(dashboard):
    dashboard["templating"]["list"] = [
        v for v in dashboard["templating"]["list"] if v["name"] != "datasource"
    ]

    failures = check_dashboard.check_static(dashboard)

    assert failures == ["dashboard: no template variable 'datasource' of type 'datasource'"]


def test_a_panel_without_unit_fails(dashboard):
    panel = first_panel(dashboard, "bargauge")
    del panel["fieldConfig"]["defaults"]["unit"]

    failures = check_dashboard.check_static(dashboard)

    assert failures == [
        f"panel {panel['id']!r} {panel['title']!r}: no unit (fieldConfig.defaults.unit)"
    ]


def test_a_table_with_per_field_units_only_passes(dashboard):
    panel = first_panel(dashboard, "table")
    del panel["fieldConfig"]["defaults"]["unit"]

    failures = check_dashboard.check_static(dashboard)

    assert failures == []


def test_a_metric_from_another_exporter_fails(dashboard):
    panel = first_panel(dashboard, "stat")
    panel["targets"][0]["expr"] = 'up{account_id=~"$account"} * on(instance) aws_iam_users'

    failures = check_dashboard.check_static(dashboard)

    assert len(failures) == 1
    assert "uses metrics outside aws_iam_*: up" in failures[0]


def test_a_query_without_the_account_filter_fails(dashboard):
    panel = first_panel(dashboard, "stat")
    panel["targets"][0]["expr"] = "max by (account_id) (aws_iam_users)"

    failures = check_dashboard.check_static(dashboard)

    assert len(failures) == 1
    assert "does not filter on $account" in failures[0]


def test_duplicate_panel_ids_fail(dashboard):
    panels = dashboard["panels"]
    panels[2]["id"] = panels[1]["id"]

    failures = check_dashboard.check_static(dashboard)

    assert failures == [
        f"panel {panels[2]['id']!r} {panels[2]['title']!r}: id is also used by "
        f"panel {panels[1]['id']!r} {panels[1]['title']!r}"
    ]


def test_overlapping_panels_fail(dashboard):
    panels = dashboard["panels"]
    panels[2]["gridPos"] = dict(panels[1]["gridPos"])

    failures = check_dashboard.check_static(dashboard)

    assert len(failures) == 1
    assert f"{panels[2]['title']!r} overlaps panel {panels[1]['id']!r}" in failures[0]


def test_invalid_json_exits_one_with_a_message(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text('{"uid": "aws-iam-credentials",', encoding="utf-8")

    status = check_dashboard.main([str(broken)])

    assert status == 1
    assert "invalid JSON" in capsys.readouterr().out


def test_metric_names_ignore_labels_functions_and_durations():
    expr = (
        "3600 * sum by (job, code) "
        '(rate(aws_iam_a{account_id=~"$account", x="up"}[$__rate_interval]))'
        " / on(job) group_left(version) max_over_time(aws_iam_b[1h] offset 5m) > bool 1e3"
    )

    metrics, unknown = check_dashboard.metric_names(expr)

    assert metrics == {"aws_iam_a", "aws_iam_b"}
    assert unknown == set()


def test_variables_are_replaced_for_instant_queries():
    expr = (
        'rate(aws_iam_x{account_id=~"${account}"}[$__rate_interval])'
        ' and aws_iam_y{a=~"$account"}'
    )

    sent = check_dashboard.substitute_variables(expr)

    assert sent == 'rate(aws_iam_x{account_id=~".*"}[1m]) and aws_iam_y{a=~".*"}'


def test_query_all_panels_reports_an_unreachable_prometheus():
    failures = check_dashboard.query_all_panels(DASHBOARD, "http://127.0.0.1:9")

    assert failures
    assert all("cannot query http://127.0.0.1:9/api/v1/query" in f for f in failures)


def test_query_all_panels_never_exempts_errors_from_allow_empty():
    failures = check_dashboard.query_all_panels(
        DASHBOARD, "http://127.0.0.1:9", allow_empty=["Root password age", "Exporter build:A"]
    )

    assert any("'Root password age' query 'A': cannot query" in f for f in failures)
    assert any("'Exporter build' query 'A': cannot query" in f for f in failures)
