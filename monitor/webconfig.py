"""The web configuration file (``wardwatch run --web-config FILE``): TLS and basic auth for the
HTTP endpoints, with the keys of Prometheus exporter-toolkit's ``--web.config.file``, plus
wardwatch's roles and API rate limit under ``wardwatch:``::

    tls_server_config:
      cert_file: server.pem            # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: clients-ca.pem
      min_version: TLS12
    basic_auth_users:                  # user: bcrypt hash ($2a$, $2b$, $2y$)
      prometheus: $2y$10$...
      alice: $2b$12$...
    wardwatch:
      roles: {alice: admin}            # everyone else: read-only
      api_rate_limit: {requests_per_second: 10, burst: 50}

``load_web_config`` validates the whole file once (unknown keys, unreadable files, a key that
does not match its certificate, malformed hashes) and raises ``WebConfigError`` listing every
problem as ``FILE:LINE: field: message``, the inventory's format. The TLS context is built
here, so a file that loads is a file that serves.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import bcrypt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.inventory import PathKey, Problem, _compose, _Doc, _field

Role = Literal["admin", "read-only"]
ClientAuth = Literal[
    "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"
]
TLSVersion = Literal["TLS12", "TLS13"]

# A Go-bcrypt-compatible modular crypt hash: $2a$, $2b$ or $2y$, two-digit cost, 22+31 chars.
BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
HASH_HELP = (
    "make one with: htpasswd -nBC 10 '' | tr -d ':\\n'  or  "
    "python3 -c 'import bcrypt, getpass; print(bcrypt.hashpw(getpass.getpass().encode(), bcrypt.gensalt()).decode())'"
)
# exporter-toolkit options wardwatch does not implement: named as such, not as typos.
UNSUPPORTED = {
    ("tls_server_config", "cert"), ("tls_server_config", "key"), ("tls_server_config", "client_allowed_sans"),
    ("tls_server_config", "cipher_suites"), ("tls_server_config", "prefer_server_cipher_suites"),
    ("tls_server_config", "curve_preferences"), ("http_server_config",),
}
_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket per client address: ``burst`` requests at once, refilled at ``rate`` per second."""

    rate: float = 10.0
    burst: int = 50


@dataclass(frozen=True, slots=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: TLSVersion = "TLS12"
    max_version: TLSVersion | None = None

    def needs_restart_against(self, other: TLSSettings) -> list[str]:
        """The settings that differ from ``other`` and that a running listener cannot take on
        (certificate and key files are re-read in place; everything else needs a restart)."""
        return [
            name for name in ("client_auth_type", "client_ca_file", "min_version", "max_version")
            if getattr(self, name) != getattr(other, name)
        ]


@dataclass(frozen=True, slots=True)
class WebConfig:
    source: Path | None = None
    tls: TLSSettings | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    roles: Mapping[str, Role] = field(default_factory=dict)  # users not listed are read-only
    rate_limit: RateLimit = RateLimit()
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)
    # A hash of a random password at the highest cost in use: what an unknown user is checked
    # against, so that it takes as long as a wrong password (made here, off the event loop).
    dummy_hash: bytes = field(default=b"", compare=False, repr=False)

    @property
    def auth(self) -> bool:
        return bool(self.users)

    def role(self, user: str) -> Role:
        return self.roles.get(user, "read-only")


class WebConfigError(Exception):
    """The web config is not usable; ``problems`` lists everything found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


# -- the file's shape ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _TLS(_Strict):
    cert_file: str
    key_file: str
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: str | None = None
    min_version: TLSVersion = "TLS12"
    max_version: TLSVersion | None = None


class _RateLimit(_Strict):
    requests_per_second: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    burst: int = Field(default=50, ge=1)


class _Extension(_Strict):
    roles: dict[str, Role] = Field(default_factory=dict)
    api_rate_limit: _RateLimit = Field(default_factory=_RateLimit)


class _TLSSection(_Strict):
    tls_server_config: _TLS | None = None


class _UsersSection(_Strict):
    basic_auth_users: dict[str, str] | None = None


class _ExtensionSection(_Strict):
    wardwatch: _Extension = Field(default_factory=_Extension)


class _File(_TLSSection, _UsersSection, _ExtensionSection):
    """The whole file: its keys are the three sections'."""


S = TypeVar("S", bound=_Strict)


def _section(model: type[S], data: dict[Any, Any], key: str, p: _Problems) -> S | None:
    try:
        return model.model_validate({key: data[key]} if key in data else {})
    except ValidationError as exc:
        p.validation_errors(exc)
        return None


# -- loading ------------------------------------------------------------------------------------


