"""A tiny client for the running service's HTTP API (``--url``), shared by alerts, maintenance and report.

A service started with ``--web-config`` is reached with the environment (kept out of argv, which
any local user can read): WARDWATCH_API_USER and WARDWATCH_API_PASSWORD for basic auth;
WARDWATCH_API_CA_FILE to trust its certificate; WARDWATCH_API_CERT_FILE and
WARDWATCH_API_KEY_FILE for a client certificate.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
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


def _tls_context() -> ssl.SSLContext | None:
    ca, cert, key = (os.environ.get(f"WARDWATCH_API_{n}_FILE") for n in ("CA", "CERT", "KEY"))
    if not (ca or cert):
        return None
    try:
        ctx = ssl.create_default_context(cafile=ca or None)
        if cert:
            ctx.load_cert_chain(cert, key or None)
    except (OSError, ValueError) as e:
        raise ApiError(f"WARDWATCH_API_CA_FILE / _CERT_FILE / _KEY_FILE: {e}", 2) from None
    return ctx


def _headers() -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    user = os.environ.get("WARDWATCH_API_USER")
    if user:
        token = f"{user}:{os.environ.get('WARDWATCH_API_PASSWORD', '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
    return headers


def call(url: str, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method, headers=_headers())
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=_tls_context()) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        if e.code == 401:
            raise ApiError(f"{url} needs a user and password: set WARDWATCH_API_USER and WARDWATCH_API_PASSWORD"
                           + (" (these were refused)" if "WARDWATCH_API_USER" in os.environ else ""), 1) from None
        if e.code in (403, 413, 429):
            raise ApiError(e.read().decode("utf-8", "replace").strip() or str(e.reason), 1) from None
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
