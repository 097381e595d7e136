"""DNS probe, blackbox_exporter style: the target is the DNS server ("host[:port]"),
the question comes from the config.

Beyond blackbox: ``expected_answers`` (the answer records of the queried type must
be exactly this set) and ``consistent_with`` (more servers asked the same question,
e.g. every authoritative server of a domain; any difference in rcode or answer set,
and so in SOA serial, fails with ``dns_servers_disagree``).
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from dataclasses import dataclass
from typing import Literal

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from probes.base import (
    ProbeConfig,
    ProbeContext,
    ProbeResult,
    Reason,
    ResolveError,
    Sample,
    failure,
    os_error_reason,
    split_host_port,
)

QueryType = Literal["A", "AAAA", "MX", "NS", "TXT", "SOA", "CNAME", "PTR", "SRV", "CAA"]


class RRValidator(BaseModel):
    """blackbox's validate_*_rrs: regexps against each record's text ("name ttl IN type rdata")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_if_matches_regexp: tuple[str, ...] = ()
    fail_if_all_match_regexp: tuple[str, ...] = ()
    fail_if_not_matches_regexp: tuple[str, ...] = ()
    fail_if_none_matches_regexp: tuple[str, ...] = ()

    @field_validator("*")
    @classmethod
    def _compiles(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"bad regexp {pattern!r}: {e}") from e
        return v

    def problem(self, records: list[str]) -> str | None:
        """Why ``records`` fail this validator, or None."""
        for p in self.fail_if_matches_regexp:
            hit = next((r for r in records if re.search(p, r)), None)
            if hit is not None:
                return f"record {hit!r} matches {p!r}"
        for p in self.fail_if_all_match_regexp:
            if records and all(re.search(p, r) for r in records):
                return f"all records match {p!r}"
        for p in self.fail_if_not_matches_regexp:
            miss = next((r for r in records if not re.search(p, r)), None)
            if miss is not None:
                return f"record {miss!r} does not match {p!r}"
        for p in self.fail_if_none_matches_regexp:
            if not any(re.search(p, r) for r in records):
                return f"no record matches {p!r}"
        return None


class Config(ProbeConfig):
    query_name: str
    query_type: QueryType = "A"
    transport: Literal["udp", "tcp"] = "udp"
    recursion_desired: bool = True
    valid_rcodes: tuple[str, ...] = ("NOERROR",)
    validate_answer_rrs: RRValidator | None = None
    validate_authority_rrs: RRValidator | None = None
    validate_additional_rrs: RRValidator | None = None
    # Exact set of answer rdata of query_type, in zone-file text ("10 mail.example.org.").
    expected_answers: tuple[str, ...] | None = None
    # Other servers ("host[:port]") that must give the same rcode and answer set.
    consistent_with: tuple[str, ...] = ()
    # blackbox succeeds on an empty NOERROR answer; set this to fail it with dns_no_answer.
    fail_if_no_answer: bool = False
    port: int = Field(53, ge=1, le=65535)

    @field_validator("valid_rcodes")
    @classmethod
    def _rcodes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for name in v:
            try:
                dns.rcode.from_text(name.upper())
            except dns.rcode.UnknownRcode as e:
                raise ValueError(f"unknown rcode {name!r}") from e
            out.append(name.upper())
        return tuple(out)

    @model_validator(mode="after")
    def _answers_parse(self) -> Config:
        for text in self.expected_answers or ():
            _rdata(self.query_type, text)
        return self


def _rdata(rdtype: str, text: str) -> dns.rdata.Rdata:
    if rdtype == "TXT" and not text.startswith('"'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    try:
        return dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=dns.name.root, relativize=False)
    except dns.exception.DNSException as e:
        raise ValueError(f"expected answer {text!r} is not valid {rdtype} data: {e}") from e


@dataclass(slots=True, frozen=True)
class Answer:
    server: str
    message: dns.message.Message | None
    reason: Reason | None = None
    error: str = ""
    connect_seconds: float = 0.0
    request_seconds: float = 0.0
    lookup: tuple[Sample, ...] = ()


def records(section: list[dns.rrset.RRset]) -> list[str]:
    """One text line per record, like Go's dns.RR.String() that blackbox matches on."""
    return [line for rrset in section for line in rrset.to_text().splitlines()]


def answer_set(msg: dns.message.Message, rdtype: str) -> frozenset[dns.rdata.Rdata]:
    want = dns.rdatatype.from_text(rdtype)
    return frozenset(rd for rrset in msg.answer if rrset.rdtype == want for rd in rrset)


def _soa_serial(msg: dns.message.Message) -> int | None:
    for rrset in msg.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    return None


