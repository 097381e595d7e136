"""Fuzzing the http probe's reading of a response: the status line, headers, Content-Length
against the body, chunked and compressed bodies, Location and charset; first through a
StreamReader fed the bytes, then whole probes against a TCP peer on loopback.

The peers' names resolve through the tests' ``NamesResolver`` (only 127.0.0.1), so no fuzzed
Location can lead the probe off loopback."""

from __future__ import annotations

import asyncio
import gzip
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from probes import http
from probes.base import Reason
from tests.fuzzing import assert_reasoned, fuzzed, loop_with, mutated, tcp_peer
from tests.peers.nginx import context

BODY = "<html>Phường Sài Gòn</html>".encode()
SEEDS = [
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n"
    b"Last-Modified: Tue, 01 Jul 2025 00:00:00 GMT\r\n\r\n%s" % (len(BODY), BODY),
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
    % (len(gzip.compress(BODY)), gzip.compress(BODY)),
    b"HTTP/1.1 301 Moved Permanently\r\nLocation: /new/\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.0 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=windows-1258\r\n\r\nPh\xd2\xf4\xd8ng",
]
LIMIT = 4096


async def _read(data: bytes, method: str = "GET") -> http._Hop:
    reader = asyncio.StreamReader(limit=http._HEADER_LIMIT)
    reader.feed_data(data)
    reader.feed_eof()
    hop = http._Hop("http://127.0.0.1/")
    await http._read_head(reader, hop)
    await http._read_body(reader, hop, method, LIMIT)
    return hop


