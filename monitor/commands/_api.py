"""A tiny client for the running service's HTTP API (``--url``), shared by alerts and maintenance."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:9168"


class ApiError(Exception):
    """One line for the user; ``code`` is the exit status (1: refused by the service, 2: unreachable)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_url(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=DEFAULT_URL, help=f"the running wardwatch (default {DEFAULT_URL})")


def call(url: str, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("error") or e.reason
        except (ValueError, AttributeError):
            msg = e.reason
        if e.code == 404 and not msg:
            msg = "not found"
        if e.code == 404 and msg == "Not Found":
            msg = f"{url} has no {path} (is built-in alerting running there?)"
        raise ApiError(str(msg), 1) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise ApiError(f"cannot reach wardwatch at {url}: {reason}", 2) from None
