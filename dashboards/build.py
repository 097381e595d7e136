"""Every dashboard, by file name, and the committed JSON under dashboards/json/.

    python -m dashboards.build [--out DIR] [--check]      (same as `wardwatch dashboards build`)

The JSON is generated, never hand-edited: sorted keys, two-space indent, UTF-8, one trailing
newline, no timestamps, so the same code always writes the same bytes and a stale file shows as a
diff (``--check``, and tests/dashboards/test_build.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards import availability, certificates, overview, selfmon, unit
from dashboards.panels import render

JSON_DIR = Path(__file__).resolve().parent / "json"

# file name -> builder; one module per dashboard.
DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "overview.json": overview.build,
    "unit.json": unit.build,
    "certificates.json": certificates.build,
    "availability.json": availability.build,
    "wardwatch.json": selfmon.build,
}


def build_all() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON data."""
    return {name: make() for name, make in DASHBOARDS.items()}


def rendered() -> dict[str, str]:
    return {name: render(doc) for name, doc in build_all().items()}


@dataclass(frozen=True, slots=True)
class Outcome:
    written: list[str]
    unchanged: list[str]
    stale: list[str]  # --check: files that differ from (or are missing, or are not) the generated ones


def write(out: Path = JSON_DIR) -> Outcome:
    out.mkdir(parents=True, exist_ok=True)
    written, unchanged = [], []
    for name, text in rendered().items():
        path = out / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            unchanged.append(name)
            continue
        path.write_text(text, encoding="utf-8")
        written.append(name)
    return Outcome(written, unchanged, [])


def check(out: Path = JSON_DIR) -> Outcome:
    """Compares without writing. Extra *.json files in ``out`` are stale too (a removed dashboard)."""
    texts = rendered()
    stale = [n for n, t in texts.items() if not (out / n).exists() or (out / n).read_text(encoding="utf-8") != t]
    extra = sorted(p.name for p in out.glob("*.json") if p.name not in texts) if out.is_dir() else []
    return Outcome([], [n for n in texts if n not in stale], stale + extra)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dashboards.build")
    p.add_argument("--out", type=Path, default=JSON_DIR)
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    res = check(args.out) if args.check else write(args.out)
    for n in res.stale:
        print(f"stale: {args.out / n}")
    for n in res.written:
        print(f"wrote {args.out / n}")
    return 1 if res.stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
