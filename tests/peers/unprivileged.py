"""Run this Python as an unprivileged user inside a private network (and mount) namespace.

    run_as_nobody(["-m", "monitor", "check", "icmp", "127.0.0.1"], ping_group_range="65534 65534")

The namespace is new, so its ``net.ipv4.ping_group_range`` is ours to set and its loopback
carries the probes; ``net_raw=True`` hands the user CAP_NET_RAW as an ambient capability
(``setpriv --inh-caps +net_raw --ambient-caps +net_raw``), the way systemd's
AmbientCapabilities= does. The user is nobody (65534) with no supplementary groups.

When the interpreter lives under a directory other users cannot enter (pyenv under /root), a
private mount namespace lays a traversable (0711) directory over that one, holding bind mounts
of just the entries the interpreter needs; nothing changes outside the namespace.
"""

from __future__ import annotations

import os
import shlex
import shutil
import site
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.peers.proc import require

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def _closed_ancestors(paths: list[Path]) -> dict[Path, set[str]]:
    """Directories on the way to ``paths`` that others cannot traverse -> the entries needed in each."""
    out: dict[Path, set[str]] = {}
    for p in paths:
        parts = p.parts
        for i in range(1, len(parts) - 1):
            d = Path(*parts[:i + 1])
            if not os.stat(d).st_mode & stat.S_IXOTH:
                out.setdefault(d, set()).add(parts[i + 1])
                break
    return out


def _mount_script() -> str:
    needed = [Path(os.path.realpath(sys.executable)), Path(sys.prefix), Path(sys.base_prefix),
              *(Path(p) for p in site.getsitepackages()), REPO]
    lines = []
    for n, (closed, entries) in enumerate(sorted(_closed_ancestors(needed).items())):
        over = f'"$tmp/over{n}"'
        lines.append(f"mkdir -m 0711 {over}")
        for entry in sorted(entries):
            src = shlex.quote(str(closed / entry))
            lines.append(f'mkdir {over}/{shlex.quote(entry)} && mount --bind {src} {over}/{shlex.quote(entry)}')
        lines.append(f"mount --rbind {over} {shlex.quote(str(closed))}")
    return "\n".join(lines)


def run_as_nobody(
    python_args: list[str], *, ping_group_range: str = "1 0", net_raw: bool = False, timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """``python *python_args`` as uid/gid 65534 in a fresh network namespace; its output as text."""
    if os.geteuid() != 0:
        raise RuntimeError("creating network namespaces needs root: run the test suite as root (scripts/test.sh)")
    for tool in ("unshare", "setpriv", "ip"):
        require(tool)
    caps = "--inh-caps +net_raw --ambient-caps +net_raw" if net_raw else ""
    argv = " ".join(shlex.quote(a) for a in (sys.executable, *python_args))
    # The overlay directory is made and removed out here, never from inside the namespace: there
    # it holds bind mounts of real directories, which a recursive delete would walk into.
    tmp = tempfile.mkdtemp(prefix="wardwatch-unpriv-")
    script = f"""set -e
tmp={shlex.quote(tmp)}
{_mount_script()}
ip link set lo up
echo {shlex.quote(ping_group_range)} > /proc/sys/net/ipv4/ping_group_range
setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups {caps} \\
  env -i PATH=/usr/bin:/bin PYTHONPATH={shlex.quote(str(REPO))} HOME=/nonexistent {argv}
"""
    try:
        return subprocess.run(["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", script],
                              capture_output=True, text=True, timeout=timeout, check=False, cwd="/")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # outside the namespace: its mounts are not here
