"""The dashboards build from code, deterministically, and the committed JSON is what the code
generates (run `wardwatch dashboards build` after changing dashboards/)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dashboards import build
from dashboards.panels import render
from monitor import cli
from tests.dashboards import queries as dq

# The UIDs alerts/rules link to (annotations "dashboard": .../d/<uid>/...).


def test_committed_json_is_up_to_date() -> None:
    res = build.check()
    assert not res.stale, f"stale dashboards/json/ files {res.stale}: run `wardwatch dashboards build`"


def test_build_is_deterministic() -> None:
    assert build.rendered() == build.rendered()


def test_check_exits_1_when_stale_and_build_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "json"
    assert cli.main(["dashboards", "build", "--out", str(out)]) == 0
    assert cli.main(["dashboards", "build", "--out", str(out), "--check"]) == 0
    unit = out / "unit.json"
    doc = json.loads(unit.read_text())
    doc["title"] = "edited by hand"
    unit.write_text(render(doc))
    (out / "removed-dashboard.json").write_text("{}\n")
    assert cli.main(["dashboards", "build", "--out", str(out), "--check"]) == 1
    err = capsys.readouterr().err
    assert "unit.json" in err and "removed-dashboard.json" in err
    (out / "removed-dashboard.json").unlink()
    assert cli.main(["dashboards", "build", "--out", str(out)]) == 0
    assert cli.main(["dashboards", "build", "--out", str(out), "--check"]) == 0
    assert unit.read_text() == (build.JSON_DIR / "unit.json").read_text()


def test_dashboards_shape() -> None:
    docs = build.build_all()
    uids = {d["uid"] for d in docs.values()}
    assert len(uids) == len(docs)
    text = json.dumps(docs)
    for doc in docs.values():
        assert doc["schemaVersion"] == 41 and doc["id"] is None
        names = [v["name"] for v in doc["templating"]["list"]]
        assert names[0] == "datasource" and doc["templating"]["list"][0]["type"] == "datasource"
        if doc["uid"] != "wardwatch-self":
            assert names == ["datasource", "province", "unit_code", "service"], doc["uid"]
        ids = [p["id"] for p in dq.panels(doc)]
        assert ids == list(range(1, len(ids) + 1))
        for p in dq.panels(doc):
            pos = p["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, p["title"]
            if p["type"] == "row":
                continue
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p.get("targets"), p["title"]
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${datasource}" and t["refId"]
                # Aggregations never keep instance (several wardwatch processes) unless the panel is
                # about the processes themselves; the one exception is inner: the certificate join
                # matches a target's expiry and chain info within one instance, then drops it.
                if doc["uid"] != "wardwatch-self":
                    groups = re.findall(r"\b(?:by|on) \(([^)]*)\)", t["expr"])
                    kept = [g for g in groups if "instance" in g and not g.startswith("instance, job, province")]
                    assert not kept, (p["title"], t["expr"])
    # No hard-coded data source UID anywhere.
    assert set(re.findall(r'"uid": "([^"]*)"', json.dumps([
        [p.get("datasource") for p in dq.panels(d)] for d in docs.values()]))) == {"${datasource}"}
    assert "PBFA97CFB590B2093" not in text


def test_unit_dashboard_is_single_unit_and_alert_links_resolve() -> None:
    unit = build.build_all()["unit.json"]
    var = {v["name"]: v for v in unit["templating"]["list"]}
    assert var["unit_code"]["multi"] is False and var["unit_code"]["includeAll"] is False
    rules = (Path(__file__).resolve().parents[2] / "alerts" / "rules").glob("*.yml")
    built = {d["uid"] for d in build.build_all().values()}
    for path in rules:
        for uid, params in re.findall(r"grafana\.example/d/([a-z-]+)/[a-z]+\??([^\"]*)", path.read_text()):
            assert uid in built, (path.name, uid)
            for name in re.findall(r"var-([a-z_]+)=", params):
                doc = next(d for d in build.build_all().values() if d["uid"] == uid)
                assert name in {v["name"] for v in doc["templating"]["list"]}, (uid, name)


def test_variable_helpers() -> None:
    assert dq.parse_variable_query("label_values(wardwatch_target_state, province)") == (
        "label_values", "wardwatch_target_state", "province")
    assert dq.apply_regex('/unit_code="(?<value>[^"]*)",unit_label="(?<text>[^"]*)"/',
                          ['{unit_code="25747",unit_label="25747 · Phường A"} 1 1']) == ["25747"]
    assert dq.variable_value(["a.b", "c"], True) == "(a\\\\.b|c)"
    assert dq.substitute('x{a=~"$unit_code"}[$__rate_interval]', {"unit_code": "1", "unit": "2"}) == 'x{a=~"1"}[1m]'


def test_provisioning_files() -> None:
    import yaml

    prov = build.JSON_DIR.parent / "provisioning"
    [provider] = yaml.safe_load((prov / "dashboards.yaml").read_text())["providers"]
    assert provider["type"] == "file" and provider["folderUid"] == "wardwatch" and provider["options"]["path"]
    [ds] = yaml.safe_load((prov / "datasources.example.yaml").read_text())["datasources"]
    assert ds["type"] == "prometheus"