async def _ask(server: str, cfg: Config, ctx: ProbeContext) -> Answer:
    try:
        host, port = split_host_port(server, cfg.port)
    except ValueError as e:
        return Answer(server, None, Reason.INTERNAL_ERROR, f"bad server {server[:200]!r}: {e}")
    try:
        resolved = await ctx.resolve(host, cfg.ip_protocol, cfg.ip_protocol_fallback)
    except ResolveError as e:
        return Answer(server, None, e.reason, f"cannot resolve {host}: {e}")
    query = dns.message.make_query(cfg.query_name, cfg.query_type)
    if not cfg.recursion_desired:
        query.flags &= ~dns.flags.RD
    backend = dns.asyncbackend.get_backend("asyncio")
    kind = socket.SOCK_STREAM if cfg.transport == "tcp" else socket.SOCK_DGRAM
    addr = resolved.address
    t0 = time.monotonic()
    t1 = t0
    try:
        async with asyncio.timeout(ctx.remaining()):
            sock = await backend.make_socket(  # type: ignore[no-untyped-call]
                resolved.family, kind, 0, None, (ctx.pin(addr), port), ctx.remaining())
            t1 = time.monotonic()
            async with sock:
                if cfg.transport == "tcp":
                    msg = await dns.asyncquery.tcp(query, addr, ctx.remaining(), port, sock=sock)
                else:
                    msg = await dns.asyncquery.udp(query, addr, ctx.remaining(), port, sock=sock)
    except (TimeoutError, dns.exception.Timeout):
        return Answer(server, None, Reason.DNS_TIMEOUT, f"{server}: no answer within the timeout",
                      t1 - t0, time.monotonic() - t1, resolved.samples())
    except OSError as e:
        return Answer(server, None, os_error_reason(e), f"{server}: {e.strerror or e}",
                      t1 - t0, time.monotonic() - t1, resolved.samples())
    except EOFError:  # TCP: closed before the length it announced (dnspython raises EOFError)
        return Answer(server, None, Reason.CONNECTION_RESET, f"{server}: connection closed in the middle of the answer",
                      t1 - t0, time.monotonic() - t1, resolved.samples())
    except dns.exception.DNSException as e:
        return Answer(server, None, Reason.DNS_RCODE, f"{server}: bad response: {e}",
                      t1 - t0, time.monotonic() - t1, resolved.samples())
    return Answer(server, msg, None, "", t1 - t0, time.monotonic() - t1, resolved.samples())


def _describe(a: Answer, rdtype: str) -> str:
    if a.message is None:
        return a.error
    rcode = dns.rcode.to_text(a.message.rcode())
    got = sorted(rd.to_text() for rd in answer_set(a.message, rdtype))
    return f"{rcode} {got}"


async def run(target: str, cfg: Config, ctx: ProbeContext) -> ProbeResult:
    start = time.monotonic()
    servers = (target, *cfg.consistent_with)
    answers = await asyncio.gather(*(_ask(s, cfg, ctx) for s in servers))
    main = answers[0]
    resolve_s = main.lookup[0].value if main.lookup else time.monotonic() - start
    samples: list[Sample] = [
        *main.lookup,
        Sample("probe_dns_duration_seconds", resolve_s, (("phase", "resolve"),)),
        Sample("probe_dns_duration_seconds", main.connect_seconds, (("phase", "connect"),)),
        Sample("probe_dns_duration_seconds", main.request_seconds, (("phase", "request"),)),
    ]
    msg = main.message
    samples += [
        Sample("probe_dns_answer_rrs", float(len(records(msg.answer))) if msg else 0.0),
        Sample("probe_dns_authority_rrs", float(len(records(msg.authority))) if msg else 0.0),
        Sample("probe_dns_additional_rrs", float(len(records(msg.additional))) if msg else 0.0),
        Sample("probe_dns_query_succeeded", 1.0 if msg else 0.0),
    ]
    if msg is None:
        assert main.reason is not None
        return failure(main.reason, main.error, start, *samples)
    serial = _soa_serial(msg)
    if serial is not None:
        samples.append(Sample("probe_dns_serial", float(serial)))

    rcode = dns.rcode.to_text(msg.rcode())
    if rcode not in cfg.valid_rcodes:
        by_rcode = {"NXDOMAIN": Reason.DNS_NXDOMAIN, "SERVFAIL": Reason.DNS_SERVFAIL}
        reason = by_rcode.get(rcode, Reason.DNS_RCODE)
        return failure(reason, f"{target} answered {rcode} for {cfg.query_name} {cfg.query_type}",
                       start, *samples)
    for section, validator in (
        ("answer", cfg.validate_answer_rrs),
        ("authority", cfg.validate_authority_rrs),
        ("additional", cfg.validate_additional_rrs),
    ):
        if validator is not None:
            problem = validator.problem(records(getattr(msg, section)))
            if problem:
                return failure(Reason.DNS_ANSWER_MISMATCH, f"{section} section: {problem}", start, *samples)
    got = answer_set(msg, cfg.query_type)
    if cfg.fail_if_no_answer and not got:
        return failure(Reason.DNS_NO_ANSWER, f"no {cfg.query_type} record for {cfg.query_name}",
                       start, *samples)
    if cfg.expected_answers is not None:
        want = frozenset(_rdata(cfg.query_type, t) for t in cfg.expected_answers)
        if got != want:
            return failure(
                Reason.DNS_ANSWER_MISMATCH,
                f"{cfg.query_type} answers {sorted(r.to_text() for r in got)}, "
                f"expected {sorted(r.to_text() for r in want)}",
                start, *samples,
            )
    if cfg.consistent_with:
        mine = (msg.rcode(), got)
        differ = [a for a in answers[1:] if a.message is None or (a.message.rcode(),
                  answer_set(a.message, cfg.query_type)) != mine]
        for a in answers[1:]:
            s = _soa_serial(a.message) if a.message else None
            if s is not None:
                samples.append(Sample("wardwatch_dns_server_serial", float(s), (("server", a.server),)))
        if serial is not None:
            samples.append(Sample("wardwatch_dns_server_serial", float(serial), (("server", target),)))
        samples.append(Sample("wardwatch_dns_servers_agree", 0.0 if differ else 1.0))
        if differ:
            other = differ[0]
            return failure(
                Reason.DNS_SERVERS_DISAGREE,
                f"{cfg.query_name} {cfg.query_type}: {target} says {_describe(main, cfg.query_type)}, "
                f"{other.server} says {_describe(other, cfg.query_type)}",
                start, *samples,
            )
    return ProbeResult(True, None, "", time.monotonic() - start, tuple(samples))
