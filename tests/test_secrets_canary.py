"""Canary test: every secret slot holds a unique string, wardwatch runs for real and fails with
each of them, and no canary comes out anywhere.

Real peers: net-snmp ``snmpd`` with a v3 user (wardwatch has the wrong auth and priv keys) and a
v2c community (wardwatch has the wrong one), exim with SMTP AUTH over STARTTLS (wrong password),
a webhook receiver checking HMAC signatures (wardwatch signs with the wrong key), a webhook and a
Telegram Bot API ``base_url`` on closed loopback ports (the bot token sits in the request URL
``/bot<TOKEN>/sendMessage``), a PKCS#12 file with another password, and ``dashboards push`` to a
closed port. Searched for every canary (and for its random part alone, which also catches an
encoded or cut copy): the whole log at debug level, /metrics (names, label values), every
/api/v1/* answer, /probe?debug=true (its module configuration includes the secrets), HTTP error
answers, the SLA and readiness reports, the store file, the CLI's output and its errors.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from tests.alerts.receivers import Receiver
from tests.peers import snmp as snmp_peer
from tests.peers.exim import exim
from tests.peers.pki import TestCA
from tests.peers.proc import free_port
from tests.peers.wardwatch import wardwatch_run
from tests.probes.test_certfile import write_p12

SLOTS = ("snmp_auth", "snmp_priv", "snmp_community", "smtp_password", "hook_key", "hook_key_dead",
         "bot_token", "p12_password", "grafana_token")


def canaries() -> dict[str, str]:
    # SNMPv3 keys need 8+ characters; the bot token has the Bot API's "<id>:<secret>" shape.
    out = {slot: f"CANARY-{slot.replace('_', '-')}-{secrets.token_hex(8)}" for slot in SLOTS}
    out["bot_token"] = f"7000000001:{out['bot_token']}"
    return out


def inventory(d: Path, agent: snmp_peer.Agent, c: dict[str, str], *, hook: str, dead: str, smtp_port: int,
              ca: Path, p12: Path) -> str:
    (d / "priv").write_text(c["snmp_priv"] + "\n")
    (d / "community").write_text(c["snmp_community"])
    (d / "hook-key").write_text(c["hook_key"])
    (d / "bot-token").write_text(c["bot_token"] + "\n")
    return f"""
province: 79
monitor:
  modules:
    snmp_v3: {{probe: snmp, v3_user: {snmp_peer.V3_USER}, auth_key_env: WW_CANARY_SNMP_AUTH,
               priv_key_file: {d / "priv"}, timeout: 2s}}
defaults: {{interval: 2s, timeout: 1s, rechecks: 1, recheck_spacing: 200ms}}
units:
  - code: 26506
    name: Phường Vũng Tàu
    type: phường
    link:
      address: 127.0.0.1
      snmp: {{version: 3, port: {agent.port}, user: {snmp_peer.V3_USER}, auth_protocol: sha,
             auth_key_env: WW_CANARY_SNMP_AUTH, priv_protocol: aes, priv_key_file: {d / "priv"}}}
  - code: 26536
    name: Phường Rạch Dừa
    type: phường
    link:
      address: 127.0.0.1
      snmp: {{version: 2c, port: {agent.port}, community_file: {d / "community"}}}
  - code: 25747
    name: Phường Thủ Dầu Một
    type: phường
    checks:
      - {{service: certs, probe: certfile, target: "{p12}", password_env: WW_CANARY_P12}}
