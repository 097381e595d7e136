"""``wardwatch check KIND TARGET``: one probe, now.

The options of each kind are generated from its probe's Config model, so a new
probe gets its command line for free and the two can never drift apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from monitor.inventory import normal_target
from monitor.secrets import Secret
from probes import registry
from probes.base import ProbeContext, ProbeResult, Resolver, Sample, secret_fields
from probes.runner import common_samples, run_probe

log = logging.getLogger("wardwatch")

# Options every kind has; Config fields of these names are not repeated.
_RESERVED = {"timeout", "dns_server", "json"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap(tp: Any) -> Any:
    """Optional[X] -> X."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _parse_kv(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, val


def _json_value(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"expected JSON, got {value!r}") from None


def add_config_options(parser: argparse.ArgumentParser, fields: dict[str, FieldInfo]) -> None:
    for name, info in fields.items():
        if name in _RESERVED:
            continue
        tp = _unwrap(info.annotation)
        origin = get_origin(tp)
        help_text = info.description or ""
        dest = f"cfg_{name}"
        # A field may name its own flag (e.g. snmp's `interfaces` is given as --interface, repeatable).
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        flag = _flag(str(extra.get("cli_flag", name)))
        if tp is bool:
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, help=help_text)
        elif origin is Literal:
            parser.add_argument(flag, dest=dest, choices=[str(a) for a in get_args(tp)], help=help_text)
        elif origin in (list, tuple, set, frozenset):
            (item,) = get_args(tp)[:1] or (str,)
            if get_origin(item) is tuple:  # pairs, e.g. headers
                parser.add_argument(
                    flag, dest=dest, action="append", type=_parse_kv, metavar="KEY=VALUE",
                    help=f"{help_text} (repeatable)".strip(),
                )
                continue
            conv = str if _unwrap(item) in (str, int, float) else _json_value
            parser.add_argument(
                flag, dest=dest, action="append", type=conv, metavar=name.upper(),
                help=f"{help_text} (repeatable)".strip(),
            )
        elif origin is dict:
            parser.add_argument(
                flag, dest=dest, action="append", type=_parse_kv, metavar="KEY=VALUE", help=help_text
            )
        elif tp is Secret:
            parser.add_argument(flag, dest=dest, metavar=name.upper(),
                                help=f"{help_text} (on the command line it is visible to every local user: "
                                f"use {_flag(name + '_env')} or {_flag(name + '_file')})")
        elif tp in (str, int, float):
            parser.add_argument(flag, dest=dest, metavar=name.upper(), help=help_text)
        else:  # nested models and other structures: JSON on the command line
            parser.add_argument(flag, dest=dest, type=_json_value, metavar="JSON", help=help_text)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "check",
        parents=[common],
        help="run one probe now and print its result",
        description="Run one probe now. Exit 0 on success, 1 when the probe failed, 2 on a usage error.",
    )
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    for spec in registry.all_specs():
        kp = kinds.add_parser(spec.kind, parents=[common], help=f"{spec.kind} probe")
        kp.add_argument("target", help="what to probe (URL, host, host:port, path...)")
        kp.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
        kp.add_argument(
            "--dns-server", action="append", default=[], metavar="HOST[:PORT]", help="resolve names here"
        )
        kp.add_argument("--json", action="store_true", help="print the result as JSON")
        add_config_options(kp, spec.config.model_fields)
        kp.set_defaults(func=run_check)


def build_config(spec: registry.ProbeSpec, args: argparse.Namespace) -> Any:
    values: dict[str, Any] = {}
    for name in spec.config.model_fields:
        v = getattr(args, f"cfg_{name}", None)
        if v is None:
            continue
        if isinstance(v, list) and v and isinstance(v[0], tuple):
            v = dict(v)
        values[name] = v
    return spec.config(**values)


def sample_key(s: Sample) -> str:
    if not s.labels:
        return s.name
    inner = ",".join(f'{k}="{v}"' for k, v in s.labels)
    return f"{s.name}{{{inner}}}"


def as_json(result: ProbeResult, timeout: float) -> dict[str, Any]:
    samples = (*common_samples(result, timeout), *result.samples)
    return {
        "success": result.success,
        "reason": result.reason.value if result.reason else None,
        "message": result.message,
        "duration_seconds": round(result.duration_seconds, 6),
        "metrics": {sample_key(s): s.value for s in samples},
    }


def warn_literal_secrets(spec: registry.ProbeSpec, args: argparse.Namespace) -> None:
    """A secret typed as an argument is in ``ps`` output and /proc/PID/cmdline for every local
    user, and in shell history: say so, and what to use instead."""
    for name in secret_fields(spec.config):
        if getattr(args, f"cfg_{name}", None) is not None:
            print(f"wardwatch check {args.kind}: warning: {_flag(name)} puts the secret on the command line, "
                  f"where every local user can read it (ps, /proc/PID/cmdline); use {_flag(name + '_env')} "
                  f"NAME or {_flag(name + '_file')} PATH", file=sys.stderr)


def run_check(args: argparse.Namespace) -> int:
    spec = registry.get(args.kind)
    warn_literal_secrets(spec, args)
    try:
        cfg = build_config(spec, args)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or args.kind
            print(f"wardwatch check {args.kind}: {_flag(field)}: {err['msg']}", file=sys.stderr)
        return 2
    try:  # checked like the inventory checks it: a malformed target is a usage error
        normal_target(args.kind, args.target)
    except ValueError as e:
        print(f"wardwatch check {args.kind}: target: {e}", file=sys.stderr)
        return 2
    if args.timeout <= 0:
        print(f"wardwatch check {args.kind}: --timeout: must be positive", file=sys.stderr)
        return 2
    if args.kind in ("icmp", "link"):
        from probes import icmp

        access = icmp.detect()
        (log.info if access.mode else log.warning)("ICMP: %s", access.detail)
    ctx = ProbeContext(timeout=args.timeout, resolver=Resolver(args.dns_server))
    result = asyncio.run(run_probe(spec, args.target, cfg, ctx))
    if args.json:
        print(json.dumps(as_json(result, args.timeout), ensure_ascii=False))
    else:
        print_human(args.kind, args.target, result, args.timeout)
    return 0 if result.success else 1


def print_human(kind: str, target: str, result: ProbeResult, timeout: float) -> None:
    if result.success:
        print(f"OK    {kind} {target} in {result.duration_seconds * 1000:.1f} ms")
    else:
        print(f"FAIL  {kind} {target}: {result.reason}: {result.message or '-'}")
    for s in (*common_samples(result, timeout), *result.samples):
        print(f"      {sample_key(s)} {s.value:g}")
