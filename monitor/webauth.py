"""Who may use which endpoint: basic auth with roles, request size and rate limits (one middleware).

What the middleware decides, in order:

1. **Size.** A declared body over ``MAX_BODY_BYTES`` is refused (413) before anything reads it;
   the app's ``client_max_size`` is the same limit for chunked bodies.
2. **Rate.** Every request except /metrics and /probe (Prometheus' scrapes: one Prometheus asks
   /probe for every target, every interval), /healthz and /readyz (cheap, and polled by
   orchestrators) takes a token from its client address's bucket
   (IPv6: its /64); none left: 429 with Retry-After. A password that has to go through bcrypt
   takes a token on every path, so guessing is throttled on /metrics too.
3. **Open paths.** /healthz, /readyz (orchestrators' probes, they say nothing) and /public,
   /public/* (the public status page, public by design) need no credentials.
4. **Authentication** (only when the web config has ``basic_auth_users``): none or wrong: 401
   with ``WWW-Authenticate: Basic realm="wardwatch"``.
5. **Role.** GET and HEAD are read-only; any other method (reload, alert ack, maintenance
   changes) needs ``admin``: 403 for a read-only user.

bcrypt is slow on purpose, so, like exporter-toolkit: a successful verification is cached per
user as (hash, HMAC of the password under a per-process key), compared in constant time; a
changed hash or a different password misses. An unknown user is verified against a dummy hash of
the same cost, so its answer takes as long as a wrong password. Verifications run one at a time
in their own thread (never on the event loop, never starving ``asyncio.to_thread``), and at most
``MAX_PENDING_VERIFICATIONS`` wait: beyond that, 429.
"""

from __future__ import annotations

import asyncio
import binascii
import dataclasses
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import bcrypt
from aiohttp import web

from monitor.webconfig import RateLimit, WebConfig, WebConfigError, load_web_config

log = logging.getLogger("wardwatch.web")

