"""PDF: the HTML report printed by headless Chromium (Debian's ``chromium``), so paper and
screen show the same page. The browser gets a private profile and no network features."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from monitor.reports.sla import ReportError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise ReportError("PDF output needs headless Chromium: apt-get install chromium (or use --format html)")


def chromium_argv(exe: str, profile: Path) -> list[str]:
    return [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        "--disable-default-apps", f"--user-data-dir={profile}",
    ]


def html_to_pdf(html: str, out: Path, timeout: float = 300.0) -> None:
    exe = browser()
    with tempfile.TemporaryDirectory(prefix="wardwatch-pdf-") as tmp:
        src = Path(tmp) / "report.html"
        src.write_text(html, encoding="utf-8")
        argv = [*chromium_argv(exe, Path(tmp) / "profile"), "--no-pdf-header-footer",
                f"--print-to-pdf={out.absolute()}", src.as_uri()]
        env = {**os.environ, "HOME": tmp}
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=timeout, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise ReportError(f"chromium did not print the PDF within {timeout:.0f}s") from None
        if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
            tail = proc.stderr.decode(errors="replace")[-500:]
            raise ReportError(f"chromium could not print the PDF (exit {proc.returncode}): {tail}")
