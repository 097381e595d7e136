"""HTTP(S) probe over hand-written HTTP/1.1 (asyncio streams + start_tls).

Cheaper than aiohttp and it gives every phase and the peer chain (field notes).
One connection per hop with ``Connection: close``; bodies by Content-Length,
chunked, or until EOF; gzip/deflate decoded.

Body size: ``body_size_limit`` is a hard limit, as in blackbox_exporter. Reading
stops at the limit and the probe fails with ``body_too_large``, so an endless
body costs at most ``body_size_limit`` bytes and ends the probe at once.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import re
import time
import zlib
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from pydantic import field_validator

from probes import tlsprobe
from probes.base import (
    ProbeConfig,
    ProbeContext,
    ProbeResult,
    Reason,
    ResolveError,
    Sample,
    failure,
    os_error_reason,
    timeout_reason,
)
from probes.certs import CertInfo

PHASES = ("resolve", "connect", "tls", "processing", "transfer")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HEADER_LIMIT = 64 * 1024
_MAX_HEADERS = 200
_READ = 64 * 1024
# Python codecs that are no web charset (punycode also decodes in quadratic time).
_NOT_CHARSETS = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"})
_URL_SAFE = "/?&=%:@!$'()*+,;~#[]"  # what quote() leaves of a URL's path and query


class Config(ProbeConfig):
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()  # a mapping is accepted too
    body: str | None = None
    valid_status_codes: tuple[int, ...] = ()  # empty: any 2xx
    valid_http_versions: tuple[str, ...] = ()  # e.g. ("HTTP/1.1",); empty: any
    fail_if_body_matches_regexp: tuple[re.Pattern[str], ...] = ()
    fail_if_body_not_matches_regexp: tuple[re.Pattern[str], ...] = ()
    body_size_limit: int = 1 << 20  # bytes of (decoded) body; more fails with body_too_large
    follow_redirects: bool = True
    max_redirects: int = 10
    expect_redirect_to: str | None = None  # the chain must end here (scheme+host+port+path)
    ca_file: str | None = None
    insecure_skip_verify: bool = False

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, v: Any) -> Any:
        return tuple((str(k), str(val)) for k, val in v.items()) if isinstance(v, dict) else v

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z]+", v):
            raise ValueError(f"method {v!r} is not an HTTP method")
        return v.upper()


class _Fail(Exception):
    def __init__(self, reason: Reason, message: str, *extra: Sample) -> None:
        super().__init__(message)
        self.reason = reason
        self.extra = extra


@dataclass(slots=True)
class _Hop:
    url: str
    status: int = 0
    version: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_length: int = -1
    tls: tlsprobe.Handshake | None = None


@dataclass(slots=True)
class _State:
    phases: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    phase: str = "resolve"
    resolved_samples: tuple[Sample, ...] = ()
    hops: list[_Hop] = field(default_factory=list)
    first_chain: list[CertInfo] = field(default_factory=list)

    def add(self, phase: str, since: float) -> float:
        now = time.monotonic()
        self.phases[phase] += now - since
        return now


def normalise_url(url: str) -> tuple[str, str, str]:
    """(scheme, host[:port without default], path without trailing slash) for comparisons."""
    u = urlsplit(url)
    scheme = u.scheme.lower()
    host = (u.hostname or "").rstrip(".").lower()
    try:
        port = u.port
    except ValueError:  # not a port: compare what was written
        return scheme, u.netloc.lower(), u.path.rstrip("/") or ""
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    return scheme, host, u.path.rstrip("/") or ""


_VERSION = re.compile(r"HTTP/(\d)(?:\.(\d))?")


def _version_value(version: str) -> float:
    m = _VERSION.fullmatch(version)  # float() would also take "HTTP/nan" and "HTTP/1_1"
    return float(f"{m.group(1)}.{m.group(2) or 0}") if m else 0.0


def _digits(text: str) -> int | None:
    """1*DIGIT in ASCII (int() also takes '+1', '1_0', ' 1' and '١'), at most 18 of them."""
    text = text.strip(" \t")
    if not text or len(text) > 18 or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def redirect_url(base: str, location: str) -> str | None:
    """Where a Location header leads from ``base``; None when it is not a usable http(s) URL."""
    if any(ord(c) < 0x20 or c == "\x7f" for c in location):
        return None  # it would end up in our request line
    with contextlib.suppress(UnicodeError):  # headers are read as latin-1; a Location is mostly UTF-8
        location = location.encode("latin-1").decode("utf-8")
    try:
        url = urljoin(base, location.strip().replace(" ", "%20"))
        u = urlsplit(url)
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if u.scheme not in ("http", "https") or not u.hostname:
        return None
    return url


def body_text(body: bytes, content_type: str) -> str:
    """The body as text for the regexps, in the Content-Type's charset (UTF-8 when none or unknown)."""
    charset = ""
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"\'')
    try:
        codec = codecs.lookup(charset or "utf-8")
    except (LookupError, ValueError):
        codec = codecs.lookup("utf-8")
    if not getattr(codec, "_is_text_encoding", True) or codec.name in _NOT_CHARSETS:
        codec = codecs.lookup("utf-8")
    return body.decode(codec.name, "replace")


