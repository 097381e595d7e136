"""A real Prometheus on loopback scraping wardwatch, evaluating alerts/rules, sending to an
Alertmanager; and the test-time rendering of the shipped rules with shortened `for:`.

The shipped rules are written for a 30 s probe interval and 15 s scrape/evaluation intervals.
A test running everything 15 times faster (probe 2 s, scrape 1 s) renders them with
``render_rules(scale=2/30)``: every `for:` is multiplied by the scale and nothing else changes
(expressions, labels, annotations and range windows are the shipped ones).
"""

from __future__ import annotations

import contextlib
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.peers.proc import free_port, require, running

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "alerts" / "rules"

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
             "y": 31_536_000_000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def parse_duration(text: str) -> int:
    """A Prometheus duration ("1h30m", "30s", "250ms") in milliseconds."""
    text = str(text).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNITS_MS[u] for n, u in parts)


def render_rules(dst: Path, *, scale: float, src: Path = RULES) -> list[Path]:
    """Copies of the rule files in ``src`` with every `for:` multiplied by ``scale``."""
    dst.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for path in sorted(src.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                if "for" in rule:
                    rule["for"] = f"{max(1, round(parse_duration(rule['for']) * scale))}ms"
        target = dst / path.name
        target.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
        out.append(target)
    return out


@dataclass(frozen=True)
class Prometheus:
    url: str
    port: int
    log: Path


def config(
    *,
    scrape_targets: Sequence[str],
    alertmanagers: Sequence[str],
    rule_files: Sequence[Path],
    scrape_interval: str,
    evaluation_interval: str,
    job: str = "wardwatch",
) -> str:
    doc: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(p) for p in rule_files],
        "alerting": {"alertmanagers": [{"api_version": "v2", "static_configs": [{"targets": list(alertmanagers)}]}]},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(scrape_targets)}]}],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _ready(url: str, timeout: float, proc: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode} before it was ready")
        with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(
            url + "/-/ready", timeout=1
        ) as resp:
            if resp.status == 200:
                return
        time.sleep(0.02)  # no readiness event to await: a process on its own port
    raise TimeoutError(f"{url} not ready after {timeout}s")


@contextlib.contextmanager
def prometheus(tmp: Path, config_text: str, *, ready_timeout: float = 20.0) -> Iterator[Prometheus]:
    """Prometheus on a free loopback port, its TSDB under ``tmp``."""
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "prometheus.yml"
    cfg.write_text(config_text)
    port = free_port()
    log = tmp / "prometheus.log"
    argv = [
        require("prometheus"),
        f"--config.file={cfg}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with running(argv, log) as proc:
        url = f"http://127.0.0.1:{port}"
        _ready(url, ready_timeout, proc)
        yield Prometheus(url, port, log)


async def query(prom_url: str, expr: str) -> list[dict[str, Any]]:
    """An instant query: the result vector ([{"metric": {...}, "value": [t, "v"]}, ...])."""
    async with aiohttp.ClientSession() as http, http.get(
        f"{prom_url}/api/v1/query", params={"query": expr}
    ) as resp:
        body = await resp.json()
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


async def alerts(prom_url: str) -> list[dict[str, Any]]:
    """Prometheus' own view of its alerts (pending and firing)."""
    async with aiohttp.ClientSession() as http, http.get(f"{prom_url}/api/v1/alerts") as resp:
        body = await resp.json()
        result: list[dict[str, Any]] = body["data"]["alerts"]
        return result
