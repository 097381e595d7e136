"""``wardwatch`` command line: one module per command group under monitor/commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from monitor import __version__, logs

# Each module exposes register(subparsers); its parsers set ``func(args) -> int``.
COMMANDS: tuple[str, ...] = (
    "run", "check", "inventory", "lab", "demo", "alerts", "maintenance", "report", "dashboards",
)


def common_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS)
    p.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default=argparse.SUPPRESS
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="wardwatch",
        description="Monitoring and uptime for the commune-level units of public-sector networks.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"wardwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"monitor.commands.{name}").register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(getattr(args, "log_format", "text"), getattr(args, "log_level", "info"))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: one clear line, never a traceback
        logging.getLogger("wardwatch").debug("unexpected error", exc_info=True)
        print(f"wardwatch: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