async def _read_head(reader: asyncio.StreamReader, hop: _Hop) -> None:
    try:
        line = await reader.readline()
        if not line:
            raise _Fail(Reason.HTTP_PROTOCOL, "server closed the connection without a response")
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        code = parts[1] if len(parts) >= 2 else ""
        status = int(code) if len(code) == 3 and code.isascii() and code.isdigit() else 0
        if status < 100 or not parts[0].startswith("HTTP/"):
            raise _Fail(Reason.HTTP_PROTOCOL, f"bad status line {line[:80]!r}")
        hop.version, hop.status = parts[0], status
        size = 0
        # Values of a repeated field are joined once at the end: appended to one growing string,
        # a flood of one field ("X: y" x 4,600 in 64 KiB) cost ~10-50 ms of loop per probe.
        fields: dict[str, list[str]] = {}
        for _ in range(_MAX_HEADERS + 1):
            line = await reader.readline()
            size += len(line)
            if size > _HEADER_LIMIT:
                raise _Fail(Reason.HTTP_PROTOCOL, f"response headers over {_HEADER_LIMIT} bytes")
            if line in (b"\r\n", b"\n", b""):
                hop.headers.update((k, ", ".join(v)) for k, v in fields.items())
                return
            key, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise _Fail(Reason.HTTP_PROTOCOL, f"bad header line {line[:80]!r}")
            fields.setdefault(key.strip().lower(), []).append(value.strip())
        raise _Fail(Reason.HTTP_PROTOCOL, f"more than {_MAX_HEADERS} response header lines")
    except ValueError as e:  # a line over the stream limit
        raise _Fail(Reason.HTTP_PROTOCOL, f"response header line too long ({e})") from e


class _Sink:
    """Collects the decoded body and fails as soon as it passes the limit."""

    def __init__(self, limit: int, encoding: str) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.decoder: Any = None
        if encoding in ("gzip", "x-gzip"):
            self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self.decoder = zlib.decompressobj()

    def feed(self, data: bytes) -> None:
        if self.decoder is not None:
            try:
                # max_length keeps a decompression bomb bounded too.
                data = self.decoder.decompress(data, self.limit - self.size + 1)
            except zlib.error as e:
                raise _Fail(Reason.HTTP_PROTOCOL, f"bad compressed body: {e}") from e
        self.size += len(data)
        if self.size > self.limit:
            raise _Fail(Reason.BODY_TOO_LARGE, f"body larger than body_size_limit ({self.limit} bytes)")
        self.parts.append(data)


async def _read_body(reader: asyncio.StreamReader, hop: _Hop, method: str, limit: int) -> None:
    h = hop.headers
    sink = _Sink(limit, h.get("content-encoding", "").strip().lower())
    if method == "HEAD" or hop.status in (204, 304) or 100 <= hop.status < 200:
        return
    try:
        if "chunked" in h.get("transfer-encoding", "").lower():
            while True:
                line = await reader.readline()
                try:
                    n = int(line.split(b";", 1)[0].strip() or b"x", 16)
                except ValueError as e:
                    raise _Fail(Reason.HTTP_PROTOCOL, f"bad chunk size {line[:40]!r}") from e
                if n == 0:
                    break
                while n > 0:
                    data = await reader.read(min(n, _READ))
                    if not data:
                        raise _Fail(Reason.HTTP_PROTOCOL, "connection closed inside a chunk")
                    n -= len(data)
                    sink.feed(data)
                await reader.readline()
        elif "content-length" in h:
            length = _digits(h["content-length"])
            if length is None:
                raise _Fail(Reason.HTTP_PROTOCOL, f"bad Content-Length {h['content-length'][:40]!r}")
            hop.content_length = n = length
            if n > limit and sink.decoder is None:
                raise _Fail(Reason.BODY_TOO_LARGE, f"Content-Length {n} over body_size_limit ({limit} bytes)")
            while n > 0:
                data = await reader.read(min(n, _READ))
                if not data:
                    raise _Fail(Reason.HTTP_PROTOCOL, f"connection closed {n} bytes before the body's end")
                n -= len(data)
                sink.feed(data)
        else:
            while data := await reader.read(_READ):
                sink.feed(data)
    except ValueError as e:
        raise _Fail(Reason.HTTP_PROTOCOL, f"bad chunked encoding ({e})") from e
    hop.body = b"".join(sink.parts)


