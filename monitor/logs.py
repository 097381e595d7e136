"""Structured logging: human lines by default, one JSON object per line with --log-format json."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from monitor.secrets import scrub

# Attributes every LogRecord has; anything else was passed with extra= and is data.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(out, ensure_ascii=False, default=str)


class HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z")

    def formatException(self, ei: object) -> str:  # noqa: N802 - logging's API
        # Tracebacks are for --log-level debug; users get the one-line cause.
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            return super().formatException(ei)  # type: ignore[arg-type]
        return ""


class ScrubbingFormatter(logging.Formatter):
    """Another formatter's output with every secret read so far replaced by ``<secret>``
    (monitor/secrets.py): message, arguments, extra fields and tracebacks alike, from our
    loggers and from libraries' (an aiohttp error quoting a URL with a bot token in it)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return scrub(self.inner.format(record))


def setup(fmt: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubbingFormatter(JSONFormatter() if fmt == "json" else HumanFormatter()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # APScheduler logs two lines per run at INFO (field notes).
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiohttp.access").setLevel(max(logging.WARNING, root.level))
