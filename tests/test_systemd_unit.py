"""contrib/wardwatch.service: systemd's own checker accepts it, its exposure is low, its command
line is one this wardwatch accepts, the hardening the README promises is there, and wardwatch
really runs under the memory rule MemoryDenyWriteExecute= imposes (the kernel's own W^X, set with
prctl(PR_SET_MDWE) on the child: systemd is not PID 1 on the test machines, so the unit is not
started here)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import build_parser
from tests.peers.proc import free_port

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "contrib" / "wardwatch.service"
INSTALLED = "/usr/local/bin/wardwatch"


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        raise RuntimeError("systemd-analyze is missing: apt-get install -y systemd (scripts/setup-test-env.sh)")
    return path


def settings() -> dict[str, list[str]]:
    """[Service] key -> every value given (keys may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}{key}", []).append(value)
    return out


def local_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart's binary where this machine has it (verify checks it exists)."""
    here = shutil.which("wardwatch")
    if here is None:
        raise RuntimeError("the wardwatch console script is missing: pip install -e '.[test]'")
    copy = tmp_path / "wardwatch.service"
    copy.write_text(UNIT.read_text().replace(f"ExecStart={INSTALLED} ", f"ExecStart={here} "))
    assert copy.read_text() != UNIT.read_text()
    return copy


def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    """verify exits 0 even for an unknown key: it must also print nothing at all."""
    r = subprocess.run([systemd_analyze(), "verify", str(local_copy(tmp_path))],
                       capture_output=True, text=True, timeout=60, check=False)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), r.stdout + r.stderr


def test_verify_catches_a_typo(tmp_path: Path) -> None:
    """The premise of the test above: a misspelt setting is reported."""
    bad = local_copy(tmp_path)
    bad.write_text(bad.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict"))
    r = subprocess.run([systemd_analyze(), "verify", str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert "Unknown key 'ProtectSystm'" in r.stderr


def test_exposure_is_low(tmp_path: Path) -> None:
    r = subprocess.run([systemd_analyze(), "security", "--offline=yes", "--threshold=25", str(local_copy(tmp_path))],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert "Overall exposure level for wardwatch.service" in r.stdout


def test_hardening_settings() -> None:
    s = settings()

    def one(key: str) -> str:
        [value] = s[f"[Service]{key}"]
        return value

    assert one("AmbientCapabilities") == one("CapabilityBoundingSet") == "CAP_NET_RAW"
    for key in ("DynamicUser", "NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                "MemoryDenyWriteExecute", "ProtectKernelTunables", "RestrictSUIDSGID", "LockPersonality"):
        assert one(key) == "yes", key
    assert one("ProtectSystem") == "strict" and one("StateDirectory") == "wardwatch"
    assert set(one("RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert "@system-service" in s["[Service]SystemCallFilter"]
    assert one("LoadCredential") == "secrets:/etc/wardwatch/secrets"
    assert one("RestartPreventExitStatus") == "2"  # a missing secret or a bad inventory: no restart loop


def test_exec_start_is_a_command_line_this_wardwatch_accepts() -> None:
    [exec_start] = settings()["[Service]ExecStart"]
    argv = shlex.split(exec_start.replace("%S", "/var/lib"))
    assert argv[0] == INSTALLED
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run" and str(args.config) == "/etc/wardwatch/inventory.yaml"
    assert str(args.store) == "/var/lib/wardwatch/wardwatch.db"  # inside StateDirectory=
    assert args.listen == ("127.0.0.1", 9168) and args.log_format == "json"


# Runs its arguments under the kernel's W^X (PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN: no mapping
# may become writable and executable, or executable after being writable), inherited by exec.
MDWE = textwrap.dedent("""
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
""")


def under_mdwe(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", MDWE, *args], text=True, cwd=REPO, **kw)  # type: ignore[call-overload]


def test_the_rule_is_enforced() -> None:
    """The premise: under it, a writable and executable mapping is refused."""
    p = under_mdwe("-c", "import mmap; mmap.mmap(-1, 4096, prot=7)", stderr=subprocess.PIPE)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 1 and "PermissionError" in err, err


@pytest.mark.slow
def test_wardwatch_runs_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """Every probe kind that has a socket library behind it, alerting and the HTTP side, on
    uvloop (the default loop), under the rule; the process must stay up and answer."""
    closed = free_port()
    inv = tmp_path / "inventory.yaml"
    inv.write_text(f"""
province: 79
defaults: {{interval: 2s, timeout: 1s, rechecks: 1, recheck_spacing: 200ms,
           templates: {{portal: null, email: null}}}}
units:
  - code: 26506
    name: Phường Vũng Tàu
    type: phường
    link:
      address: 127.0.0.1
      snmp: {{version: 2c, port: {closed}, community_env: WW_MDWE_COMMUNITY}}
    checks:
      - {{service: portal, probe: http, target: "https://127.0.0.1:{closed}/"}}
      - {{service: portal, probe: tls, target: "127.0.0.1:{closed}"}}
      - {{service: portal, probe: dns, target: "127.0.0.1:{closed}", query_name: example.vn}}
      - {{service: vc_gov, probe: sip, target: "sip:127.0.0.1:{closed};transport=udp"}}
alerting:
  receivers:
    hook: {{type: webhook, url: "http://127.0.0.1:{closed}/hook", hmac_key_env: WW_MDWE_KEY, timeout: 1s}}
  default_receivers: [hook]
""")
    port = free_port()
    env = {**os.environ, "WW_MDWE_COMMUNITY": "community-mdwe", "WW_MDWE_KEY": "key-mdwe-1"}
    with (tmp_path / "log").open("w+") as log:
        proc = under_mdwe("-m", "monitor", "run", "-c", str(inv), "--listen", f"127.0.0.1:{port}", "--store",
                          str(tmp_path / "db"), "--loop", "uvloop", stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            alerts = _until_a_delivery_failed(proc, port)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                metrics = r.read().decode()
        finally:
            proc.terminate()
            proc.wait(20)
        log.seek(0)
        text = log.read()
    for kind in ("icmp", "snmp", "http", "tls", "dns", "sip"):
        assert f'probe="{kind}"' in metrics, kind
    assert any(n["last_error"] for n in alerts["notifications"]), alerts
    assert proc.returncode == 0, text[-3000:]  # stopped cleanly by SIGTERM, not killed by a fault
    assert "Traceback" not in text and "PermissionError" not in text, text[-3000:]


def _until_a_delivery_failed(proc: subprocess.Popen[str], port: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "wardwatch exited under the rule"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=2) as r:
                alerts: dict[str, Any] = json.load(r)
            if any(n["last_error"] for n in alerts["notifications"]):
                return alerts
        except OSError:
            pass
        time.sleep(0.2)  # a child process: only its HTTP answers tell how far it got
    raise TimeoutError("no delivery attempt within 60 s")