async def _request(
    url: str, method: str, body: bytes | None, *, cfg: Config, ctx: ProbeContext, st: _State
) -> _Hop:
    hop = _Hop(url)
    st.hops.append(hop)
    u = urlsplit(url)
    try:
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError:
        port = 0
    if u.scheme not in ("http", "https") or not u.hostname or not port:
        raise _Fail(Reason.HTTP_PROTOCOL, f"unsupported URL {url[:200]!r}")
    host = u.hostname
    st.phase = "resolve"
    t = time.monotonic()
    try:
        resolved = await ctx.resolve(host, cfg.ip_protocol, cfg.ip_protocol_fallback)
    except ResolveError as e:
        raise _Fail(e.reason, str(e)) from e
    if not st.resolved_samples:
        st.resolved_samples = resolved.samples()
    t = st.add("resolve", t)

    async def opener() -> tlsprobe.Streams:
        return await ctx.open_connection(resolved.address, port, limit=_HEADER_LIMIT)

    st.phase = "connect"
    try:
        reader, writer = await opener()
    except OSError as e:
        raise _Fail(os_error_reason(e), f"connect to {host} ({resolved.address}:{port}): {e}") from e
    t = st.add("connect", t)
    try:
        if u.scheme == "https":
            st.phase = "tls"
            verify = not cfg.insecure_skip_verify
            hs = await tlsprobe.upgrade(
                (reader, writer),
                host,
                ctx.tls.get(cfg.ca_file, verify),
                ctx.tls.get(cfg.ca_file, False),
                opener,
            )
            hop.tls = hs
            t = st.add("tls", t)
            if not st.first_chain:  # first host asked for over TLS (http:// hops carry no cert)
                st.first_chain = hs.chain
            if hs.streams is None:
                assert hs.reason is not None
                raise _Fail(hs.reason, f"{host}: {hs.message}")
            reader, writer = hs.streams
        st.phase = "processing"
        # a path in Vietnamese goes out percent-encoded (UTF-8), a host name as IDNA
        target = quote((u.path or "/") + (f"?{u.query}" if u.query else ""), safe=_URL_SAFE)
        hostport = u.netloc.rsplit("@", 1)[-1]
        if not hostport.isascii():
            try:
                hostport = hostport.encode("idna").decode("ascii")
            except UnicodeError as e:
                raise _Fail(Reason.HTTP_PROTOCOL, f"{host!r} is not a valid domain name") from e
        headers = {"host": hostport, "user-agent": "wardwatch", "accept": "*/*"}
        headers.update((k.lower(), v) for k, v in cfg.headers)
        headers["connection"] = "close"
        if body is not None:
            headers["content-length"] = str(len(body))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        try:
            raw = head.encode("latin-1")
        except UnicodeEncodeError as e:
            raise _Fail(Reason.HTTP_PROTOCOL, f"a request header cannot be sent as latin-1: {e}") from e
        writer.write(raw + b"\r\n" + (body or b""))
        await writer.drain()
        await _read_head(reader, hop)
        t = st.add("processing", t)
        st.phase = "transfer"
        try:
            await _read_body(reader, hop, method, cfg.body_size_limit)
        finally:
            st.add("transfer", t)
    except OSError as e:
        raise _Fail(os_error_reason(e), f"{st.phase} with {host}: {e}") from e
    finally:
        await tlsprobe.close(writer)
    return hop


def _check(cfg: Config, st: _State, url: str) -> tuple[Reason, str, tuple[Sample, ...]] | None:
    hop = st.hops[-1]
    redirects = len(st.hops) - 1
    final_url = hop.url
    if not cfg.follow_redirects and hop.status in _REDIRECTS and "location" in hop.headers:
        location = redirect_url(hop.url, hop.headers["location"])
        if location is None:
            return Reason.HTTP_PROTOCOL, f"bad Location {hop.headers['location'][:200]!r} from {hop.url}", ()
        final_url, redirects = location, 1
    status_ok = (
        hop.status in cfg.valid_status_codes if cfg.valid_status_codes else 200 <= hop.status < 300
    ) or (final_url != hop.url and cfg.expect_redirect_to is not None)
    if not status_ok:
        return Reason.HTTP_STATUS, f"status {hop.status} from {hop.url}", ()
    if cfg.valid_http_versions and hop.version not in cfg.valid_http_versions:
        return Reason.HTTP_PROTOCOL, f"{hop.version} not in valid_http_versions", ()
    if cfg.expect_redirect_to is not None:
        if redirects == 0:
            return Reason.REDIRECT_MISSING, f"{url} did not redirect (status {hop.status})", ()
        if normalise_url(final_url) != normalise_url(cfg.expect_redirect_to):
            return (
                Reason.REDIRECT_MISMATCH,
                f"{url} redirects to {final_url}, not {cfg.expect_redirect_to}",
                (),
            )
    text = body_text(hop.body, hop.headers.get("content-type", ""))
    for p in cfg.fail_if_body_matches_regexp:
        if p.search(text):
            return (
                Reason.BODY_MISMATCH,
                f"body matches {p.pattern!r}",
                (Sample("probe_failed_due_to_regex", 1.0),),
            )
    for p in cfg.fail_if_body_not_matches_regexp:
        if not p.search(text):
            return (
                Reason.BODY_MISMATCH,
                f"body does not match {p.pattern!r}",
                (Sample("probe_failed_due_to_regex", 1.0),),
            )
    return None


