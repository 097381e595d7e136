"""``wardwatch demo`` end to end: a real child process, its first-round summary, a clean Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from monitor.inventory import load_inventory


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _processes_mentioning(text: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmd:
                out.append(int(pid))
    return out


async def test_demo_starts_reports_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    port = _free_port()
    table = f"wardwatch_demo_test_{os.getpid()}"
    lab_dir = tmp_path / "lab"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "demo", "--units", "12", "--dir", str(lab_dir),
        "--listen", f"127.0.0.1:{port}", "--nft-table", table,
        "--interval", "4s", "--timeout", "1s", "--rechecks", "1", "--recheck-spacing", "0.5s",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while True:
                raw = await proc.stdout.readline()
                assert raw, "demo exited early:\n" + "".join(lines)
                lines.append(raw.decode())
                if "Ctrl-C to stop" in lines[-1]:
                    break
        text = "".join(lines)
        assert "injected imperfections seen: 17/17" in text, text
        for reason in ("tls_expired", "tls_hostname_mismatch", "redirect_missing", "http_status", "timeout"):
            assert f"  {reason} " in text, text
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/api/v1/targets") as resp:
            assert resp.status == 200
            # every target of the inventory the lab wrote (12 units x 13 before the VC/email probes)
            written = load_inventory(lab_dir / "lab-inventory.yaml")
            assert len(await resp.json()) == len(written.targets) > 12 * 13
        assert _processes_mentioning(str(lab_dir / "dns"))  # nsd runs ...
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            rest, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = "".join(lines) + rest.decode()
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output
    assert "demo: stopped" in output
    assert not _processes_mentioning(str(lab_dir / "dns"))  # ... and is gone
    with socket.socket() as s:  # nothing left listening on the monitor's port
        s.bind(("127.0.0.1", port))
    assert not (lab_dir / "lab-state.json").exists()
    if shutil.which("nft"):
        nft = await asyncio.create_subprocess_exec("nft", "list", "tables", stdout=asyncio.subprocess.PIPE)
        tables, _ = await nft.communicate()
        assert table.encode() not in tables