alerting:
  language: en
  receivers:
    hook: {{type: webhook, url: "{hook}/hook", hmac_key_file: {d / "hook-key"}, timeout: 2s}}
    dead: {{type: webhook, url: "http://{dead}/hook", hmac_key_env: WW_CANARY_HOOK_DEAD, timeout: 1s}}
    mail: {{type: email, smarthost: "127.0.0.1:{smtp_port}", from: "wardwatch@ubnd.example.vn",
            to: ["noc@ubnd.example.vn"], username: wardwatch, password_env: WW_CANARY_SMTP, ca_file: {ca},
            timeout: 5s}}
    tg: {{type: telegram, chat_id: "-1001234567890", base_url: "http://{dead}", bot_token_file: {d / "bot-token"},
          timeout: 1s}}
  default_receivers: [hook, dead, mail, tg]
  delivery: {{backoff_initial: 200ms, backoff_max: 1s, tick: 200ms}}
"""


async def cli(*args: str) -> tuple[int, str]:
    """A wardwatch command; its exit status and everything it printed (stdout and stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as r:
        return r.status, await r.text()


async def notifications(http: aiohttp.ClientSession, base: str) -> list[dict[str, object]]:
    async with http.get(base + "/api/v1/alerts") as r:
        data = await r.json()
    return list(data["notifications"])


async def test_no_secret_comes_out_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: PLR0915
    c = canaries()
    env = {"WW_CANARY_SNMP_AUTH": c["snmp_auth"], "WW_CANARY_HOOK_DEAD": c["hook_key_dead"],
           "WW_CANARY_SMTP": c["smtp_password"], "WW_CANARY_P12": c["p12_password"]}
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the wardwatch children inherit them
    ca = TestCA(tmp_path / "pki")
    leaf = ca.issue("p12", ["p12.test"])
    p12 = write_p12(tmp_path / "unit.p12", leaf, ca, b"the-real-p12-password")
    receiver = Receiver(key="the-receivers-real-key")  # wardwatch signs with the canary: 401
    await receiver.start()
    dead = f"127.0.0.1:{free_port()}"  # nothing listens: refused
    texts: dict[str, str] = {}
    try:
        with snmp_peer.snmpd(tmp_path / "snmpd") as agent, exim(ca, auth=("wardwatch", "the-real-password")) as mta:
            inv = tmp_path / "inventory.yaml"
            inv.write_text(inventory(tmp_path, agent, c, hook=receiver.url, dead=dead, smtp_port=mta.port,
                                     ca=ca.bundle, p12=p12))
            async with wardwatch_run(tmp_path, inv, extra=("--log-level", "debug")) as w, \
                    aiohttp.ClientSession() as http:
                # Wait until every receiver has failed at least once with its canary in use.
                async with asyncio.timeout(60):
                    while True:
                        notes = await notifications(http, w.url)
                        failed = {str(n["receiver"]) for n in notes if n["last_error"]}
                        if {"dead", "mail", "tg"} <= failed and receiver.bad_signatures:
                            break
                        await asyncio.sleep(0.2)  # the outbox commits in its own thread: no event to await
                errors = {str(n["receiver"]): str(n["last_error"]) for n in notes if n["last_error"]}
                # The failures are the ones provoked, with the canaries really in use:
                assert "535" in errors["mail"], errors  # SMTP AUTH refused the canary password
                assert "/bot<secret>/sendMessage" in errors["tg"], errors  # the token was in the URL: scrubbed
                assert "Connect" in errors["dead"] or "refused" in errors["dead"].lower(), errors
                assert receiver.bad_signatures >= 1 and not receiver.requests  # HMAC made with the canary key
                assert "authenticator failed" in mta.log() or "535" in mta.log()

                async with asyncio.timeout(30):  # both snmp targets and the certificate file fail with a reason
                    while True:
                        status, body = await get(http, w.url + "/api/v1/targets")
                        rows = {(r["probe"], r["unit_code"]): r for r in json.loads(body)}
                        reasons = {k: rows[k]["reason"] for k in (("snmp", 26506), ("snmp", 26536),
                                                                  ("certfile", 25747))}
                        if all(reasons.values()):
                            break
                        await asyncio.sleep(0.2)  # polling the service's own API: no event to await
                assert reasons == {("snmp", 26506): "snmp_auth_error", ("snmp", 26536): "snmp_timeout",
                                   ("certfile", 25747): "cert_bad_password"}, reasons

                paths = ["/metrics", "/api/v1/targets", "/api/v1/alerts", "/api/v1/maintenance",
                         "/api/v1/wallboard", "/healthz", "/readyz", "/",
                         *(f"/api/v1/units/{u}" for u in (26506, 26536, 25747)),
                         f"/probe?module=snmp_v3&target=127.0.0.1:{agent.port}&debug=true",
                         f"/probe?module=snmp_v3&target=127.0.0.1:{agent.port}",
                         f"/probe?module=snmp&target=127.0.0.1:{agent.port}&debug=true",
                         f"/probe?module=certfile&target={p12}&debug=true",
                         # error answers, with the canary as the (rejected) input itself
                         f"/probe?module=snmp_v3&target={c['snmp_auth']}",
                         f"/api/v1/units/{c['snmp_priv']}", f"/api/v1/targets?unit_code={c['snmp_community']}",
                         f"/probe?module={c['bot_token']}&target=x"]
                for path in paths:
                    status, body = await get(http, w.url + path)
                    texts[f"GET {path} ({status})"] = body
                debug = texts[f"GET {paths[11]} (200)"]
                assert '"auth_key": "<secret>"' in debug and '"priv_key": "<secret>"' in debug
                async with http.post(w.url + "/-/reload") as r:
                    texts["POST /-/reload"] = await r.text()
                for args in (("alerts", "list", "--url", w.url, "--json"), ("maintenance", "list", "--url", w.url)):
                    texts[" ".join(args[:2])] = (await cli(*args))[1]
                texts["report readiness --url"] = (await cli(
                    "report", "readiness", "-c", str(inv), "--url", w.url, "-o", "-", "--format", "csv"))[1]
            texts["wardwatch run log (debug)"] = w.log.read_text(errors="replace")

        today = datetime.now(UTC).date()
        for fmt in ("json", "csv", "html"):
            out = tmp_path / f"sla.{fmt}"
            rc, printed = await cli("report", "sla", "-c", str(inv), "--store", str(tmp_path / "wardwatch.db"),
                                    "--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=1)),
                                    "-o", str(out))
            assert rc == 0, printed
            texts[f"report sla {fmt}"] = printed + out.read_text(errors="replace")
        texts["store file"] = (tmp_path / "wardwatch.db").read_bytes().decode("latin-1")

        # One-shot commands at debug level: a failing v3 poll, and a Grafana push to a closed port.
        rc, texts["check snmp (debug, json logs)"] = await cli(
            "check", "snmp", f"127.0.0.1:{free_port()}", "--v3-user", "noc", "--auth-key-env", "WW_CANARY_SNMP_AUTH",
            "--priv-key-file", str(tmp_path / "priv"), "--timeout", "1", "--log-level", "debug", "--log-format", "json")
        assert rc == 1
        token = tmp_path / "grafana-token"
        token.write_text(c["grafana_token"])
        rc, texts["dashboards push (closed port, debug)"] = await cli(
            "--log-level", "debug", "dashboards", "push", "--url", f"http://{dead}", "--token-file", str(token),
            "--timeout", "2")
        assert rc == 2 and "unreachable" in texts["dashboards push (closed port, debug)"]
        rc, texts["check snmp (missing env var)"] = await cli(
            "check", "snmp", f"127.0.0.1:{free_port()}", "--v3-user", "noc", "--auth-key-env", "WW_CANARY_UNSET")
        assert rc == 1 and "WW_CANARY_UNSET is not set" in texts["check snmp (missing env var)"]
    finally:
        await receiver.stop()

    assert len(texts) > 25
    leaks = [
        f"{slot} in {where}"
        for slot, value in c.items()
        for where, text in texts.items()
        if value in text or value.rsplit("-", 1)[1] in text
    ]
    assert leaks == [], "\n".join(leaks)