_RESPONSE_SERIES = (
    "probe_http_status_code",
    "probe_http_version",
    "probe_http_content_length",
    "probe_http_uncompressed_body_length",
)


def _samples(cfg: Config, st: _State) -> list[Sample]:
    out = list(st.resolved_samples)
    out += [Sample("probe_http_duration_seconds", st.phases[p], (("phase", p),)) for p in PHASES]
    hops = [h for h in st.hops if h.status]
    out.append(Sample("probe_http_redirects", float(max(0, len(st.hops) - 1))))
    for i, h in enumerate(st.hops):
        out.append(Sample("wardwatch_http_redirect_hop", float(h.status), (("hop", str(i)), ("url", h.url))))
    if st.first_chain and len(st.hops) > 1:
        first = min(c.not_after for c in st.first_chain).timestamp()
        out.append(Sample("wardwatch_http_first_hop_ssl_earliest_cert_expiry", first))
    if not st.hops or not st.hops[-1].status:
        # Like blackbox, these are always present: 0 when no response came back.
        out += [Sample(n, 0.0) for n in _RESPONSE_SERIES]
    if not st.hops:
        return out
    last = st.hops[-1]
    out.append(
        Sample("probe_http_ssl", 1.0 if last.tls is not None and last.tls.streams is not None else 0.0)
    )
    if last.tls is not None:
        out += last.tls.samples()
    if hops and hops[-1] is last:
        out.append(Sample("probe_http_status_code", float(last.status)))
        out.append(Sample("probe_http_version", _version_value(last.version)))
        out.append(Sample("probe_http_content_length", float(last.content_length)))
        out.append(Sample("probe_http_uncompressed_body_length", float(len(last.body))))
        if cfg.fail_if_body_matches_regexp or cfg.fail_if_body_not_matches_regexp:
            out.append(Sample("probe_failed_due_to_regex", 0.0))
        if "last-modified" in last.headers:
            try:
                lm = parsedate_to_datetime(last.headers["last-modified"]).timestamp()
            except (TypeError, ValueError):
                pass
            else:
                out.append(Sample("probe_http_last_modified_timestamp_seconds", lm))
    return out


async def run(target: str, cfg: Config, ctx: ProbeContext) -> ProbeResult:
    start = time.monotonic()
    st = _State()
    url, method = target, cfg.method
    body = cfg.body.encode() if cfg.body is not None else None
    try:
        async with asyncio.timeout(ctx.remaining()):
            while True:
                hop = await _request(url, method, body, cfg=cfg, ctx=ctx, st=st)
                if not (cfg.follow_redirects and hop.status in _REDIRECTS and "location" in hop.headers):
                    break
                if len(st.hops) > cfg.max_redirects:
                    raise _Fail(Reason.TOO_MANY_REDIRECTS, f"more than {cfg.max_redirects} redirects")
                location = redirect_url(url, hop.headers["location"])
                if location is None:
                    raise _Fail(Reason.HTTP_PROTOCOL, f"bad Location {hop.headers['location'][:200]!r} from {url}")
                url = location
                if hop.status in (301, 302, 303) and method not in ("GET", "HEAD"):
                    method, body = "GET", None  # as browsers and Go's client do
    except _Fail as f:
        samples = _samples(cfg, st)
        # the final response's regex flag is meaningless if we never got that far
        samples = [s for s in samples if s.name != "probe_failed_due_to_regex"] + list(f.extra)
        return failure(f.reason, str(f), start, *samples)
    except TimeoutError:
        return failure(
            timeout_reason(st.phase), f"no answer during {st.phase} within {ctx.timeout:g}s", start, *_samples(cfg, st)
        )
    samples = _samples(cfg, st)
    bad = _check(cfg, st, target)
    if bad is not None:
        reason, message, extra = bad
        if extra:
            samples = [s for s in samples if s.name != "probe_failed_due_to_regex"] + list(extra)
        return failure(reason, message, start, *samples)
    chain = " -> ".join(f"{h.url} ({h.status})" for h in st.hops)
    return ProbeResult(True, None, chain, time.monotonic() - start, tuple(samples))
