"""Fuzzing the SMTP dialogue (banner, EHLO, STARTTLS replies) as the email probe (per MX) and
the tcp probe (starttls: smtp) read it, against a TCP peer on loopback that answers each
command with fuzzed reply lines."""

from __future__ import annotations

import asyncio

from hypothesis import example, given
from hypothesis import strategies as st

from probes import email, tcp
from probes.base import Reason
from tests.fuzzing import assert_reasoned, loop_with, mutated, tcp_peer
from tests.peers.nginx import context

BANNER = b"220 mx.example.invalid ESMTP ready\r\n"
EHLO = b"250-mx.example.invalid Hello\r\n250-SIZE 52428800\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
STARTTLS = b"220 2.0.0 Ready to start TLS\r\n"

_REPLIES = st.tuples(mutated(BANNER), mutated(EHLO), mutated(STARTTLS))
# Found by reading the code while writing these: a line over the 64 KiB stream limit raised
# ValueError out of the email probe; '²²²' passed isdigit() and int() refused it; an endless
# multi-line reply grew without bound.
LONG = (b"220 " + b"x" * 70_000 + b"\r\n", EHLO, STARTTLS)
SUPERSCRIPT = ("²²² hello\r\n".encode(), EHLO, STARTTLS)
ENDLESS = (BANNER, b"250-x\r\n" * 1200 + b"250 STARTTLS\r\n", STARTTLS)


def _dialogue(replies: tuple[bytes, bytes, bytes]):  # type: ignore[no-untyped-def]
    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        banner, ehlo, starttls = replies
        writer.write(banner)
        for answer in (ehlo, starttls):
            try:  # a client still waiting for the end of our last reply sends nothing: hang up
                async with asyncio.timeout(0.05):
                    command = await reader.readline()
            except TimeoutError:
                return
            if not command or not answer:
                return  # (a silent peer is the timeout tests' business)
            writer.write(answer)
            await writer.drain()
        # then hang up: no TLS server here, the probe must say so (and a reply cut short ends)

    return talk


SMTP_REASONS = {Reason.SMTP_BANNER, Reason.SMTP_EHLO, Reason.STARTTLS_UNSUPPORTED, Reason.TLS_HANDSHAKE,
                Reason.CONNECTION_RESET, Reason.TLS_VERSION}


@given(_REPLIES)
@example(LONG)
@example(SUPERSCRIPT)
@example(ENDLESS)
def test_email_mx_check(replies: tuple[bytes, bytes, bytes]) -> None:
    with loop_with(tcp_peer) as (runner, peer):
        peer.dialogue = _dialogue(replies)  # type: ignore[attr-defined]
        mx = email.MxResult("127.0.0.1", 10)
        cfg = email.Config(smtp_port=peer.port)  # type: ignore[attr-defined]
        ctx = context(timeout=2)
        runner.run(asyncio.wait_for(email._check_mx(mx, cfg, ctx, ctx.resolver), 3))
    assert mx.reason in SMTP_REASONS, (mx.reason, mx.message)  # no TLS server: never a success
    assert mx.message


@given(_REPLIES)
@example(LONG)
@example(SUPERSCRIPT)
@example(ENDLESS)
def test_tcp_starttls(replies: tuple[bytes, bytes, bytes]) -> None:
    with loop_with(tcp_peer) as (runner, peer):
        peer.dialogue = _dialogue(replies)  # type: ignore[attr-defined]
        cfg = tcp.Config(starttls="smtp")
        result = runner.run(tcp.run(f"127.0.0.1:{peer.port}", cfg, context(timeout=2)))  # type: ignore[attr-defined]
    assert_reasoned(result)
    assert result.reason in SMTP_REASONS, result
