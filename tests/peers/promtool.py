"""promtool as a judge of exposition text: ``check metrics`` parses it and lints it."""

from __future__ import annotations

import subprocess

from tests.peers.proc import require


def check_metrics(text: str) -> tuple[int, str]:
    """(exit code, everything promtool printed); a clean exposition gives (0, "")."""
    proc = subprocess.run(
        [require("promtool"), "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, (proc.stdout + proc.stderr).decode().strip()
