"""A real `wardwatch run --web-config` over TLS with basic auth and roles: who gets what on every
endpoint, the wallboard's event stream through auth, and a real Prometheus scraping /metrics with
tls_config + basic_auth (exporter-toolkit compatibility, as a Prometheus user would configure it)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import yaml

from tests.peers import prometheus as prom
from tests.peers.pki import Issued, TestCA
from tests.peers.wardwatch import Wardwatch, wardwatch_run

HOST = "127.0.0.1"
PASSWORDS = {"prometheus": "scrape-pw", "alice": "alice-pw", "bob": "bob-pw"}
REALM = 'Basic realm="wardwatch", charset="UTF-8"'


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


NOBODY: dict[str, str] = {}
ALICE = basic("alice", PASSWORDS["alice"])  # admin
BOB = basic("bob", PASSWORDS["bob"])  # read-only


@dataclass
class Stack:
    ww: Wardwatch
    http: aiohttp.ClientSession
    ca: TestCA
    client: Issued
    listener: int
    tmp: Path
    web: Path


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    ca = TestCA(tmp_path / "pki", "wardwatch web CA")
    server = ca.issue("server", [HOST])
    client = ca.issue("prometheus", ["prometheus"])
    users = "\n".join(
        f"  {u}: {bcrypt.hashpw(p.encode(), bcrypt.gensalt(10)).decode()}" for u, p in PASSWORDS.items()
    )
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n"
        f"  cert_file: {server.cert}\n  key_file: {server.key}\n"
        f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {ca.bundle}\n"
        f"basic_auth_users:\n{users}\n"
        # This test sends ~100 requests in a few seconds from one address: above the default limit.
        "wardwatch:\n  roles: {alice: admin}\n  api_rate_limit: {requests_per_second: 100, burst: 500}\n",
        encoding="utf-8",
    )

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    target = await asyncio.start_server(handle, HOST, 0)
    listener = target.sockets[0].getsockname()[1]
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        "province: 79\ndefaults: {interval: 2s, timeout: 1s, rechecks: 0, templates: {portal: null, email: null}}\n"
        "units:\n  - code: 26506\n    name: Phường Vũng Tàu\n    type: phường\n    checks:\n"
        f"      - {{service: vc_gov, probe: tcp, target: '{HOST}:{listener}'}}\n",
        encoding="utf-8",
    )
    tls = ssl.create_default_context(cafile=str(ca.bundle))
    try:
        extra = ("--web-config", str(web), "--public-status")
        async with wardwatch_run(tmp_path / "ww", inv, tls=tls, extra=extra) as ww, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as http:
            yield Stack(ww, http, ca, client, listener, tmp_path, web)
    finally:
        target.close()
        await target.wait_closed()


async def status(s: Stack, method: str, path: str, headers: dict[str, str], **kw: object) -> int:
    async with s.http.request(method, s.ww.url + path, headers=headers, **kw) as r:  # type: ignore[arg-type]
        await r.read()
        if r.status == 401:
            assert r.headers["WWW-Authenticate"] == REALM
        return r.status


async def test_roles_on_every_endpoint(stack: Stack) -> None:
    s = stack
    assert s.ww.url.startswith("https://")
    # Open: orchestrators' probes and the public status page with its assets.
    for path in ("/healthz", "/readyz", "/public", "/public/status.json", "/public/public.js"):
        assert await status(s, "GET", path, NOBODY) == 200, path

    reads = ["/metrics", f"/probe?module=tcp&target={HOST}:{s.listener}", "/api/v1/targets", "/api/v1/alerts",
             "/api/v1/maintenance", "/api/v1/wallboard", "/api/v1/units/26506", "/", "/static/wallboard.js",
             "/nonexistent"]
    for path in reads:
        assert await status(s, "GET", path, NOBODY) == 401, path
        assert await status(s, "GET", path, basic("bob", "wrong")) == 401, path
        assert await status(s, "GET", path, basic("mallory", "bob-pw")) == 401, path
        want = 404 if path == "/nonexistent" else 200
        assert await status(s, "GET", path, BOB) == want, path
        assert await status(s, "GET", path, ALICE) == want, path
    async with s.http.get(s.ww.url + f"/probe?module=tcp&target={HOST}:{s.listener}", headers=BOB) as r:
        assert "probe_success 1" in await r.text()

    window = {"unit_code": 26506, "from": "2030-01-01T00:00:00Z", "to": "2030-01-01T01:00:00Z", "reason": "test"}
    writes: list[tuple[str, str, dict[str, object]]] = [
        ("POST", "/-/reload", {}), ("PUT", "/-/reload", {}),
        ("POST", "/api/v1/alerts/no-such-alert/ack", {"json": {"by": "test"}}),
        ("POST", "/api/v1/maintenance", {"json": window}),
        ("DELETE", "/api/v1/maintenance/no-such-window", {}),
    ]
    for method, path, kw in writes:
        assert await status(s, method, path, NOBODY, **kw) == 401, path
        assert await status(s, method, path, basic("alice", "wrong"), **kw) == 401, path
        assert await status(s, method, path, BOB, **kw) == 403, path
    async with s.http.post(s.ww.url + "/-/reload", headers=BOB) as r:
        assert "needs the admin role" in await r.text()
    assert [await status(s, m, p, ALICE, **kw) for m, p, kw in writes] == [200, 200, 404, 201, 404]
    async with s.http.get(s.ww.url + "/api/v1/maintenance", headers=BOB) as r:
        windows = (await r.json())["windows"]
    assert [w["reason"] for w in windows] == ["test"]  # the admin's POST went through; bob's did not
    assert await status(s, "DELETE", f"/api/v1/maintenance/{windows[0]['id']}", BOB) == 403
    assert await status(s, "DELETE", f"/api/v1/maintenance/{windows[0]['id']}", ALICE) == 200

    # A chunked body (no Content-Length) over the limit is refused when read.
    async def big() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield b" " * 4096

    assert await status(s, "POST", "/api/v1/maintenance", ALICE, data=big()) == 413


async def test_wallboard_event_stream_through_auth(stack: Stack) -> None:
    s = stack
    assert await status(s, "GET", "/api/v1/events", NOBODY) == 401
    async with asyncio.timeout(10), s.http.get(s.ww.url + "/api/v1/events", headers=BOB) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        seen = b""
        while b"event: hello" not in seen:
            seen += await r.content.readany()
    # The page itself, as the browser gets it once the user has logged in.
    async with s.http.get(s.ww.url + "/", headers=BOB) as r:
        assert r.status == 200 and "/api/v1/events" in (await r.text() + await _script(s))


async def _script(s: Stack) -> str:
    async with s.http.get(s.ww.url + "/static/wallboard.js", headers=BOB) as r:
        return await r.text()


async def _until_up(prom_url: str, job: str, within: float) -> float:
    deadline = time.monotonic() + within
    last: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        last = await prom.query(prom_url, f'up{{job="{job}"}}')
        if last and last[0]["value"][1] in ("0", "1"):  # type: ignore[index]
            return float(last[0]["value"][1])  # type: ignore[index]
        await asyncio.sleep(0.2)  # Prometheus has no push to await
    raise AssertionError(f"no up{{job={job!r}}} after {within}s: {last}")


async def test_real_prometheus_scrapes_over_tls_with_basic_auth(stack: Stack) -> None:
    s = stack
    pw_file = s.tmp / "prometheus.pw"
    pw_file.write_text(PASSWORDS["prometheus"])
    tls = {"ca_file": str(s.ca.bundle), "cert_file": str(s.client.cert), "key_file": str(s.client.key)}
    targets = [{"targets": [s.ww.listen]}]
    cfg = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "wardwatch", "scheme": "https", "tls_config": tls,
             "basic_auth": {"username": "prometheus", "password_file": str(pw_file)}, "static_configs": targets},
            {"job_name": "wrong_password", "scheme": "https", "tls_config": tls,
             "basic_auth": {"username": "prometheus", "password": "guess"}, "static_configs": targets},
            {"job_name": "no_auth", "scheme": "https", "tls_config": tls, "static_configs": targets},
            {"job_name": "plain_http", "static_configs": targets},
        ],
    }
    with prom.prometheus(s.tmp / "prom", yaml.safe_dump(cfg)) as p:
        assert await _until_up(p.url, "wardwatch", 30) == 1.0
        series = await prom.query(p.url, 'probe_success{job="wardwatch",service="vc_gov"}')
        assert [x["value"][1] for x in series] == ["1"]
        for job in ("wrong_password", "no_auth", "plain_http"):
            assert await _until_up(p.url, job, 30) == 0.0, job


async def test_sighup_rereads_the_web_config(stack: Stack) -> None:
    s = stack
    carol = bcrypt.hashpw(b"carol-pw", bcrypt.gensalt(4)).decode()
    assert await status(s, "GET", "/api/v1/targets", basic("carol", "carol-pw")) == 401
    text = s.web.read_text().replace("basic_auth_users:\n", f"basic_auth_users:\n  carol: {carol}\n")
    s.web.write_text(text.replace("roles: {alice: admin}", "roles: {alice: admin, carol: admin}"))
    os.kill(s.ww.pid, signal.SIGHUP)
    deadline = time.monotonic() + 15
    while await status(s, "GET", "/api/v1/targets", basic("carol", "carol-pw")) != 200:
        assert time.monotonic() < deadline, "carol never got in after SIGHUP"
        await asyncio.sleep(0.1)  # the reload runs in another process: poll its effect
    assert await status(s, "POST", "/-/reload", basic("carol", "carol-pw")) == 200


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_cli_reaches_a_secured_service_through_the_environment(stack: Stack) -> None:
    s = stack
    ca = {"WARDWATCH_API_CA_FILE": str(s.ca.bundle)}
    rc, out = await _cli("maintenance", "list", "--url", s.ww.url, env=ca)
    assert rc == 1 and "needs a user and password: set WARDWATCH_API_USER" in out and "Traceback" not in out
    bob = {**ca, "WARDWATCH_API_USER": "bob", "WARDWATCH_API_PASSWORD": PASSWORDS["bob"]}
    rc, out = await _cli("maintenance", "list", "--url", s.ww.url, env=bob)
    assert rc == 0, out
    add = ("maintenance", "add", "--url", s.ww.url, "--unit", "26506", "--from", "2030-01-01T00:00:00Z",
           "--to", "2030-01-01T01:00:00Z", "--reason", "cli")
    rc, out = await _cli(*add, env=bob)
    assert rc == 1 and "needs the admin role" in out, out
    alice = {**ca, "WARDWATCH_API_USER": "alice", "WARDWATCH_API_PASSWORD": PASSWORDS["alice"]}
    rc, out = await _cli(*add, env=alice)
    assert rc == 0, out
    rc, out = await _cli("maintenance", "list", "--url", s.ww.url, env=bob)
    assert rc == 0 and "cli" in out, out
    rc, out = await _cli("maintenance", "list", "--url", s.ww.url, env={})  # the CA not given: untrusted
    assert rc == 2 and "cannot reach wardwatch" in out and "Traceback" not in out, out
