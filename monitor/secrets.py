"""Secrets (SNMP community and keys, SMTP passwords, bot tokens, HMAC keys, Grafana tokens).

A :class:`Secret` is where a credential comes from (an environment variable, a file, or a
literal typed on a command line) plus, once read, its value. It never shows the value: not in
``repr``/``str``/``format``, not in pydantic errors or dumps (``"<secret>"``), not when
copied. The value comes out only through :meth:`Secret.reveal`, at the point of use.

Reading is lazy and happens once per object; ``wardwatch run`` reads every secret of the
inventory at start (and on reload) with :func:`check`, so a missing variable or an unreadable
file stops it with ``FILE:LINE: unit CODE: field: environment variable X is not set`` — the
``where`` the inventory loader gave the secret — never with the value.

Every value read is also remembered process-wide (``_KNOWN``) so :func:`scrub` can take it
out of any text that leaves the process: the log formatter (monitor/logs.py), probe messages
(probes/runner.py), delivery errors (alerts/notifiers/base.py), HTTP error answers. A process
global on purpose: a library's exception text or a URL in a log line has no other way back to
the secret it contains. Values shorter than ``MIN_SCRUB`` characters are not scrubbed (they
would mangle ordinary words); use longer secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote, quote_plus

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

REDACTED = "<secret>"
MIN_SCRUB = 4
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Known:
    """The values read so far and their URL-encoded forms, indexed by their first MIN_SCRUB
    characters: a national inventory with SNMPv3 keys per router holds tens of thousands, and
    scrub() runs on every probe message."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.by_prefix: dict[str, tuple[str, ...]] = {}
        self.lock = threading.Lock()

    def add(self, value: str) -> None:
        if len(value) < MIN_SCRUB:
            return
        forms = {value, quote(value, safe=""), quote(value, safe="/:@"), quote_plus(value)}
        with self.lock:
            # Entries are replaced whole, never changed in place: readers take no lock.
            for form in forms - self.values:
                key = form[:MIN_SCRUB]
                self.by_prefix[key] = (*self.by_prefix.get(key, ()), form)
            self.values |= forms


_KNOWN = _Known()


class SecretUnavailable(ValueError):
    """A secret's source cannot be read; the message says where and why, never the value."""


def remember(value: str) -> None:
    """Scrub ``value`` (and its URL-encoded forms) from every text that leaves the process."""
    _KNOWN.add(value)


# Up to this many known values a plain scan is cheapest; beyond it, the prefix index (a scan
# cost ~1 ms a message with a national inventory's keys, against ~10 us through the index).
_SCAN_LIMIT = 64


