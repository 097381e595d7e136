"""The command line as a user meets it: real processes, real peers, no tracebacks."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.peers.blackbox import IpNginx, ip_nginx  # noqa: F401 - fixture
from tests.peers.proc import free_port
from tests.peers.promtool import check_metrics

WARDWATCH = [sys.executable, "-m", "monitor"]


async def wardwatch(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *WARDWATCH, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def listener() -> AsyncIterator[int]:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_check_json_success_and_failure_exit_codes(listener: int) -> None:
    rc, out, err = await wardwatch("check", "tcp", f"127.0.0.1:{listener}", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert set(doc) >= {"success", "reason", "duration_seconds", "metrics"}
    assert doc["success"] is True and doc["reason"] is None
    assert doc["metrics"]["probe_success"] == 1 and doc["metrics"]["probe_ip_protocol"] == 4

    closed = free_port()
    rc, out, _ = await wardwatch("check", "tcp", f"127.0.0.1:{closed}", "--json", "--timeout", "2")
    doc = json.loads(out)
    assert rc == 1 and doc["success"] is False and doc["reason"] == "refused"
    assert doc["metrics"]["probe_success"] == 0

    rc, out, _ = await wardwatch("check", "tcp", f"127.0.0.1:{closed}")
    assert rc == 1 and out.startswith("FAIL") and "refused" in out


async def test_check_https_with_ca_file(ip_nginx: IpNginx) -> None:  # noqa: F811
    url = ip_nginx.url(ip_nginx.valid)
    rc, out, err = await wardwatch("check", "http", url, "--ca-file", str(ip_nginx.ca.bundle), "--json")
    assert rc == 0, out + err
    m = json.loads(out)["metrics"]
    assert m["probe_http_status_code"] == 200 and m["probe_http_ssl"] == 1
    assert m['probe_http_duration_seconds{phase="tls"}'] > 0
    # Without the CA the same server is untrusted: verification is on by default.
    rc, out, _ = await wardwatch("check", "http", url, "--json")
    assert rc == 1 and json.loads(out)["reason"] == "tls_untrusted"


@pytest.mark.parametrize(
    "args",
    [
        ("check", "http", "http://127.0.0.1/", "--valid-status-codes", "abc"),
        ("check", "http", "http://127.0.0.1/", "--fail-if-body-matches-regexp", "("),
        ("check", "nosuchkind", "x"),
        ("check", "tcp", "127.0.0.1:1", "--timeout", "-1"),
        ("run", "-c", "/nonexistent/inventory.yaml"),
        ("run", "-c", "x.yaml", "--shard", "4/3"),
    ],
)
async def test_bad_input_is_a_clear_usage_error(args: tuple[str, ...]) -> None:
    rc, out, err = await wardwatch(*args)
    assert rc == 2
    assert "Traceback" not in out + err
    assert err.strip()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--shard", "1/2", "--replicas", "3"), "--replicas 3 needs at least 3 instances, but --shard 1/2"),
        (("--replicas", "0"), "--replicas: must be at least 1 (got 0)"),
        (("--replicas", "two"), "--replicas: expected a whole number of instances, got 'two'"),
        (("--vantage", "hcm dc1"), "--vantage: vantage must be"),
    ],
)
async def test_run_refuses_impossible_placement(args: tuple[str, ...], says: str, tmp_path: Path) -> None:
    inv = inventory(tmp_path / "inv.yaml", [9])
    rc, out, err = await wardwatch("run", "-c", str(inv), "--store", str(tmp_path / "w.db"), *args)
    assert rc == 2 and "Traceback" not in out + err
    assert says in err, err
    assert not (tmp_path / "w.db").exists()  # refused before anything started


def inventory(path: Path, ports: list[int]) -> Path:
    checks = "\n".join(f"      - {{service: vc_gov, probe: tcp, target: '127.0.0.1:{p}'}}" for p in ports)
    path.write_text(
        f"""province: 79
defaults:
  interval: 2s
  timeout: 1s
  rechecks: 1
  recheck_spacing: 200ms
  templates: {{portal: null, email: null}}
