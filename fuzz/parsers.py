"""Coverage-guided fuzzing of wardwatch's parsers with atheris (libFuzzer), for long runs.

    python fuzz/parsers.py TARGET [libFuzzer flags] [CORPUS_DIR ...]
    python fuzz/parsers.py sip -max_total_time=600 -max_len=4096

TARGET is one of: sip, stun, http, certs, inventory. Without a corpus directory, a temporary
one is seeded with valid messages. A crash (any exception the parser must not raise) stops
the run with exit code 1 and leaves the input in ./crash-<sha1>: add it to the target's
hypothesis test as an ``@example`` and fix the parser. tests/test_fuzz_atheris.py runs every
target for a few hundred inputs; README, section Fuzzing.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this tree's packages, not an installed copy

with atheris.instrument_imports(include=["probes", "monitor.inventory"]):
    from monitor.inventory import InventoryError, parse_inventory
    from probes import certs, http, sip, stun


def _sip(data: bytes) -> None:
    msg = sip.parse_message(data)
    if isinstance(msg, sip.SipResponse):
        msg.via_branch(), msg.cseq(), sip.response_samples(msg)


def _stun(data: bytes) -> None:
    msg = stun.decode(data)
    if isinstance(msg, stun.StunMessage):
        msg.mapped_address(), msg.error(), msg.software()


async def _read_response(data: bytes) -> None:
    reader = asyncio.StreamReader(limit=64 * 1024)
    reader.feed_data(data)
    reader.feed_eof()
    hop = http._Hop("http://127.0.0.1/")
    try:
        await http._read_head(reader, hop)
        await http._read_body(reader, hop, "GET", 1 << 16)
    except http._Fail:
        return
    location = hop.headers.get("location")
    if location is not None:
        http.redirect_url("http://127.0.0.1/a/", location)
    http.body_text(hop.body, hop.headers.get("content-type", ""))


def _http(data: bytes) -> None:
    asyncio.run(_read_response(data))


def _certs(data: bytes) -> None:
    try:
        certs.describe_der(data)
    except ValueError:
        pass


def _inventory(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        parse_inventory(text, "fuzz.yaml", system_resolver="127.0.0.1:53")
    except InventoryError as e:
        assert all(p.file == "fuzz.yaml" and p.message for p in e.problems), e.problems


def _seeds() -> dict[str, list[bytes]]:
    sip_ok = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\nCall-ID: a@b\r\n"
              b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    return {
        "sip": [sip_ok],
        "stun": [stun.encode_message(stun.BINDING_SUCCESS, b"\xaa" * 12, [
            (stun.ATTR_XOR_MAPPED_ADDRESS, stun.xor_address("127.0.0.1", 3478, b"\xaa" * 12))])],
        "http": [b"HTTP/1.1 301 Moved\r\nLocation: /new\r\nContent-Type: text/html; charset=utf-8\r\n"
                 b"Content-Length: 2\r\n\r\nok",
                 b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
        "certs": [],
        "inventory": [(ROOT / "tests" / "data" / "inventory" / "good" / "full.yaml").read_bytes()],
    }


TARGETS: dict[str, Callable[[bytes], None]] = {
    "sip": _sip, "stun": _stun, "http": _http, "certs": _certs, "inventory": _inventory,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        print(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags] [CORPUS_DIR ...]", file=sys.stderr)
        raise SystemExit(2)
    target = sys.argv[1]
    args = [sys.argv[0], *sys.argv[2:]]
    if not any(not a.startswith("-") for a in args[1:]):  # no corpus given: seed a temporary one
        corpus = Path(tempfile.mkdtemp(prefix=f"wardwatch-fuzz-{target}-"))
        for i, seed in enumerate(_seeds()[target]):
            (corpus / f"seed-{i}").write_bytes(seed)
        args.append(str(corpus))
    atheris.Setup(args, TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