def load_web_config(path: str | Path) -> WebConfig:
    """Read and validate a web config file; raises ``WebConfigError`` with every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise WebConfigError([Problem(str(path), None, None, "", f"cannot read: not UTF-8 ({e.reason})")]) from e
    except OSError as e:
        raise WebConfigError([Problem(str(path), None, None, "", f"cannot read: {e.strerror or e}")]) from e
    return parse_web_config(text, path)


def parse_web_config(text: str, source: str | Path) -> WebConfig:
    source = Path(source)
    file = str(source)
    doc, problems = _compose(text, file)
    if doc is None:
        raise WebConfigError(problems)
    p = _Problems(file, doc)
    for key_path, line, message in doc.key_problems:
        p.add(key_path, message, line)
    if not isinstance(doc.data, dict):
        p.add((), "must be a mapping of tls_server_config, basic_auth_users, wardwatch")
        raise WebConfigError(p.problems)
    data: dict[Any, Any] = doc.data
    for key in data:
        if key not in _File.model_fields:
            supported = (key,) not in UNSUPPORTED
            p.add((key,), "unknown key" if supported else "exporter-toolkit option that wardwatch does not support")
    # Each section on its own, so that one section's mistake does not hide another's.
    tls_raw = _section(_TLSSection, data, "tls_server_config", p)
    users_raw = _section(_UsersSection, data, "basic_auth_users", p)
    ext = _section(_ExtensionSection, data, "wardwatch", p)
    users = _users(users_raw.basic_auth_users if users_raw else None, p)
    named = (users_raw.basic_auth_users or {}) if users_raw else {}
    roles = dict(ext.wardwatch.roles) if ext else {}
    if roles and not named:
        p.add(("wardwatch", "roles"), "roles need basic_auth_users")
    for user in roles if named else ():
        if user not in named:
            p.add(("wardwatch", "roles", user), "no such user in basic_auth_users")
    tls: TLSSettings | None = None
    context: ssl.SSLContext | None = None
    if tls_raw is not None and tls_raw.tls_server_config is not None:
        tls, context = _tls(tls_raw.tls_server_config, source.parent, p)
    if p.problems or ext is None:
        raise WebConfigError(p.sorted())
    rl = ext.wardwatch.api_rate_limit
    dummy = bcrypt.hashpw(os.urandom(16), bcrypt.gensalt(max(int(h[4:6]) for h in users.values()))) if users else b""
    return WebConfig(source, tls, users, roles, RateLimit(rl.requests_per_second, rl.burst), context, dummy)


class _Problems:
    def __init__(self, file: str, doc: _Doc) -> None:
        self.file = file
        self.doc = doc
        self.problems: list[Problem] = []

    def add(self, path: PathKey, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(self.file, line or self.doc.line(path), None, _field(path), message))

    def validation_errors(self, exc: ValidationError) -> None:
        for e in exc.errors():
            loc: PathKey = tuple(e["loc"])
            if e["type"] == "extra_forbidden":
                msg = "exporter-toolkit option that wardwatch does not support" if loc in UNSUPPORTED else "unknown key"
            elif e["type"] == "missing":
                msg = "required"
            elif e["type"] == "literal_error":
                msg = f"must be {e.get('ctx', {}).get('expected', '?')}, got {e['input']!r}"
            elif e["type"] == "string_type" and loc[:1] == ("basic_auth_users",):
                msg = "must be a bcrypt hash (a string)"
            else:
                msg = str(e["msg"])
            self.add(loc, msg)

    def sorted(self) -> list[Problem]:
        return sorted(dict.fromkeys(self.problems), key=lambda pr: pr.line or 0)


def _users(raw: dict[str, str] | None, p: _Problems) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for user, hashed in (raw or {}).items():
        where = ("basic_auth_users", user)
        if not user:
            p.add(where, "a user name cannot be empty")
        elif ":" in user:
            p.add(where, "a user name cannot contain ':' (basic auth splits user and password there)")
        elif not BCRYPT_HASH.match(hashed):
            # The value is a secret's hash: never echoed.
            p.add(where, f"not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04-31, 53 characters after it); {HASH_HELP}")
        else:
            users[user] = hashed.encode("ascii")
    return users


def _tls(raw: _TLS, base: Path, p: _Problems) -> tuple[TLSSettings | None, ssl.SSLContext | None]:
    at = ("tls_server_config",)
    before = len(p.problems)
    if raw.client_ca_file is not None and raw.client_auth_type == "NoClientCert":
        p.add((*at, "client_ca_file"), "set, but client_auth_type is NoClientCert: set a client_auth_type that uses it")
    if raw.client_ca_file is None and raw.client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert"):
        p.add((*at, "client_auth_type"),
              f"{raw.client_auth_type} needs client_ca_file (the CA that issues client certificates)")
    if raw.max_version is not None and _VERSIONS[raw.max_version] < _VERSIONS[raw.min_version]:
        p.add((*at, "max_version"), f"{raw.max_version} is below min_version {raw.min_version}")
    settings = TLSSettings(
        cert_file=base / raw.cert_file, key_file=base / raw.key_file, client_auth_type=raw.client_auth_type,
        client_ca_file=base / raw.client_ca_file if raw.client_ca_file is not None else None,
        min_version=raw.min_version, max_version=raw.max_version,
    )
    if len(p.problems) > before:
        return None, None
    problems = check_files(settings)
    for name, message in problems:
        p.add((*at, name), message)
    if problems:
        return None, None
    try:
        return settings, server_context(settings)
    except (ssl.SSLError, OSError) as e:  # checked above: only a file changed in between gets here
        p.add(at, f"cannot build the TLS context: {e}")
        return None, None


def check_files(tls: TLSSettings) -> list[tuple[str, str]]:
    """(field, message) for each certificate, key or CA file that cannot serve, in words."""
    out: list[tuple[str, str]] = []
    cert = _read(tls.cert_file, "cert_file", out)
    key = _read(tls.key_file, "key_file", out)
    if cert is not None:
        try:
            x509.load_pem_x509_certificates(cert)
        except ValueError:
            out.append(("cert_file", f"{tls.cert_file}: no PEM certificate in it"))
            cert = None
    if key is not None:
        try:
            serialization.load_pem_private_key(key, password=None)
        except TypeError:
            out.append(("key_file", f"{tls.key_file}: the key is encrypted; wardwatch needs it unencrypted"))
            key = None
        except (ValueError, UnsupportedAlgorithm):
            out.append(("key_file", f"{tls.key_file}: no PEM private key in it"))
            key = None
    if cert is not None and key is not None:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tls.cert_file, tls.key_file)
        except ssl.SSLError as e:
            why = "it does not match cert_file" if "MISMATCH" in str(e) else f"not usable with cert_file ({e.reason})"
            out.append(("key_file", f"{tls.key_file}: {why}"))
    if tls.client_ca_file is not None:
        ca = _read(tls.client_ca_file, "client_ca_file", out)
        if ca is not None:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=tls.client_ca_file)
            except ssl.SSLError:
                out.append(("client_ca_file", f"{tls.client_ca_file}: no PEM certificate in it"))
    if tls.client_auth_type in ("RequestClientCert", "RequireAnyClientCert") and _accept_any() is None:
        out.append(("client_auth_type", f"{tls.client_auth_type} is not available with this Python's ssl module"))
    return out


def _read(path: Path, name: str, out: list[tuple[str, str]]) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError as e:
        out.append((name, f"cannot read {path}: {e.strerror or e}"))
        return None


def server_context(tls: TLSSettings) -> ssl.SSLContext:
    """The listener's TLS context, with exporter-toolkit's meaning of each client_auth_type."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    if tls.max_version is not None:
        ctx.maximum_version = _VERSIONS[tls.max_version]
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file is not None:
        ctx.load_verify_locations(cafile=tls.client_ca_file)
    mode = tls.client_auth_type
    if mode in ("RequestClientCert", "VerifyClientCertIfGiven"):
        ctx.verify_mode = ssl.CERT_OPTIONAL
    elif mode in ("RequireAnyClientCert", "RequireAndVerifyClientCert"):
        ctx.verify_mode = ssl.CERT_REQUIRED
    if mode in ("RequestClientCert", "RequireAnyClientCert"):
        # Go's "ask for a certificate but do not verify it": Python's ssl verifies every
        # certificate it asks for, so OpenSSL is told to accept any chain for this context.
        install = _accept_any()
        if install is None:
            raise ssl.SSLError(f"{mode} is not available with this Python's ssl module")
        install(ctx)
    return ctx