units:
  - code: 26506
    name: Phường Vũng Tàu
    type: phường
    checks:
{checks}
""",
        encoding="utf-8",
    )
    return path


class Service:
    def __init__(self, proc: asyncio.subprocess.Process, base: str) -> None:
        self.proc, self.base = proc, base
        self.log: list[str] = []

    async def wait_log(self, needle: str, within: float = 20) -> str:
        assert self.proc.stderr is not None
        async with asyncio.timeout(within):
            while True:
                line = (await self.proc.stderr.readline()).decode()
                if not line:
                    raise AssertionError(f"wardwatch exited before logging {needle!r}: {self.log}")
                self.log.append(line)
                if needle in line:
                    return line


@pytest.fixture
async def service(tmp_path: Path, listener: int) -> AsyncIterator[Service]:
    port = free_port()
    inv = inventory(tmp_path / "inv.yaml", [listener])
    proc = await asyncio.create_subprocess_exec(
        *WARDWATCH, "run", "-c", str(inv), "--listen", f"127.0.0.1:{port}", "--store", str(tmp_path / "s.db"),
        "--log-format", "json", stderr=asyncio.subprocess.PIPE,
    )
    svc = Service(proc, f"http://127.0.0.1:{port}")
    try:
        yield svc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_run_serves_reloads_and_stops_cleanly(service: Service, tmp_path: Path, listener: int) -> None:
    line = await service.wait_log("watching")
    assert json.loads(line)["level"] == "info"  # --log-format json: one object per line
    assert any("gc after start-up" in x for x in service.log)  # monitor/gcpolicy.py, at start
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(20):
            while True:  # readiness is a property of another process: poll it, briefly
                async with http.get(service.base + "/readyz") as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.1)
        await service.wait_log("gc after the first round")  # every target probed: its state is long-lived too
        async with http.get(service.base + "/metrics") as r:
            text = await r.text()
        rc, lint = check_metrics(text)
        assert rc == 0 and lint == "", lint
        assert 'probe_success{province="79",unit_code="26506",unit="Phường Vũng Tàu",service="vc_gov"' in text

        inv = tmp_path / "inv.yaml"
        good = inv.read_text(encoding="utf-8")
        inv.write_text(good + "  - {code: 26506, name: again}\n", encoding="utf-8")
        assert service.proc.pid
        service.proc.send_signal(signal.SIGHUP)
        refused = json.loads(await service.wait_log("reload refused"))
        assert "duplicate unit code" in refused["msg"] and str(inv) in refused["msg"]
        async with http.get(service.base + "/api/v1/targets") as r:
            assert len(await r.json()) == 1  # the running inventory was kept

        extra = free_port()
        inventory(inv, [listener, extra])
        async with http.post(service.base + "/-/reload") as r:
            assert r.status == 200, await r.text()
        await service.wait_log("gc after a reload")  # again: the new inventory is long-lived
        async with http.get(service.base + "/api/v1/targets") as r:
            assert sorted(t["target"] for t in await r.json()) == sorted(
                [f"127.0.0.1:{listener}", f"127.0.0.1:{extra}"]
            )
        async with http.get(service.base + "/metrics") as r:
            text = await r.text()
        assert 'wardwatch_inventory_reloads_total{result="failure"} 1' in text
        assert 'wardwatch_inventory_reloads_total{result="success"} 1' in text

    service.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(service.proc.wait(), 15) == 0
    rest = await service.proc.stderr.read() if service.proc.stderr else b""
    assert "Traceback" not in "".join(service.log) + rest.decode()


async def test_run_refuses_an_invalid_inventory_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("province: 79\nunits:\n  - code: 26506\n    name: x\n    type: phường\n    colour: red\n")
    rc, out, err = await wardwatch("run", "-c", str(bad), "--store", str(tmp_path / "s.db"))
    assert rc == 2 and "Traceback" not in err
    assert f"{bad}:6: unit 26506: colour:" in err