@given(fuzzed(SEEDS))
@example(b"HTTP/1.1 \xc2\xb200 OK\r\n\r\n")  # isdigit() but not int(): reported as 'header line too long'
@example(b"HTTP/1.1 \t00 OK\r\n\r\n")  # status 0 (found by HYPOTHESIS_PROFILE=long)
@example(b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello")
@example(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n")  # was a body of -5 bytes
@example(b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n")  # int() over 4,300 digits
def test_reading_a_response_is_total(data: bytes) -> None:
    try:
        hop = asyncio.run(_read(data))
    except http._Fail as f:
        assert f.reason in (Reason.HTTP_PROTOCOL, Reason.BODY_TOO_LARGE), f
        return
    assert 100 <= hop.status <= 999
    assert len(hop.body) <= LIMIT
    assert hop.content_length == -1 or hop.content_length >= 0
    if hop.content_length >= 0 and "content-encoding" not in hop.headers:
        assert len(hop.body) == hop.content_length  # exactly what it announced, or a failure
    assert 0.0 <= http._version_value(hop.version) < 10


@given(st.integers(0, 64), st.integers(0, 64), st.sampled_from(["%d", " %d ", "+%d", "%d_0", "0x%d", "%d, %d"]))
def test_content_length_against_the_body(announced: int, sent: int, form: str) -> None:
    length = form.replace("%d", str(announced))
    data = b"HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n%s" % (length.encode(), b"x" * sent)
    try:
        hop = asyncio.run(_read(data))
    except http._Fail as f:
        assert f.reason is Reason.HTTP_PROTOCOL
        assert form not in ("%d", " %d ") or sent < announced, f  # only short bodies fail
        return
    assert form in ("%d", " %d ") and sent >= announced
    assert hop.content_length == announced and hop.body == b"x" * announced


@given(st.binary(max_size=512), st.one_of(st.text(max_size=30), st.sampled_from(
    ["text/html; charset=utf-8", "text/html; charset=windows-1258", "text/html; charset=base64",
     "text/html; charset=punycode", "text/html; charset=idna", "text/html;charset=\"utf-16\"", "charset=x",
     "text/html; charset=", "text/html; charset=rot13", "text/html; charset=undefined"])))
def test_body_text_is_total(body: bytes, content_type: str) -> None:
    assert isinstance(http.body_text(body, content_type), str)


def test_body_text_reads_the_charset() -> None:
    assert http.body_text("Đà".encode("cp1258"), "text/html; charset=windows-1258") == "Đà"
    assert http.body_text("Đà".encode("cp1258"), "text/html") == "\ufffd\ufffd"
    assert http.body_text("Phường".encode(), "text/html") == "Phường"


_LOCATIONS = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(["http:", "https:", "ftp:", "//", "/", "127.0.0.1", "[::1", "[::1]", ":", ":99999",
                              ":0", ":-1", ":x", "@", "?", "#", "%", "%zz", " ", "\t", "\r", "\x00", "..", "é",
                              "new.portal.test", "localhost", "\\"]), max_size=10).map("".join),
)


@given(_LOCATIONS)
@example("http://[::1")  # urljoin raised ValueError (Invalid IPv6 URL): internal_error
@example("http://127.0.0.1:x/")  # urlsplit().port raised ValueError
def test_redirect_url_is_total(location: str) -> None:
    url = http.redirect_url("http://127.0.0.1:8080/a/b", location)
    if url is not None:
        u = urlsplit(url)
        assert u.scheme in ("http", "https") and u.hostname
        assert not any(ord(c) < 0x20 for c in url)
        http.normalise_url(url)


# -- whole probes against a peer ------------------------------------------------------------------


@given(st.lists(fuzzed(SEEDS), min_size=1, max_size=1))
def test_probe_on_fuzzed_responses(replies: list[bytes]) -> None:
    with loop_with(tcp_peer) as (runner, peer):
        peer.reply = lambda _req: replies[0]  # type: ignore[attr-defined]
        cfg = http.Config(body_size_limit=LIMIT, max_redirects=2,
                          fail_if_body_not_matches_regexp=("Sài Gòn",))  # type: ignore[arg-type]
        result = runner.run(http.run(f"http://127.0.0.1:{peer.port}/", cfg, context(timeout=2)))  # type: ignore[attr-defined]
    assert_reasoned(result)
    assert result.reason is not Reason.TIMEOUT, result  # the peer closes after its reply


@given(_LOCATIONS, st.sampled_from([301, 302, 303, 307, 308]), st.booleans())
@example("http://[::1", 302, True)
@example("http://127.0.0.1:x/", 301, False)
def test_probe_follows_any_location(location: str, status: int, follow: bool) -> None:
    def reply(request: bytes) -> bytes:
        if request.startswith(b"GET / "):
            return (f"HTTP/1.1 {status} Moved\r\nContent-Length: 0\r\nLocation: ".encode()
                    + location.encode("utf-8", "surrogateescape") + b"\r\n\r\n")
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    with loop_with(tcp_peer) as (runner, peer):
        peer.reply = reply  # type: ignore[attr-defined]
        cfg = http.Config(max_redirects=3, follow_redirects=follow,
                          expect_redirect_to="http://localhost/x")
        result = runner.run(http.run(f"http://127.0.0.1:{peer.port}/", cfg, context(timeout=2)))  # type: ignore[attr-defined]
    assert_reasoned(result)


def test_a_location_in_vietnamese_is_followed_byte_for_byte() -> None:
    seen: list[bytes] = []

    def reply(request: bytes) -> bytes:
        seen.append(request.split(b"\r\n", 1)[0])
        if request.startswith(b"GET / "):
            return "HTTP/1.1 302 Found\r\nLocation: /thủ-tục?q=ờ\r\n\r\n".encode()
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    with loop_with(tcp_peer) as (runner, peer):
        peer.reply = reply  # type: ignore[attr-defined]
        result = runner.run(http.run(f"http://127.0.0.1:{peer.port}/", http.Config(), context(timeout=2)))  # type: ignore[attr-defined]
    assert result.success, result
    assert seen[1] == b"GET /th%E1%BB%A7-t%E1%BB%A5c?q=%E1%BB%9D HTTP/1.1"
    assert result.message.endswith("/thủ-tục?q=ờ (200)"), result.message


@given(st.sampled_from(SEEDS).flatmap(lambda s: mutated(s, max_ops=3)))
def test_probe_head_request(reply: bytes) -> None:
    with loop_with(tcp_peer) as (runner, peer):
        peer.reply = lambda _req: reply  # type: ignore[attr-defined]
        cfg = http.Config(method="HEAD")
        result = runner.run(http.run(f"http://127.0.0.1:{peer.port}/", cfg, context(timeout=2)))  # type: ignore[attr-defined]
    assert_reasoned(result)


def test_a_repeated_field_is_joined_and_a_header_flood_stops_at_the_line_limit() -> None:
    ok = asyncio.run(_read(b"HTTP/1.1 200 OK\r\nVary: a\r\nX: 1\r\nvary:  b \r\nContent-Length: 0\r\n\r\n"))
    assert ok.headers["vary"] == "a, b" and ok.headers["x"] == "1"

    at_limit = b"".join(b"X-F: %d\r\n" % i for i in range(http._MAX_HEADERS - 1))
    hop = asyncio.run(_read(b"HTTP/1.1 200 OK\r\n" + at_limit + b"Content-Length: 0\r\n\r\n"))
    assert hop.headers["x-f"].count(", ") == http._MAX_HEADERS - 2

    # tests/peers/hostile.py's header_flood: one field, ~4,600 times in 64 KiB. Joined into one
    # growing string it cost ~10-50 ms of event loop per probe (BENCHMARKS.md "Hostile targets").
    flood = b"HTTP/1.1 200 OK\r\n" + b"X-Flood: yes\r\n" * 4600 + b"\r\n"
    with pytest.raises(http._Fail) as fail:
        asyncio.run(_read(flood))
    assert fail.value.reason is Reason.HTTP_PROTOCOL
    assert str(fail.value) == f"more than {http._MAX_HEADERS} response header lines"

    wide = b"HTTP/1.1 200 OK\r\n" + (b"X-Wide: " + b"w" * 1000 + b"\r\n") * 80 + b"\r\n"
    with pytest.raises(http._Fail) as fail:
        asyncio.run(_read(wide))
    assert fail.value.reason is Reason.HTTP_PROTOCOL
    assert str(fail.value) == f"response headers over {http._HEADER_LIMIT} bytes"
