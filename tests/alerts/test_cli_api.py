"""`wardwatch alerts` / `wardwatch maintenance` against a running service's HTTP API; alert state
(acknowledged) and run-time maintenance windows survive a restart; secrets never in the API."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.peers.proc import free_port
from tests.peers.wardwatch import wardwatch_run

REFUSED = f"127.0.0.1:{free_port()}"  # nothing listens: every probe is refused at once

INVENTORY = f"""
province: 79
defaults: {{interval: 2s, timeout: 500ms, rechecks: 2, recheck_spacing: 200ms}}
units:
  - code: 25747
    name: Phường Thủ Dầu Một
    type: phường
    checks:
      - {{service: portal, probe: tcp, target: "{REFUSED}"}}
alerting:
  language: en
  receivers:
    hook: {{type: webhook, url: "http://{REFUSED}/never", hmac_key_env: WW_CLI_TEST_SECRET}}
  routes:
    - {{units: [1], receivers: [hook]}}   # matches nothing here: notifications are recorded only
  delivery: {{tick: 200ms}}
"""


async def ww(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_alerts_and_maintenance_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WW_CLI_TEST_SECRET", "do-not-show-me")  # the child process inherits it
    inv = tmp_path / "inv.yaml"
    inv.write_text(INVENTORY)
    async with wardwatch_run(tmp_path, inv) as w:
        alert_id = ""
        for _ in range(100):  # three refused probes in ~0.5 s open a target_down
            code, out, _ = await ww("alerts", "list", "--url", w.url, "--json")
            data = json.loads(out)
            if data["alerts"]:
                alert_id = data["alerts"][0]["id"]
                break
            await asyncio.sleep(0.1)
        assert alert_id.startswith("target_down:25747/portal/tcp/"), data
        assert "do-not-show-me" not in out and data["receivers"] == ["hook"]
        assert any(n["status"] == "recorded" and n["alert_id"] == alert_id for n in data["notifications"])

        code, out, err = await ww("alerts", "list", "--url", w.url)
        assert code == 0 and "1 active alert(s)" in out and alert_id in out, (out, err)
        code, out, err = await ww("alerts", "ack", "nope", "--url", w.url)
        assert code == 1 and "no active alert 'nope'" in err and "Traceback" not in err
        code, out, err = await ww("alerts", "ack", alert_id, "--by", "Lan", "--url", w.url)
        assert code == 0 and "acknowledged by Lan" in out, err

        code, out, err = await ww("maintenance", "add", "--unit", "25747", "--service", "portal",
                                  "--from", "2026-11-22T22:00", "--to", "2026-11-23T02:00+07:00",
                                  "--reason", "thay máy chủ", "--url", w.url)
        assert code == 0, err
        window_id = out.split()[2]
        code, out, err = await ww("maintenance", "list", "--url", w.url)
        assert code == 0 and window_id in out and "thay máy chủ" in out and "[runtime]" in out
        code, out, err = await ww("maintenance", "add", "--unit", "25747", "--from", "2026-11-23T02:00+07:00",
                                  "--to", "2026-11-22T22:00+07:00", "--reason", "x", "--url", w.url)
        assert code == 1 and "'to' must be after 'from'" in err
        code, out, err = await ww("maintenance", "add", "--unit", "26734", "--from", "2026-11-22T22:00",
                                  "--to", "2026-11-23T02:00", "--reason", "x", "--url", w.url)
        assert code == 1 and "unit 26734 is not in the inventory" in err
        code, out, err = await ww("maintenance", "add", "--unit", "25747", "--from", "soon", "--to", "later",
                                  "--reason", "x", "--url", w.url)
        assert code == 2 and "not an ISO 8601 time" in err and "Traceback" not in err

    # Restarted on the same store: the acknowledgement and the window are still there.
    async with wardwatch_run(tmp_path, inv) as w:
        code, out, _ = await ww("alerts", "list", "--url", w.url, "--json")
        [a] = [a for a in json.loads(out)["alerts"] if a["id"] == alert_id]
        assert a["acked_by"] == "Lan"
        code, out, err = await ww("maintenance", "list", "--url", w.url, "--json")
        assert [x["id"] for x in json.loads(out)] == [window_id]
        code, out, err = await ww("maintenance", "remove", window_id, "--url", w.url)
        assert code == 0, err
        code, out, err = await ww("maintenance", "remove", window_id, "--url", w.url)
        assert code == 1 and "no maintenance window" in err

    code, out, err = await ww("alerts", "list", "--url", w.url)  # stopped: unreachable
    assert code == 2 and "cannot reach wardwatch" in err and "Traceback" not in err


async def test_run_refuses_a_missing_secret_without_showing_values(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(INVENTORY.replace("WW_CLI_TEST_SECRET", "WW_CLI_TEST_UNSET_SECRET"))
    code, out, err = await ww("run", "-c", str(inv), "--listen", f"127.0.0.1:{free_port()}",
                              "--store", str(tmp_path / "s.db"))
    assert code == 2
    line = inv.read_text().splitlines().index(next(x for x in inv.read_text().splitlines() if "hmac_key_env" in x)) + 1
    assert err == (f"{inv}:{line}: alerting.receivers.hook.hmac_key_env: environment variable "
                   "WW_CLI_TEST_UNSET_SECRET is not set\n")
