"""``wardwatch inventory init`` and ``wardwatch inventory validate``.

Exit codes: 0 done / valid, 2 anything wrong (problems on stderr, one line each). Nothing
escapes as a traceback: every failure is caught here, at the command's edge.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from monitor import units
from monitor.inventory import ConfigLookup, InventoryError, load_inventory
from monitor.secrets import check


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser | None = None,
) -> None:
    parents = [common] if common is not None else []
    p = sub.add_parser("inventory", parents=parents, help="create or check an inventory file")
    isub = p.add_subparsers(dest="inventory_command", required=True, metavar="COMMAND")

    init = isub.add_parser(
        "init",
        parents=parents,
        help="write a skeleton listing every commune-level unit of a province",
        description="Write an inventory skeleton from the official list of units. It validates as is; "
        "add each unit's services (link, vc_gov, ...) and lineage (merged_from).",
    )
    init.add_argument("--province", type=int, required=True, help="official province code, e.g. 79")
    init.add_argument(
        "-o",
        "--output",
        default="inventory.yaml",
        help="file to write ('-' for stdout; default inventory.yaml)",
    )
    init.add_argument(
        "--domain-suffix",
        help="domain of the unit portals and mail (default for 79: hochiminhcity.gov.vn)",
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=cmd_init)

    val = isub.add_parser(
        "validate",
        parents=parents,
        help="check an inventory file",
        description="Exit 0 and print a summary when valid; otherwise exit 2, one line per problem.",
    )
    val.add_argument("file", type=Path, help="inventory YAML")
    val.add_argument("--secrets", action="store_true",
                     help="also read every secret it names (*_env, *_file), as `wardwatch run` does at start")
    val.set_defaults(func=cmd_validate)


def cmd_init(args: argparse.Namespace) -> int:
    return init_inventory(args.province, args.output, args.domain_suffix, force=args.force)


def cmd_validate(args: argparse.Namespace) -> int:
    return validate_inventory(args.file, read_secrets=args.secrets)


def init_inventory(
    province: int,
    output: str | Path,
    domain_suffix: str | None = None,
    *,
    force: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        text = units.skeleton(province, domain_suffix)
    except units.UnknownProvinceError as e:
        print(f"inventory init: {e}", file=err)
        return 2
    except Exception as e:  # never a traceback at the command edge
        print(f"inventory init: internal error: {type(e).__name__}: {e}", file=err)
        return 2
    if str(output) == "-":
        out.write(text)
        return 0
    path = Path(output)
    try:
        mode = "w" if force else "x"
        with path.open(mode, encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        print(f"{path}: already exists (use --force to overwrite)", file=err)
        return 2
    except OSError as e:
        print(f"{path}: cannot write: {e.strerror or e}", file=err)
        return 2
    count = text.count("\n- code: ")
    print(f"{path}: wrote {count} units of province {province} ({units.provinces()[province]})", file=out)
    return 0


def validate_inventory(
    path: str | Path,
    *,
    config_for: ConfigLookup | None = None,
    system_resolver: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    read_secrets: bool = False,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        inv = load_inventory(path, config_for=config_for, system_resolver=system_resolver)
    except InventoryError as e:
        for problem in e.problems:
            print(problem, file=err)
        return 2
    except OSError as e:  # load_inventory reports these itself; belt and braces
        print(f"{path}: cannot read: {e.strerror or e}", file=err)
        return 2
    except Exception as e:  # never a traceback at the command edge
        print(f"{path}: internal error: {type(e).__name__}: {e}", file=err)
        return 2
    if read_secrets:
        missing = check(inv.secrets())
        for line in missing:
            print(line, file=err)
        if missing:
            return 2
    print(inv.summary(), file=out)
    return 0


__all__ = ["cmd_init", "cmd_validate", "init_inventory", "register", "validate_inventory"]
