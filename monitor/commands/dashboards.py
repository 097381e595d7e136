"""``wardwatch dashboards build|push``: the Grafana dashboards generated from dashboards/.

    wardwatch dashboards build [--out DIR] [--check]
    wardwatch dashboards push --url URL (--token-file PATH | --token-env NAME) [--folder NAME] [--dir DIR]

build writes the JSON (default dashboards/json/); with --check it writes nothing and exits 1 when
a committed file differs from what the code generates. push saves the dashboards into a Grafana
folder by UID (idempotent); the token is read from a file or an environment variable, never from
the command line (``--token`` is refused: argv is readable by every local user), and never printed.

Exit status: 0 done, 1 stale (--check) or refused by Grafana, 2 usage, missing token or Grafana
unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from monitor.secrets import Secret, SecretUnavailable

DEFAULT_TOKEN_ENV = "GRAFANA_TOKEN"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dashboards", parents=[common], help="build or push the Grafana dashboards")
    actions = p.add_subparsers(dest="dashboards_action", metavar="ACTION", required=True)
    b = actions.add_parser("build", parents=[common], help="generate the dashboards' JSON from code")
    b.add_argument("--out", type=Path, default=None, help="directory to write (default dashboards/json)")
    b.add_argument("--check", action="store_true", help="write nothing; exit 1 if the JSON there is stale")
    b.set_defaults(func=cmd_build)
    push = actions.add_parser("push", parents=[common], help="save the dashboards into a Grafana folder")
    push.add_argument("--url", required=True, help="Grafana base URL, e.g. https://grafana.example:3000")
    tok = push.add_mutually_exclusive_group()
    tok.add_argument("--token-file", type=Path, help="file holding a Grafana service-account token")
    tok.add_argument("--token-env", default=None,
                     help=f"environment variable holding the token (default {DEFAULT_TOKEN_ENV})")
    # Refused with a pointer to the above: a token in argv is readable by every local user.
    tok.add_argument("--token", default=None, help=argparse.SUPPRESS)
    push.add_argument("--folder", default="wardwatch", help="Grafana folder (created if missing; default wardwatch)")
    push.add_argument("--dir", type=Path, default=None,
                      help="push the JSON files of this directory instead of generating them")
    push.add_argument("--timeout", type=float, default=15.0, help="seconds per request (default 15)")
    push.set_defaults(func=cmd_push)


def cmd_build(args: argparse.Namespace) -> int:
    from dashboards import build

    out: Path = args.out or build.JSON_DIR
    if args.check:
        res = build.check(out)
        for name in res.stale:
            print(f"stale: {out / name} (run `wardwatch dashboards build`)", file=sys.stderr)
        if not res.stale:
            print(f"{len(res.unchanged)} dashboards up to date in {out}")
        return 1 if res.stale else 0
    res = build.write(out)
    for name in res.written:
        print(f"wrote {out / name}")
    print(f"{len(res.written)} written, {len(res.unchanged)} unchanged in {out}")
    return 0


def _token(args: argparse.Namespace) -> Secret | None:
    if args.token is not None:
        print("wardwatch: --token is not accepted: a token on the command line is visible to every local user "
              "(ps, /proc/PID/cmdline) and stays in shell history; use --token-file PATH or --token-env NAME "
              f"(default {DEFAULT_TOKEN_ENV})", file=sys.stderr)
        return None
    if args.token_file is not None:
        token = Secret.from_file(args.token_file, where="--token-file")
    else:
        token = Secret.from_env(args.token_env or DEFAULT_TOKEN_ENV, where="--token-env")
    try:
        token.load()
    except SecretUnavailable as e:
        print(f"wardwatch: {e}", file=sys.stderr)
        return None
    return token


def _load(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    from dashboards import build

    if args.dir is None:
        return build.build_all()
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(args.dir.glob("*.json"))}


def cmd_push(args: argparse.Namespace) -> int:
    from dashboards.push import PushError, push

    token = _token(args)
    if token is None:
        return 2
    docs = _load(args)
    if not docs:
        print("wardwatch: no dashboards to push", file=sys.stderr)
        return 2
    try:
        res = asyncio.run(push(args.url, token, docs, folder=args.folder, request_timeout=args.timeout))
    except PushError as e:
        print(f"wardwatch: {e}", file=sys.stderr)
        return 2 if "unreachable" in str(e) else 1
    print(f"folder {args.folder!r} (uid {res.folder_uid}){' created' if res.folder_created else ''}: "
          f"{len(res.created)} created, {len(res.updated)} updated, {len(res.unchanged)} unchanged")
    for label, uids in (("created", res.created), ("updated", res.updated)):
        for uid in uids:
            print(f"  {label} {uid}")
    return 0
