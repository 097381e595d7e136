"""The status wallboard, end to end: a real lab, a real ``wardwatch run`` against it, and Debian's
headless Chromium driven by selenium + chromedriver.

One lab and one monitor serve the whole module (child processes, like production). The browser
test asserts one tile per lab unit, search without diacritics, a lab fault turning the unit's tile
down within one interval plus its re-checks (live, over server-sent events), the drill-down, the
language toggle, no console errors and no failed requests; it saves screenshots to
``$WARDWATCH_ARTIFACTS`` (default ``artifacts/``): wallboard.png (1920x1080),
wallboard-unit.png (the drill-down) and wallboard-phone.png (412x915).
scripts/screenshots.sh copies them to docs/ for the README.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from monitor import wallboard
from monitor.engine import Entry
from monitor.inventory import load_inventory
from monitor.state import Change, State, Status
from monitor.targets import Target
from probes import registry
from probes.base import ProbeResult, Reason, Sample
from tests.peers.proc import free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

# Phường Vũng Tàu is the 37th unit of the lab's plan (province 79 first, official order).
UNITS = 37
SEARCH_UNIT = 26506
INTERVAL, TIMEOUT, RECHECKS, SPACING = 5.0, 2.0, 1, 0.5
# One interval, plus the re-checks and their timeouts, plus the SSE coalescing and scheduling slack.
FAULT_BUDGET = INTERVAL + RECHECKS * (TIMEOUT + SPACING) + 0.3 + 3.0


def needs_browser(test: Any) -> Any:
    """A browser test fails (never skips) when the test setup did not install the browser."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for path in (CHROMIUM, CHROMEDRIVER):
            if not os.path.exists(path):
                pytest.fail(f"{path} is missing: run scripts/setup-test-env.sh (Debian chromium, chromium-driver)")
        return test(*args, **kwargs)

    return wrapper


# -- pure summaries ---------------------------------------------------------------------------


def _entry(code: int, service: str, state: State, *, quality: float | None = None, target: str = "x") -> Entry:
    t = Target(79, code, f"Phường {code}", service, "icmp", target, registry.get("icmp").config())
    samples = (Sample("wardwatch_link_quality", quality),) if quality is not None else ()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return Entry(t, status=Status(state, at), last=ProbeResult(state is State.UP, None, "", 0.01, samples))


def test_worst_state_wins_and_a_degraded_link_shows() -> None:
    assert wallboard.worst(["up", "unknown", "degraded", "unreachable", "down"]) == "down"
    assert wallboard.worst(["up", "unknown", "degraded", "unreachable"]) == "unreachable"
    assert wallboard.worst(["up", "unknown", "degraded"]) == "degraded"
    assert wallboard.worst(["up", "unknown"]) == "unknown"
    assert wallboard.worst([]) == "unknown"
    entries = [_entry(1, "link", State.UP, quality=1, target="a"), _entry(1, "portal", State.UP, target="b"),
               _entry(1, "portal", State.UNKNOWN, target="c")]
    u = wallboard.unit_summary(1, "Phường 1", "phường", entries)
    assert u["worst"] == "degraded" and u["services"] == {"link": "degraded", "portal": "unknown"}
    assert u["counts"] == {"degraded": 1, "up": 1, "unknown": 1}


def test_public_summary_hides_unreachable_and_everything_internal() -> None:
    engine = SimpleNamespace(
        entries={e.target.key: e for e in (_entry(1, "link", State.DOWN, target="127.0.0.1"),
                                           _entry(1, "portal", State.UNREACHABLE, target="127.0.0.2"))},
        inventory=SimpleNamespace(units=[SimpleNamespace(code=1, name="Phường Một", type="phường")]),
    )
    idx = wallboard.index(engine, wallboard.UnitIndex())
    data = wallboard.public_board(engine, idx, datetime(2026, 1, 1, tzinfo=UTC))
    assert data["units"] == [{"code": 1, "name": "Phường Một", "worst": "down",
                              "services": {"link": "down", "portal": "down"}}]


async def test_state_changes_reach_subscribers_coalesced_per_unit() -> None:
    a, b = _entry(1, "link", State.UP, target="a"), _entry(2, "link", State.UP, target="b")
    engine = SimpleNamespace(entries={a.target.key: a, b.target.key: b}, listeners=[],
                             inventory=SimpleNamespace(units=[]))
    hub = wallboard.Hub(engine, wallboard.UnitIndex())
    hub.attach()
    q: asyncio.Queue[bytes | None] = asyncio.Queue()
    hub.subscribers.add(q)
    a.status = Status(State.DOWN, datetime(2026, 1, 1, tzinfo=UTC))
    change = Change(State.UP, State.DOWN, datetime(2026, 1, 1, tzinfo=UTC), None, "")
    for listener in engine.listeners:
        listener(a, change)
        listener(a, change)
    event = await asyncio.wait_for(q.get(), 2)
    assert event is not None and event.startswith(b"event: units\ndata: ")
    units = json.loads(event.split(b"data: ", 1)[1])["units"]
    assert [(u["code"], u["worst"]) for u in units] == [(1, "down")]  # once, and only the unit that changed
    assert q.empty()
    hub.detach()
    assert await q.get() is None and engine.listeners == []


