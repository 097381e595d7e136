"""Notifier and alert health on /metrics, from a real `wardwatch run`: one receiver that answers,
one that is down; what the NOC dashboard's "notifiers" panels and an alert on them read."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
import yarl

from tests.alerts.receivers import Receiver
from tests.peers.proc import free_port
from tests.peers.promtool import check_metrics
from tests.peers.wardwatch import wardwatch_run

REFUSED = f"127.0.0.1:{free_port()}"  # nothing listens: probes refused at once, deliveries fail


def inventory(good: str) -> str:
    return f"""
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
    good: {{type: webhook, url: "{good}/hook"}}
    dead: {{type: webhook, url: "http://{REFUSED}/hook"}}
  default_receivers: [good, dead]
  delivery: {{tick: 200ms, backoff_initial: 200ms, backoff_max: 1s}}
"""


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(("wardwatch_notifications_total", "wardwatch_outbox_pending", "wardwatch_alerts")):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def test_delivery_results_pending_and_alert_states_on_metrics(tmp_path: Path) -> None:
    good = Receiver()
    await good.start()
    inv = tmp_path / "inv.yaml"
    inv.write_text(inventory(good.url))
    try:
        async with wardwatch_run(tmp_path, inv) as w, aiohttp.ClientSession() as http:

            async def scrape() -> tuple[str, dict[str, float]]:
                async with http.get(f"{w.url}/metrics") as r:
                    text = await r.text()
                return text, samples(text)

            delivered = 'wardwatch_notifications_total{receiver="good",result="delivered"}'
            failed = 'wardwatch_notifications_total{receiver="dead",result="failed"}'
            active = 'wardwatch_alerts{severity="page",state="active"}'
            deadline = time.monotonic() + 30
            while True:  # three refused probes open the page; then one delivery and the retries
                text, s = await scrape()
                if s.get(delivered, 0) >= 1 and s.get(failed, 0) >= 2:
                    break
                assert time.monotonic() < deadline, s
                await good.wait_for(1, within=30)  # the page delivered; the dead one's retries are polled
                await asyncio.sleep(0.2)
            assert s[active] == 1 and s['wardwatch_alerts{severity="page",state="acked"}'] == 0
            assert s['wardwatch_outbox_pending{receiver="dead"}'] == 1  # the page, retried
            assert s['wardwatch_outbox_pending{receiver="good"}'] == 0
            assert s['wardwatch_notifications_total{receiver="good",result="failed"}'] == 0
            assert s['wardwatch_notifications_total{receiver="dead",result="delivered"}'] == 0
            code, out = check_metrics(text)
            assert code == 0, out

            # Acknowledged: the same alert, now counted as acked.
            async with http.get(f"{w.url}/api/v1/alerts") as r:
                (alert,) = (await r.json())["alerts"]
            ack_url = yarl.URL(f"{w.url}/api/v1/alerts/{quote(alert['id'], safe='')}/ack", encoded=True)
            async with http.post(ack_url, json={"by": "Lan"}) as r:
                assert r.status == 200, await r.text()
            _, s = await scrape()
            assert s[active] == 0 and s['wardwatch_alerts{severity="page",state="acked"}'] == 1
            retried = s[failed]
            deadline = time.monotonic() + 10
            while s[failed] == retried:  # the dead receiver is still retried, and counted
                assert time.monotonic() < deadline, s
                await asyncio.sleep(0.2)
                _, s = await scrape()
    finally:
        await good.stop()
    assert json.loads(good.requests[0].body)["alert"]["kind"] == "target_down"