# -- "request a client certificate but do not verify it" ----------------------------------------
#
# Python's ssl module has no verify callback. OpenSSL keeps a context's callback when Python
# later changes verify_mode (_ssl.c: "keep current verify cb") and copies it to each connection,
# so one installed through ctypes holds. The SSL_CTX pointer is the first field after the
# object header of _ssl._SSLContext; that is checked against OpenSSL's own view of the
# verify mode before use, and the two modes that need it are refused when the check fails.

_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _accept(preverify_ok: int, store_ctx: Any) -> int:
    return 1


_always_ok = _VERIFY_CB(_accept)  # module-level: OpenSSL keeps calling it for the process' life


def _accept_any_installer() -> Any:
    try:
        import _ssl

        lib = ctypes.PyDLL(_ssl.__file__)
        set_verify = lib.SSL_CTX_set_verify
        get_mode = lib.SSL_CTX_get_verify_mode
    except (ImportError, OSError, AttributeError):
        return None
    set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CB]
    set_verify.restype = None
    get_mode.argtypes = [ctypes.c_void_p]
    get_mode.restype = ctypes.c_int

    def pointer(ctx: ssl.SSLContext) -> int | None:
        ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
        return ptr or None

    # The pointer is the SSL_CTX only if OpenSSL sees the modes Python sets (NONE 0, PEER 1, PEER|FAIL 3).
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ptr = pointer(probe)
    seen = []
    for mode in (ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED, ssl.CERT_NONE):
        probe.verify_mode = mode
        seen.append(get_mode(ptr) if ptr else -1)
    if seen != [1, 3, 0]:
        return None

    def install(ctx: ssl.SSLContext) -> None:
        ptr = pointer(ctx)
        if not ptr or get_mode(ptr) != {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}[ctx.verify_mode]:
            raise ssl.SSLError("cannot reach OpenSSL's context")
        set_verify(ptr, get_mode(ptr), _always_ok)

    return install


@functools.cache
def _accept_any() -> Any:
    # Only a config asking for one of these two modes ever touches ssl's internals.
    return _accept_any_installer()
