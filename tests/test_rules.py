"""The Prometheus rules and the Alertmanager example, judged by promtool and amtool.

- ``promtool check rules`` on every file of alerts/rules;
- ``promtool test rules`` on every file of alerts/tests (one test file per rule file);
- every alerting rule (alert name + its own labels: tier, window, ...) is expected to fire in
  its test file and expected silent at least once (its `for:` or a condition holding it back),
  and every recording rule is queried by a test or read by a tested alert;
- ``amtool check-config`` on alerts/alertmanager.yml, and its routing by service and unit.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.peers.proc import require

REPO = Path(__file__).resolve().parents[1]
RULES = sorted((REPO / "alerts" / "rules").glob("*.yml"))
TESTS = sorted((REPO / "alerts" / "tests").glob("*.yml"))
AM_CONFIG = REPO / "alerts" / "alertmanager.yml"


def _run(*argv: str) -> tuple[int, str]:
    proc = subprocess.run(list(argv), capture_output=True, timeout=120, check=False, cwd=REPO)
    return proc.returncode, (proc.stdout + proc.stderr).decode()


def test_there_are_rules_and_one_test_file_per_rule_file() -> None:
    assert {p.name for p in RULES} >= {"wardwatch.yml", "slo.yml"}
    assert sorted(p.stem + "_test" for p in RULES) == sorted(p.stem for p in TESTS)


def test_promtool_check_rules() -> None:
    rc, out = _run(require("promtool"), "check", "rules", *map(str, RULES))
    assert rc == 0, out
    assert "FAILED" not in out and "WARNING" not in out.upper(), out


def test_promtool_test_rules() -> None:
    rc, out = _run(require("promtool"), "test", "rules", *map(str, TESTS))
    assert rc == 0, out
    assert out.count("SUCCESS") == len(TESTS), out


def _rules(path: Path) -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


@pytest.mark.parametrize("rule_file", RULES, ids=lambda p: p.name)
def test_every_rule_is_covered_by_its_test_file(rule_file: Path) -> None:
    test_file = rule_file.parent.parent / "tests" / f"{rule_file.stem}_test.yml"
    tests = yaml.safe_load(test_file.read_text())
    assert [Path(p).name for p in tests["rule_files"]] == [rule_file.name]
    fired: list[tuple[str, dict[str, str]]] = []
    silent: set[str] = set()
    queried = ""
    for case in tests["tests"]:
        for a in case.get("alert_rule_test", []):
            if not a.get("exp_alerts"):
                silent.add(a["alertname"])
            for exp in a.get("exp_alerts") or []:
                fired.append((a["alertname"], {k: str(v) for k, v in exp.get("exp_labels", {}).items()}))
        queried += " " + " ".join(e["expr"] for e in case.get("promql_expr_test", []))

    rules = _rules(rule_file)
    read_by_alerts = " ".join(r["expr"] for r in rules if "alert" in r)
    for rule in rules:
        if "alert" in rule:
            name, own = rule["alert"], {k: str(v) for k, v in rule.get("labels", {}).items()}
            assert any(n == name and own.items() <= labels.items() for n, labels in fired), (
                f"{name} {own}: no test expects it to fire"
            )
            assert name in silent, f"{name}: no test expects it to stay silent (for:, conditions)"
        else:
            record = rule["record"]
            pattern = re.escape(record) + r"(?![\w:])"
            assert re.search(pattern, queried) or re.search(pattern, read_by_alerts), (
                f"{record}: neither queried by a test nor read by an alert"
            )


def test_every_alert_has_severity_and_the_annotations_receivers_use() -> None:
    for path in RULES:
        for rule in _rules(path):
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in ("page", "ticket", "info"), rule["alert"]
            assert {"summary", "summary_en", "description", "description_en", "runbook_url", "dashboard"} <= set(
                rule["annotations"]
            ), rule["alert"]


def test_amtool_check_config() -> None:
    rc, out = _run(require("amtool"), "check-config", str(AM_CONFIG))
    assert rc == 0, out
    assert "SUCCESS" in out, out


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"alertname": "WardwatchUnitIsolated", "severity": "page", "service": "link", "unit_code": "25747"},
         "network-oncall"),
        ({"alertname": "WardwatchTargetDown", "severity": "page", "service": "vc_party", "unit_code": "25747"},
         "vc-oncall"),
        ({"alertname": "WardwatchTargetDown", "severity": "page", "service": "portal", "unit_code": "25747"},
         "web-oncall"),
        ({"alertname": "WardwatchTargetDown", "severity": "page", "service": "email", "unit_code": "25747"},
         "mail-oncall"),
        ({"alertname": "WardwatchCertificateExpiring", "severity": "ticket", "service": "certs", "tier": "7",
          "unit_code": "25747"}, "certificates"),
        ({"alertname": "WardwatchCertificateExpiring", "severity": "page", "service": "certs", "tier": "1",
          "unit_code": "25747"}, "web-oncall"),
        ({"alertname": "WardwatchLinkDegraded", "severity": "ticket", "service": "link", "unit_code": "25747"},
         "tickets"),
        ({"alertname": "WardwatchMonitoringDegraded", "severity": "page", "service": "wardwatch"},
         "monitoring-team"),
        # By unit: the unit's own IT contact gets a copy, the team still gets the page.
        ({"alertname": "WardwatchTargetDown", "severity": "page", "service": "portal", "unit_code": "26734"},
         "unit-26734-it,web-oncall"),
    ],
)
def test_alertmanager_routes_by_service_and_unit(labels: dict[str, str], receivers: str) -> None:
    rc, out = _run(
        require("amtool"), "config", "routes", "test", f"--config.file={AM_CONFIG}",
        f"--verify.receivers={receivers}", *(f"{k}={v}" for k, v in labels.items()),
    )
    assert rc == 0, out
