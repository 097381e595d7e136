"""`wardwatch dashboards push` against a Grafana-compatible endpoint answering from a recorded
contract of Grafana 11's HTTP API (tests/dashboards/grafana_contract.py; no Grafana server can be
installed on the test machines). Asserts the requests: method, path, body shape (overwrite,
folderUid, the dashboard's uid and no id), and the bearer token; idempotency; clear errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dashboards.build import build_all
from monitor import cli
from tests.dashboards.grafana_contract import fake_grafana
from tests.peers.proc import free_port

TOKEN = "glsa_wardwatchTestToken_0123456789abcdef"


def _token_file(tmp_path: Path, token: str = TOKEN) -> Path:
    p = tmp_path / "token"
    p.write_text(token + "\n")
    return p


async def _push(url: str, token_file: Path, *extra: str) -> int:
    return await asyncio.to_thread(
        cli.main, ["dashboards", "push", "--url", url, "--token-file", str(token_file), "--timeout", "5", *extra])


async def test_first_push_creates_folder_and_every_dashboard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = build_all()
    uids = sorted(d["uid"] for d in docs.values())
    async with fake_grafana(TOKEN) as g:
        assert await _push(g.url, _token_file(tmp_path), "--folder", "wardwatch") == 0
        methods_paths = [(r.method, r.path) for r in g.requests]
        assert methods_paths[:4] == [
            ("GET", "/api/health"), ("GET", "/api/folders"), ("POST", "/api/folders"), ("GET", "/api/search"),
        ]
        assert methods_paths[4:] == [("POST", "/api/dashboards/db")] * len(docs)
        assert g.calls("POST", "/api/folders")[0].body == {"title": "wardwatch", "uid": "wardwatch"}
        search = g.calls("GET", "/api/search")[0]
        assert search.query == {"type": ["dash-db"], "folderUIDs": ["wardwatch"]}
        for r in g.requests[1:]:
            assert r.authorization == f"Bearer {TOKEN}", r
        saved = g.calls("POST", "/api/dashboards/db")
        assert sorted(r.body["dashboard"]["uid"] for r in saved) == uids
        for r in saved:
            assert set(r.body) == {"dashboard", "folderUid", "overwrite", "message"}
            assert r.body["overwrite"] is True and r.body["folderUid"] == "wardwatch"
            assert r.body["dashboard"]["id"] is None
            assert r.body["dashboard"]["schemaVersion"] == 41
            # No hard-coded data source: every panel reads the ${datasource} variable.
            for p in r.body["dashboard"]["panels"]:
                if p["type"] != "row":
                    assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert set(g.dashboards) == set(uids)
        assert all(d["folderUid"] == "wardwatch" for d in g.dashboards.values())
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert "5 created, 0 updated, 0 unchanged" in out.out


async def test_push_is_idempotent_and_overwrites_by_uid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tf = _token_file(tmp_path)
    async with fake_grafana(TOKEN) as g:
        assert await _push(g.url, tf) == 0
        versions = {uid: d["version"] for uid, d in g.dashboards.items()}
        n = len(g.requests)

        # Again: the folder is found, nothing is saved, no new version.
        assert await _push(g.url, tf) == 0
        again = g.requests[n:]
        assert ("POST", "/api/folders") not in [(r.method, r.path) for r in again]
        assert not [r for r in again if r.method == "POST"]
        assert sorted(r.path for r in again if r.path.startswith("/api/dashboards/uid/")) == sorted(
            f"/api/dashboards/uid/{u}" for u in versions)
        assert {uid: d["version"] for uid, d in g.dashboards.items()} == versions
        assert "0 created, 0 updated, 5 unchanged" in capsys.readouterr().out

        # Someone edited one in Grafana: the push puts the generated one back, over it, by UID.
        g.dashboards["wardwatch-unit"]["dashboard"]["title"] = "edited by hand"
        m = len(g.requests)
        assert await _push(g.url, tf) == 0
        saves = [r for r in g.requests[m:] if r.method == "POST"]
        assert [(r.path, r.body["dashboard"]["uid"], r.body["overwrite"]) for r in saves] == [
            ("/api/dashboards/db", "wardwatch-unit", True)]
        assert g.dashboards["wardwatch-unit"]["version"] == versions["wardwatch-unit"] + 1
        assert g.dashboards["wardwatch-unit"]["dashboard"]["title"] == "wardwatch — Unit"
        assert "0 created, 1 updated, 4 unchanged" in capsys.readouterr().out


async def test_existing_folder_is_reused_by_title(tmp_path: Path) -> None:
    async with fake_grafana(TOKEN) as g:
        assert await _push(g.url, _token_file(tmp_path), "--folder", "Network team") == 0
        assert not g.calls("POST", "/api/folders")
        assert {r.body["folderUid"] for r in g.calls("POST", "/api/dashboards/db")} == {"bdxq7oqaqycxsf"}


async def test_wrong_token_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with fake_grafana(TOKEN) as g:
        assert await _push(g.url, _token_file(tmp_path, "glsa_wrong_secret_value")) == 1
        assert not g.dashboards and "wardwatch" not in g.folders
    err = capsys.readouterr().err
    assert "401" in err and "token" in err and "Traceback" not in err
    assert "glsa_wrong_secret_value" not in err and len(err.strip().splitlines()) == 1


async def test_412_from_grafana_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with fake_grafana(TOKEN) as g:
        g.refuse_saves_with_412 = True
        assert await _push(g.url, _token_file(tmp_path)) == 1
    out = capsys.readouterr()
    assert "412" in out.err and "same name" in out.err and "Traceback" not in out.err
    assert TOKEN not in out.out + out.err


async def test_unreachable_grafana(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://user:secretpw@127.0.0.1:{free_port()}"
    assert await _push(url, _token_file(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "unreachable" in err and "Traceback" not in err
    assert "secretpw" not in err and TOKEN not in err


def test_missing_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("WW_TEST_GRAFANA_TOKEN", raising=False)
    assert cli.main(["dashboards", "push", "--url", "http://127.0.0.1:1", "--token-env", "WW_TEST_GRAFANA_TOKEN"]) == 2
    assert "WW_TEST_GRAFANA_TOKEN" in capsys.readouterr().err


async def test_token_from_environment(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WW_TEST_GRAFANA_TOKEN", TOKEN)
    async with fake_grafana(TOKEN) as g:
        rc = await asyncio.to_thread(cli.main, ["dashboards", "push", "--url", g.url,
                                                "--token-env", "WW_TEST_GRAFANA_TOKEN"])
        assert rc == 0 and len(g.dashboards) == 5
    assert TOKEN not in capsys.readouterr().out


def test_token_on_the_command_line_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """argv is world-readable (ps, /proc/PID/cmdline): --token is refused with what to use instead."""
    assert cli.main(["dashboards", "push", "--url", "http://127.0.0.1:1", "--token", "glsa_cmdline_secret"]) == 2
    err = capsys.readouterr().err
    assert "visible to every local user" in err and "--token-file" in err and "--token-env" in err
    assert "glsa_cmdline_secret" not in err
