"""ICMP without root, for real: wardwatch as nobody (uid/gid 65534, no groups) in a network
namespace of its own, where the test sets net.ipv4.ping_group_range.

- the range includes the group, no capability: the probe succeeds over unprivileged ICMP
  datagram sockets (and a raw socket is refused: nothing else could have answered);
- the range excludes it, ambient CAP_NET_RAW (systemd's AmbientCapabilities=): it succeeds
  over raw sockets (and the unprivileged socket is refused);
- neither: it fails with reason permission_denied and a message saying what to do, no traceback;
- ``wardwatch run`` says once at start which mode it found, and its link target comes up.
"""

from __future__ import annotations

import json
import subprocess

from tests.peers.unprivileged import NOBODY, run_as_nobody

INCLUDES = f"{NOBODY} {NOBODY}"
EXCLUDES = "1 0"  # the kernel's default: no group


def check(*flags: str, ping_group_range: str, net_raw: bool = False) -> tuple[dict[str, object], str]:
    r = run_as_nobody(["-m", "monitor", "check", "icmp", "127.0.0.1", "--count", "2", "--timeout", "2", "--json",
                       *flags], ping_group_range=ping_group_range, net_raw=net_raw)
    assert r.returncode in (0, 1) and r.stdout, r.stderr
    return json.loads(r.stdout), r.stderr


def test_unprivileged_datagram_sockets_when_the_group_is_in_ping_group_range() -> None:
    out, err = check(ping_group_range=INCLUDES)
    assert out["success"] is True, out
    assert err.count("ICMP: unprivileged ICMP datagram sockets (group 65534") == 1, err
    assert check("--no-privileged", ping_group_range=INCLUDES)[0]["success"] is True
    raw, _ = check("--privileged", ping_group_range=INCLUDES)  # no capability: raw is refused
    assert raw["reason"] == "permission_denied" and "a raw (privileged: true)" in str(raw["message"]), raw


def test_raw_sockets_with_ambient_cap_net_raw() -> None:
    out, err = check(ping_group_range=EXCLUDES, net_raw=True)
    assert out["success"] is True, out
    assert err.count("ICMP: raw ICMP sockets (root or CAP_NET_RAW)") == 1, err
    assert check("--privileged", ping_group_range=EXCLUDES, net_raw=True)[0]["success"] is True
    dgram, _ = check("--no-privileged", ping_group_range=EXCLUDES, net_raw=True)  # group not in the range
    assert dgram["reason"] == "permission_denied" and "an unprivileged (privileged: false)" in str(dgram["message"])


def test_neither_fails_with_what_to_do() -> None:
    out, err = check(ping_group_range=EXCLUDES)
    assert out["success"] is False and out["reason"] == "permission_denied", out
    message = str(out["message"])
    assert "CAP_NET_RAW" in message and "sysctl -w net.ipv4.ping_group_range='65534 65534' (now '1 0')" in message
    assert "WARNING wardwatch: ICMP: no ICMP socket may be opened" in err and "Traceback" not in err + message


# Runs as nobody inside the namespace: starts `wardwatch run` on a one-unit inventory (its link is
# 127.0.0.1), waits for /readyz, prints the targets and the log as JSON, stops it.
RUN = r"""
import json, os, subprocess, sys, tempfile, time, urllib.request
d = tempfile.mkdtemp()
inv = os.path.join(d, "inventory.yaml")
open(inv, "w").write('''province: 79
defaults: {interval: 5s, timeout: 1s, rechecks: 1, recheck_spacing: 1s, templates: {portal: null, email: null}}
units:
  - {code: 26506, name: Phường Vũng Tàu, type: phường, link: {address: 127.0.0.1}}
''')
log = open(os.path.join(d, "log"), "w+")
p = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", inv, "--listen", "127.0.0.1:9168",
                      "--store", os.path.join(d, "db")], stdout=log, stderr=subprocess.STDOUT)
deadline = time.monotonic() + 40
targets = None
while time.monotonic() < deadline and p.poll() is None:
    try:
        with urllib.request.urlopen("http://127.0.0.1:9168/readyz", timeout=1) as r:
            if r.status == 200:
                targets = json.load(urllib.request.urlopen("http://127.0.0.1:9168/api/v1/targets", timeout=5))
                break
    except OSError:
        time.sleep(0.1)  # a child process's readiness: nothing to await but its HTTP answer
p.terminate()
p.wait(20)
log.seek(0)
print(json.dumps({"targets": targets, "log": log.read(), "uid": os.getuid()}))
"""


def test_run_logs_the_mode_once_and_probes_as_nobody() -> None:
    r = run_as_nobody(["-c", RUN], ping_group_range=INCLUDES, timeout=90)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["uid"] == 65534
    assert out["log"].count("ICMP: unprivileged ICMP datagram sockets") == 1, out["log"]
    [link] = out["targets"]
    assert (link["probe"], link["state"], link["success"]) == ("icmp", "up", True), link


def test_the_namespace_is_really_unprivileged() -> None:
    """The premise: as nobody without the capability, a raw socket is refused there."""
    r = run_as_nobody(["-c", "import os, socket; print(os.getuid(), os.getgid(), os.getgroups());"
                             "socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)"])
    assert r.returncode == 1 and r.stdout.startswith("65534 65534 []") and "PermissionError" in r.stderr
    assert isinstance(r, subprocess.CompletedProcess)