@dataclass
class Stack:
    base: str
    lab_dir: Path
    inventory: Any


class _Lines:
    """A child's output, read by a thread so waiting for a line can be bounded."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        assert proc.stdout is not None
        self._out = proc.stdout
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with self._out:  # closed at EOF (the child exited), so no pipe is left to the GC
            for line in self._out:
                with self._cond:
                    self.lines.append(line)
                    self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: any(text in line for line in self.lines), timeout)
        assert ok, f"no {text!r} within {timeout}s:\n" + "".join(self.lines)


def _get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    tmp = Path(tempfile.mkdtemp(prefix="wardwatch-wallboard-"))
    lab_dir = tmp / "lab"
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kinds = ("https", "http", "smtp", "vc", "dns", "sip", "stun", "snmp")
    ports = [a for kind in kinds for a in (f"--{kind}-port", "0")]
    lab = subprocess.Popen(
        [sys.executable, "-m", "monitor", "lab", "--units", str(UNITS), "--dir", str(lab_dir), *ports,
         "--nft-table", f"wardwatch_wallboard_{os.getpid()}", "--interval", f"{INTERVAL}s", "--timeout", f"{TIMEOUT}s",
         "--rechecks", str(RECHECKS), "--recheck-spacing", f"{SPACING}s"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp,
    )
    run: subprocess.Popen[str] | None = None
    outputs = [_Lines(lab)]
    try:
        outputs[0].wait_for("lab: ready", 60)
        run = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(lab_dir / "lab-inventory.yaml"),
             "--listen", f"127.0.0.1:{port}", "--store", str(tmp / "wardwatch.db"), "--public-status",
             "--loop", "asyncio"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp,
        )
        run_out = _Lines(run)
        outputs.append(run_out)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(f"{base}/readyz", 2)[0] == 200:
                    break
            except OSError:
                pass
            assert run.poll() is None and time.monotonic() < deadline, "".join(run_out.lines)
            time.sleep(0.3)
        yield Stack(base, lab_dir, load_inventory(lab_dir / "lab-inventory.yaml"))
        assert "Traceback" not in "".join(run_out.lines), "".join(run_out.lines)
    finally:
        if run is not None:
            _stop(run)
        _stop(lab)
        for out in outputs:
            out.thread.join(10)
        shutil.rmtree(tmp, ignore_errors=True)


def _fault(stack: Stack, code: int, service: str, mode: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "monitor", "lab", "fault", str(code), service, mode, "--lab-dir", str(stack.lab_dir)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


async def test_public_page_is_off_by_default_and_alerts_absent_without_alerting() -> None:
    from aiohttp import ClientSession, web
    from aiohttp.test_utils import TestServer

    engine = SimpleNamespace(entries={}, listeners=[], inventory=SimpleNamespace(units=[
        SimpleNamespace(code=7, name="Xã Bảy", type="xã")]))
    app = web.Application()
    wallboard.register(app, engine)
    async with TestServer(app) as server, ClientSession() as http:
        for path in ("/public", "/public/status.json", "/public/public.js"):
            async with http.get(server.make_url(path)) as r:
                assert r.status == 404, path
        async with http.get(server.make_url("/api/v1/wallboard")) as r:
            data = await r.json()
        assert data["alerts"] is None  # the page then hides the alerts panel and fetches nothing
        assert data["units"] == [{"code": 7, "name": "Xã Bảy", "type": "xã", "worst": "unknown", "since": None,
                                  "services": {}, "counts": {}}]
        engine.inventory.monitor = SimpleNamespace(public_status=True)  # the inventory setting (reload-aware)
        async with http.get(server.make_url("/public/status.json")) as r:
            assert r.status == 200
        engine.inventory.monitor = SimpleNamespace(public_status=False)
        wallboard.settings(app).public = True  # wardwatch run --public-status
        async with http.get(server.make_url("/public")) as r:
            assert r.status == 200
    assert engine.listeners == []  # unsubscribed on shutdown


# -- the API and the public page (no browser) -------------------------------------------------


IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")


@pytest.mark.slow
def test_api_summarises_every_unit_and_drills_down(stack: Stack) -> None:
    status, body = _get(f"{stack.base}/api/v1/wallboard")
    assert status == 200
    data = json.loads(body)
    assert sorted(u["code"] for u in data["units"]) == sorted(u.code for u in stack.inventory.units)
    assert all(u["worst"] in ("up", "down", "unreachable", "degraded", "unknown") for u in data["units"])
    # The lab's built-in certificate imperfections are the soonest to expire, the expired one first.
    assert data["certificates"] and data["certificates"][0]["days_left"] < 0
    assert data["alerts"] == "/api/v1/alerts"  # alerting runs in `wardwatch run`

    status, body = _get(f"{stack.base}/api/v1/units/{SEARCH_UNIT}")
    assert status == 200
    unit = json.loads(body)
    assert unit["name"] == "Phường Vũng Tàu"
    keys = {t.key for t in stack.inventory.targets if t.unit_code == SEARCH_UNIT}
    assert {r["key"] for r in unit["targets"]} == keys
    assert isinstance(unit["history"], list)
    assert _get(f"{stack.base}/api/v1/units/1")[0] == 404
    assert _get(f"{stack.base}/api/v1/units/abc")[0] == 400
    for path in ("/", "/static/wallboard.js", "/static/wallboard.css", "/favicon.ico"):
        assert _get(stack.base + path)[0] == 200, path
    assert _get(f"{stack.base}/static/../web.py")[0] == 404


@pytest.mark.slow
def test_public_page_shows_states_but_no_address_or_reason(stack: Stack) -> None:
    bodies = {}
    for path in ("/public", "/public/status.json", "/public/public.js", "/public/wallboard.css"):
        status, body = _get(stack.base + path)
        assert status == 200, path
        bodies[path] = body.decode()
    data = json.loads(bodies["/public/status.json"])
    assert len(data["units"]) == UNITS
    assert set(data["units"][0]) == {"code", "name", "worst", "services"}
    assert any(u["worst"] == "down" for u in data["units"])  # the lab's imperfections show ...
    targets = [t.target for t in stack.inventory.targets]
    _, rows = _get(f"{stack.base}/api/v1/targets")
    messages = {r["message"] for r in json.loads(rows) if r["message"]}
    assert messages  # ... and have reasons the public must not see
    for path, text in bodies.items():
        assert not IPV4.findall(text), (path, IPV4.findall(text)[:3])
        assert not [t for t in targets if t in text], path
        assert not [m for m in messages if m in text], path
        if not path.endswith(".css"):  # shared with the wallboard: its class names include .s-unreachable
            assert not [r.value for r in Reason if r.value in text], path
        assert "lab.test" not in text and "/api/v1/" not in text, path


# -- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="wardwatch-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1920,1080",
                 "--force-device-scale-factor=1", "--lang=vi"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _artifacts() -> Path:
    d = Path(os.environ.get("WARDWATCH_ARTIFACTS", ROOT / "artifacts"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _viewport(driver: Any, width: int, height: int, *, mobile: bool = False) -> None:
    """An exact viewport (and so screenshot) size, whatever the headless window's decorations."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def _network_failures(driver: Any, base: str) -> list[str]:
    """The page's requests that failed or got an error, and any request leaving wardwatch (no CDN).

    An event stream or fetch cancelled by a reload is not a failure."""
    ours: set[str] = set()
    bad = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        method, params = msg["method"], msg.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if url.startswith(base):
                ours.add(params["requestId"])
            elif url.startswith(("http:", "https:", "ws:", "wss:")):
                bad.append(f"external request: {url}")
        elif method == "Network.loadingFailed" and params["requestId"] in ours and not params.get("canceled"):
            bad.append(f"failed: {params.get('errorText')} ({params.get('type')})")
        elif method == "Network.responseReceived" and params["requestId"] in ours:
            resp = params["response"]
            if resp["status"] >= 400:
                bad.append(f"{resp['status']} {resp['url']}")
    return bad