REALM = "wardwatch"
MAX_BODY_BYTES = 64 * 1024  # the API's bodies are a few hundred bytes of JSON
MAX_PENDING_VERIFICATIONS = 32
MAX_CLIENTS = 10_000  # buckets kept; the least recently seen address is forgotten first
BCRYPT_MAX_PASSWORD = 72  # bcrypt's limit; longer passwords fail, like Go's bcrypt
OPEN_ROUTES = frozenset({"/healthz", "/readyz", "/public", "/public/status.json", "/public/{name}"})
UNLIMITED_ROUTES = frozenset({"/metrics", "/probe", "/healthz", "/readyz"})
READ_METHODS = frozenset({"GET", "HEAD"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- rate limit -------------------------------------------------------------------------------


def refill(tokens: float, last: float, now: float, rate: float, burst: float) -> float:
    """Tokens in a bucket that held ``tokens`` at ``last``, at ``now``."""
    return min(float(burst), tokens + max(0.0, now - last) * rate)


def retry_after(tokens: float, rate: float) -> int:
    """Whole seconds until a bucket holding ``tokens`` (< 1) has one again (at least 1)."""
    return max(1, math.ceil((1.0 - tokens) / rate))


class RateLimiter:
    """Token buckets per client, at most ``max_clients`` of them (least recently used go first:
    the oldest has refilled the most, so forgetting it loses the least)."""

    def __init__(self, limit: RateLimit, *, max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str) -> int:
        """0 when the request may go on, else the seconds to wait before the next one."""
        now = self.clock()
        rate, burst = self.limit.rate, self.limit.burst
        held = self._buckets.pop(client, None)
        tokens = refill(held[0], held[1], now, rate, burst) if held is not None else float(burst)
        wait = 0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = retry_after(tokens, rate)
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def client_key(remote: str | None) -> str:
    """The rate limit's key for a peer address: the address, or its /64 for IPv6."""
    if not remote:
        return ""
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


# -- passwords ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Verified:
    hashed: bytes
    mac: bytes


class Verifier:
    """Checks user/password pairs against the bcrypt hashes of a web config."""

    def __init__(self, users: Mapping[str, bytes], dummy: bytes) -> None:
        self.users = dict(users)
        self._key = os.urandom(32)
        self._ok: dict[str, _Verified] = {}  # at most one entry per configured user
        self._dummy = dummy
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wardwatch-bcrypt")
        self.pending = 0

    def _mac(self, password: bytes) -> bytes:
        return hmac.new(self._key, password, hashlib.sha256).digest()

    def cached(self, user: str, password: bytes) -> bool:
        hashed = self.users.get(user)
        hit = self._ok.get(user)
        if hashed is None or hit is None:
            return False
        return hmac.compare_digest(hit.hashed, hashed) & hmac.compare_digest(hit.mac, self._mac(password))

    async def verify(self, user: str, password: bytes) -> bool:
        """bcrypt, in this verifier's thread; an unknown user costs the same as a wrong password."""
        hashed = self.users.get(user)
        against = hashed if hashed is not None else self._dummy
        self.pending += 1
        try:
            ok = await asyncio.get_running_loop().run_in_executor(self._pool, _check, password, against)
        finally:
            self.pending -= 1
        if ok and hashed is not None:
            self._ok[user] = _Verified(hashed, self._mac(password))
            return True
        return False

    def adopt(self, old: Verifier) -> None:
        """Keep ``old``'s verified passwords of users whose hash did not change (a reload)."""
        self._key = old._key  # the cached MACs are under it; nothing is cached here yet
        self._ok = {user: hit for user, hit in old._ok.items() if self.users.get(user) == hit.hashed}

    def close(self) -> None:
        # Checks already queued still finish (at most MAX_PENDING_VERIFICATIONS): a reload while
        # a request waits for bcrypt must not cancel that request.
        self._pool.shutdown(wait=False)


def _check(password: bytes, hashed: bytes) -> bool:
    if len(password) > BCRYPT_MAX_PASSWORD:
        bcrypt.checkpw(b"", hashed)  # the same work, so the length does not answer sooner
        return False
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False


def parse_basic(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) of an ``Authorization: Basic`` header; None when absent or malformed."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = binascii.a2b_base64(value.strip().encode("ascii"), strict_mode=True)
        user, sep, password = raw.partition(b":")
        if not sep:
            return None
        return user.decode("utf-8"), password
    except (binascii.Error, UnicodeError, ValueError):
        return None


# -- the middleware -----------------------------------------------------------------------------


class Security:
    """The web config in force and its state (verifier, buckets); a reload replaces them."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.verifier = Verifier(config.users, config.dummy_hash) if config.auth else None
        self.limiter = RateLimiter(config.rate_limit)

    def replace(self, config: WebConfig, verifier: Verifier | None) -> None:
        old = self.verifier
        if verifier is not None and old is not None:
            verifier.adopt(old)
        self.config = config
        self.verifier = verifier
        if config.rate_limit != self.limiter.limit:
            self.limiter.limit = config.rate_limit
        if old is not None:
            old.close()

    def close(self) -> None:
        if self.verifier is not None:
            self.verifier.close()


SECURITY = web.AppKey("security", Security)


def _canonical(request: web.Request) -> str | None:
    # The matched route, not the raw path: '/public/../api/v1/targets' is whatever it routes to.
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def _plain(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain", headers=headers)


def _too_many(wait: int, why: str) -> web.Response:
    return _plain(429, f"too many requests: {why}; retry in {wait} s", {"Retry-After": str(wait)})


def _unauthorized() -> web.Response:
    return _plain(401, "unauthorized: this endpoint needs a user and password (basic auth)",
                  {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sec = request.app[SECURITY]
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        return _plain(413, f"request body too large: {length} bytes, at most {MAX_BODY_BYTES}")
    route = _canonical(request)
    client = client_key(request.remote)
    limited = route not in UNLIMITED_ROUTES
    if limited and (wait := sec.limiter.take(client)):
        return _too_many(wait, f"at most {sec.config.rate_limit.burst} at once and "
                         f"{sec.config.rate_limit.rate:g} per second from one address")
    verifier = sec.verifier
    if verifier is None or route in OPEN_ROUTES:
        return await handler(request)
    creds = parse_basic(request.headers.get("Authorization"))
    if creds is None:
        return _unauthorized()
    user, password = creds
    if not verifier.cached(user, password):
        if not limited and (wait := sec.limiter.take(client)):
            return _too_many(wait, "password checks from this address")
        if verifier.pending >= MAX_PENDING_VERIFICATIONS:
            return _too_many(1, "password checks in progress")
        if not await verifier.verify(user, password):
            log.info("authentication failed for user %r from %s %s %s", user[:64], request.remote,
                     request.method, request.path)
            return _unauthorized()
    if request.method not in READ_METHODS and sec.config.role(user) != "admin":
        return _plain(403, f"forbidden: {request.method} {request.path} needs the admin role; "
                      f"user {user!r} is read-only")
    return await handler(request)


def install(app: web.Application, config: WebConfig) -> None:
    """Attach the middleware's state to an app created with ``middlewares=[middleware]``."""
    sec = Security(config)
    app[SECURITY] = sec

    async def close(_: web.Application) -> None:
        sec.close()

    app.on_cleanup.append(close)


def _load(path: Path) -> tuple[WebConfig, Verifier | None]:
    """Read and prepare a web config off the event loop (file reads, the dummy bcrypt hash)."""
    config = load_web_config(path)
    return config, Verifier(config.users, config.dummy_hash) if config.auth else None


async def reload(app: web.Application) -> list[str]:
    """Re-read the web config the app was started with (SIGHUP, POST /-/reload).

    Users, roles and the rate limit change at once; certificate and key files are re-read into
    the running listener (a renewed certificate); other TLS settings need a restart and are kept.
    An invalid file changes nothing. Returns the problems, empty on success.
    """
    sec = app[SECURITY]
    running = sec.config
    if running.source is None:
        return []
    try:
        config, verifier = await asyncio.to_thread(_load, running.source)
    except WebConfigError as exc:
        refused = [str(p) for p in exc.problems]
        log.error("web config reload refused, keeping the running one: %s", "; ".join(refused))
        return refused
    problems: list[str] = []
    tls, live = running.tls, running.ssl_context
    if (config.tls is None) != (tls is None):
        problems.append(f"{running.source}: tls_server_config: turning TLS on or off needs a restart; "
                        "kept the running TLS settings")
    elif config.tls is not None and tls is not None and live is not None:
        fixed = config.tls.needs_restart_against(tls)
        if fixed:
            problems.append(f"{running.source}: tls_server_config: {', '.join(fixed)}: changing it needs a "
                            "restart; kept the running value")
        try:  # checked by load_web_config: this fails only if the files changed again meanwhile
            live.load_cert_chain(config.tls.cert_file, config.tls.key_file)
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            problems.append(f"{running.source}: tls_server_config: cannot re-read the certificate: {e}")
        else:
            tls = dataclasses.replace(tls, cert_file=config.tls.cert_file, key_file=config.tls.key_file)
    kept = WebConfig(source=running.source, tls=tls, users=config.users, roles=config.roles,
                     rate_limit=config.rate_limit, ssl_context=live)
    sec.replace(kept, verifier)
    if problems:
        for p in problems:
            log.warning("web config reload: %s", p)
    else:
        log.info("web config reloaded: %d users (%d admin)", len(kept.users),
                 sum(1 for u in kept.users if kept.role(u) == "admin"))
    return problems


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_exposed(host: str, config: WebConfig) -> None:
    """One warning at start when the endpoints are reachable off this machine by anyone."""
    if not config.auth and not is_loopback(host):
        log.warning(
            "listening on %s without authentication: anyone who can reach it can read every target "
            "and reload, acknowledge alerts and change maintenance; give --web-config a file with "
            "basic_auth_users (README: Securing the web endpoints)", host or "every address",
        )