def scrub(text: str) -> str:
    """``text`` with every secret read so far replaced by ``<secret>``."""
    known = _KNOWN
    if not known.values or len(text) < MIN_SCRUB:
        return text
    if len(known.values) <= _SCAN_LIMIT:
        found = {v for v in tuple(known.values) if v in text}
    else:
        index, n = known.by_prefix, MIN_SCRUB
        found = {
            v for i in range(len(text) - n + 1) for v in index.get(text[i:i + n], ()) if text.startswith(v, i)
        }
    for value in sorted(found, key=len, reverse=True):  # longest first: no partial leftovers
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an exception, scrubbed: for messages built from library errors."""
    return scrub(f"{type(exc).__name__}: {exc}")


class Secret:
    """A credential and where it comes from; the value only through :meth:`reveal`."""

    __slots__ = ("_env", "_file", "_value", "where")

    def __init__(
        self, value: str | None = None, *, env: str | None = None, file: str | None = None, where: str = ""
    ) -> None:
        if sum(x is not None for x in (value, env, file)) != 1:
            raise ValueError("a Secret has exactly one source: a value, env or file")
        self._env = env
        self._file = file
        self._value = value
        self.where = where  # "inventory.yaml:42: unit 26506: link.snmp.auth_key_env", for errors
        if value is not None:
            remember(value)

    @classmethod
    def from_env(cls, name: str, where: str = "") -> Secret:
        return cls(env=name, where=where)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], where: str = "") -> Secret:
        return cls(file=os.fspath(path), where=where)

    @classmethod
    def from_source(cls, env: str | None, file: str | None, where: str = "") -> Secret | None:
        """The secret named by an ``*_env`` / ``*_file`` pair (the first given), or None."""
        if env:
            return cls.from_env(env, where)
        if file:
            return cls.from_file(file, where)
        return None

    @property
    def source(self) -> str:
        if self._env is not None and not _ENV_NAME.match(self._env):
            # the secret itself, written where its variable's name belongs: never echoed
            return "an invalid environment variable name (not shown)"
        if self._env is not None:
            return f"environment variable {self._env}"
        if self._file is not None:
            return f"file {self._file}"
        return "a literal value"

    def load(self) -> None:
        """Read the value now (once); SecretUnavailable says where and why."""
        if self._value is not None:
            return
        if self._env is not None:
            if not _ENV_NAME.match(self._env):
                self._fail("not an environment variable name (letters, digits, '_'; not shown, in case it is "
                           "the secret itself)")
            value = os.environ.get(self._env)
            if value is None or not value.strip():
                self._fail(f"environment variable {self._env} is {'empty' if value is not None else 'not set'}")
            value = value.strip()
        else:
            assert self._file is not None
            try:
                text = Path(self._file).read_text(encoding="utf-8")
            except UnicodeDecodeError:
                self._fail(f"{self._file} is not UTF-8 text")
            except OSError as e:
                self._fail(f"cannot read {self._file}: {e.strerror or type(e).__name__}")
            value = text.strip()
            if not value:
                self._fail(f"{self._file} is empty")
        remember(value)
        self._value = value

    def _fail(self, why: str) -> NoReturn:
        raise SecretUnavailable(f"{self.where}: {why}" if self.where else why) from None

    def reveal(self) -> str:
        """The value, for the one place that needs it (a login, a header, a key derivation)."""
        self.load()
        assert self._value is not None
        return self._value

    def __repr__(self) -> str:
        return f"Secret(<{self.source}>)"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def _identity(self) -> tuple[str, str]:
        if self._env is not None:
            return ("env", self._env)
        if self._file is not None:
            return ("file", self._file)
        assert self._value is not None
        return ("value", hashlib.sha256(self._value.encode()).hexdigest())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(repr(self._identity()), repr(other._identity()))

    def __hash__(self) -> int:
        return hash(self._identity())

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not pickled (it would carry its value)")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda _s: REDACTED),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "writeOnly": True, "format": "password"}


def _validate(value: object) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str) and value.strip():
        return Secret(value.strip())
    # Never the input in the message: it may be the secret, mistyped.
    raise PydanticCustomError("secret", "must be a non-empty string")


def check(secrets: Iterable[Secret]) -> list[str]:
    """Read every secret now; one line per one that cannot be read (where and why)."""
    problems: list[str] = []
    seen: set[int] = set()
    for s in secrets:
        if id(s) in seen:
            continue
        seen.add(id(s))
        try:
            s.load()
        except SecretUnavailable as e:
            problems.append(str(e))
    return list(dict.fromkeys(problems))


def collect(value: object) -> list[Secret]:
    """Every Secret inside a pydantic model, dataclass, mapping or sequence (config objects)."""
    out: list[Secret] = []
    stack = [value]
    seen: set[int] = set()
    while stack:
        v = stack.pop()
        if isinstance(v, Secret):
            out.append(v)
            continue
        if isinstance(v, str | bytes | int | float | bool) or v is None or id(v) in seen:
            continue
        seen.add(id(v))
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list | tuple | set | frozenset):
            stack.extend(v)
        elif hasattr(v, "__pydantic_fields__"):
            stack.extend(getattr(v, name, None) for name in type(v).model_fields)  # type: ignore[attr-defined]
            private = getattr(v, "__pydantic_private__", None)
            if private:
                stack.extend(private.values())
    return out