@pytest.mark.slow
@needs_browser
def test_wallboard_in_chromium(stack: Stack, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser
    _viewport(d, 1920, 1080)
    d.get("about:blank")
    d.get_log("performance"), d.get_log("browser")  # the browser's own start-up, not the page
    d.get(stack.base + "/")
    wait = WebDriverWait(d, 15, poll_frequency=0.1)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid button.tile")) == UNITS, "tiles")
    codes = {int(b.get_attribute("data-code")) for b in d.find_elements(By.CSS_SELECTOR, "#grid button.tile")}
    assert codes == {u.code for u in stack.inventory.units}  # one tile per lab unit
    assert d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi"
    wait.until(lambda d: "on" in d.find_element(By.ID, "live").get_attribute("class").split(), "SSE")  # connected

    def tile_state(code: int) -> str:
        return str(d.find_element(By.CSS_SELECTOR, f"#grid button[data-code='{code}']")
                   .find_element(By.XPATH, "..").get_attribute("data-state"))

    # Search without diacritics finds the unit; the tile says its state in words, not only colour.
    search = d.find_element(By.ID, "q")
    search.send_keys("vung tau")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid button.tile")) == 1)
    tile = d.find_element(By.CSS_SELECTOR, "#grid button.tile")
    assert tile.get_attribute("data-code") == str(SEARCH_UNIT)
    assert "Phường Vũng Tàu" in tile.text
    search.send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)  # typed, so the page sees input events
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid button.tile")) == UNITS, "search cleared")

    # Keyboard: arrow keys move between tiles.
    first, second = d.find_elements(By.CSS_SELECTOR, "#grid button.tile")[:2]
    d.execute_script("arguments[0].focus()", first)
    d.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    assert d.switch_to.active_element.get_attribute("data-code") == second.get_attribute("data-code")

    # The unit is healthy (re-checks of a busy first round settle), then a lab fault turns its tile down.
    WebDriverWait(d, 30, poll_frequency=0.2).until(lambda d: tile_state(SEARCH_UNIT) == "up", "up before the fault")
    _fault(stack, SEARCH_UNIT, "portal", "down")
    t0 = time.monotonic()
    WebDriverWait(d, FAULT_BUDGET, poll_frequency=0.1).until(lambda d: tile_state(SEARCH_UNIT) == "down",
                                                              f"down within {FAULT_BUDGET}s")
    seen_after = time.monotonic() - t0
    tile = d.find_element(By.CSS_SELECTOR, f"#grid button[data-code='{SEARCH_UNIT}']")
    assert "Ngừng" in tile.text and "✕" in tile.text
    d.execute_script("document.activeElement.blur()")
    d.save_screenshot(str(_artifacts() / "wallboard.png"))

    # The drill-down opens on click (and on Enter) and lists the unit's targets, the failing one first.
    tile.click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "dialog#unit[open] tr.target-row"))
    # Read in one script: a live update may re-render the dialog meanwhile.
    rows = d.execute_script(
        "return Array.from(document.querySelectorAll('dialog#unit tr.target-row'))"
        ".map((r) => [r.querySelector('td.target').textContent, r.textContent]);")
    assert {target for target, _ in rows} == {t.target for t in stack.inventory.targets if t.unit_code == SEARCH_UNIT}
    # Failing first, with its reason: the portal, or the TLS check of the portal's host (the first to see it).
    assert "Ngừng" in rows[0][1] and ("Cổng TTĐT" in rows[0][1] or "Chứng thư số" in rows[0][1]), rows[0]
    assert any(word in rows[0][1] for word in ("refused", "tls_handshake_failed", "http_protocol_error")), rows[0]
    d.save_screenshot(str(_artifacts() / "wallboard-unit.png"))
    d.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog#unit[open]"))
    focused = d.switch_to.active_element
    assert focused.get_attribute("data-code") == str(SEARCH_UNIT)  # focus back on the tile
    focused.send_keys(Keys.ENTER)  # keyboard: Enter on a tile opens it too
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "dialog#unit[open] tr.target-row"))
    d.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog#unit[open]"))

    # Restore: the tile comes back without a reload.
    _fault(stack, SEARCH_UNIT, "portal", "restore")
    WebDriverWait(d, 2 * FAULT_BUDGET, poll_frequency=0.1).until(lambda d: tile_state(SEARCH_UNIT) != "down",
                                                                  "back after restore")

    # English, remembered across a reload.
    d.find_element(By.ID, "lang").click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")
    d.refresh()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid button.tile")) == UNITS)
    assert d.find_element(By.TAG_NAME, "h1").text.startswith("Unit status")
    d.find_element(By.ID, "lang").click()  # back to Vietnamese for the screenshots
    wait.until(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi")

    # A phone.
    _viewport(d, 412, 915, mobile=True)
    wait.until(lambda d: d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"))
    d.save_screenshot(str(_artifacts() / "wallboard-phone.png"))
    _viewport(d, 1920, 1080)

    errors = [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not errors, errors
    assert not _network_failures(d, stack.base)
    assert seen_after <= FAULT_BUDGET


@pytest.mark.slow
@needs_browser
def test_public_page_in_chromium(stack: Stack, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser
    d.get(stack.base + "/public")
    WebDriverWait(d, 15).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rows tr")) == UNITS)
    assert "Phường Vũng Tàu" in d.find_element(By.ID, "rows").text
    d.save_screenshot(str(_artifacts() / "public.png"))
    assert not IPV4.findall(d.page_source)
    assert not [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not _network_failures(d, stack.base)
