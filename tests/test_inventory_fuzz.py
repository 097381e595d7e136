"""Fuzzing the inventory loader: any text, YAML built to stress the reader (anchors, aliases,
tags, merges, nesting), and mutations of valid inventories (tests/data and the lab's). Every
outcome is an ``Inventory`` or an ``InventoryError`` whose problems name the file, the line
(when there is one) and the field; never another exception. The same through the CLI."""

from __future__ import annotations

import contextlib
import copy
import io
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor import cli
from monitor.inventory import MAX_DEPTH, Inventory, InventoryError, load_inventory, parse_inventory
from monitor.lab.config import LabConfig
from monitor.lab.inventory import inventory_text
from monitor.lab.plan import build_plan, select_units
from tests.fuzzing import mutated

RESOLVER = "127.0.0.1:53"
SOURCE = "fuzz.yaml"
FULL = (Path(__file__).parent / "data" / "inventory" / "good" / "full.yaml").read_text(encoding="utf-8")
LAB = inventory_text(LabConfig(directory=Path("/nonexistent/lab")), 79, build_plan(select_units(2)))
SEEDS = [FULL, LAB]
MAX_TEXT = 20_000  # characters: bounded time per example

# Found by these tests; each crashed the loader (or the whole process) before.
DEEP = "province: 79\nunits: " + "[" * 60_000 + "]" * 60_000 + "\n"  # libyaml's composer: SIGSEGV
NASTY = [
    "province: 79\nunits: &a [*a]\n",  # RecursionError
    "province: 79\nmonitor: &m {x: *m}\n",
    "province: 79\nunits: 2025-13-45\n",  # ValueError from the timestamp constructor
    "2025-02-30: 1\n",
    "province: 79" + "9" * 5000 + "\nunits: []\n",  # int() over 4,300 digits
    "a: " + "[" * 2000 + "]" * 2000 + "\n",  # RecursionError
    "".join("  " * i + "a:\n" for i in range(200)),
    "province: 79\n" + "a0: &a0 [x,x,x,x,x,x,x,x,x,x]\n"
    + "".join(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 9)),  # 10^8 values
    "province: 79\nunits: [\x00]\n",  # no line before
]


_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as a line break


def outcome(text: str) -> Inventory | InventoryError:
    try:
        return parse_inventory(text, SOURCE, system_resolver=RESOLVER)
    except InventoryError as e:
        return e


def assert_well_reported(result: Inventory | InventoryError, text: str) -> None:
    if isinstance(result, Inventory):
        return
    assert result.problems
    last_line = len(_LINE_BREAK.findall(text)) + 1
    for p in result.problems:
        assert p.file == SOURCE
        assert p.message.strip(), p
        assert isinstance(p.field, str)
        if p.line is None:  # only what is about the file as a whole
            assert p.message.startswith("YAML error"), p
        else:
            assert 1 <= p.line <= last_line, (p, last_line)
        if p.unit_code is not None:
            assert p.field, p  # a problem of a unit names what in it
        assert "Traceback" not in str(p)


# -- strategies ---------------------------------------------------------------------------------

_WORDS = ["province", "units", "code", "name", "type", "link", "address", "monitor", "defaults",
          "interval", "timeout", "templates", "portal", "url", "sip", "stun", "h323", "checks", "probe",
          "target", "29", "79", "all", "phường", "xã", "30s", "-1", "0x1f", "1e400", ".nan", "~", "null",
          "yes", "on", "2025-02-30", "2025-13-01 25:61:61", "127.0.0.1", "::1", "[::1]:99999",
          "sip:h:0", "http://[::1", "https://a.example/", "{code}", "{nope}", "'", '"', "\\", "%", "@",
          "`", "|", ">", "?", "!", "!!binary", "!!timestamp", "!!python/object:os.system", "!!set",
          "!!omap", "!!float", "!!int", "!!str", "&a", "*a", "*b", "<<", "---", "...", "#", "-", ":",
          ",", "[", "]", "{", "}", "9" * 50, "\t", "\ufeff", "\u2028", "\x85"]


@st.composite
def yamlish(draw: st.DrawFn) -> str:
    """Text built from YAML's own tokens and inventory words: reaches the reader's corners."""
    parts = draw(st.lists(st.one_of(st.sampled_from(_WORDS), st.sampled_from(["\n", " ", "  ", ": ", "- "]),
                                     st.text(max_size=6)), max_size=80))
    return "".join(parts)


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=30), st.sampled_from(_WORDS), st.binary(max_size=8),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.one_of(st.sampled_from(_WORDS), st.text(max_size=8), st.integers(-5, 5)), children, max_size=4),
    max_leaves=12,
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


@st.composite
def mutated_document(draw: st.DrawFn) -> str:
    """A valid inventory with a few values replaced, deleted, duplicated or added."""
    doc = copy.deepcopy(yaml.safe_load(draw(st.sampled_from(SEEDS))))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        op = draw(st.sampled_from(("replace", "delete", "add", "duplicate")))
        if op == "replace":
            parent[key] = draw(_VALUES)
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(_WORDS))] = draw(_VALUES)
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


# -- properties -------------------------------------------------------------------------------------


@given(st.text(max_size=MAX_TEXT))
def test_any_text(text: str) -> None:
    assert_well_reported(outcome(text), text)


@given(yamlish())
@example(NASTY[0])
@example(NASTY[1])
@example(NASTY[2])
@example(NASTY[3])
@example(NASTY[4])
@example(NASTY[5])
@example(NASTY[6])
@example(NASTY[7])
@example(NASTY[8])
@example("!!float")  # IndexError in PyYAML's float constructor
@example("\u2028province")  # a line break to YAML
@example("province: \nprovince")  # the end-of-stream mark was past the last line
@example("---")  # the root's line was 2 (found by HYPOTHESIS_PROFILE=long)
def test_yaml_corners(text: str) -> None:
    result = outcome(text)
    assert_well_reported(result, text)


def test_nesting_that_crashed_the_process_is_a_problem() -> None:
    result = outcome(DEEP)
    assert isinstance(result, InventoryError)
    assert [str(p) for p in result.problems] == [f"{SOURCE}:2: nested deeper than {MAX_DEPTH} levels"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (NASTY[0], 2, "an alias refers to a collection that contains it"),
        (NASTY[2], 2, "cannot read '2025-13-45': month must be in 1..12"),
        (NASTY[4], 1, "cannot read '7999999999"),
        (NASTY[7], 2, "anchors and aliases expand to too many values"),  # the anchored value
        ("a: !!float ''\n", 1, "cannot read '': string index out of range"),
        ("[", 1, "YAML syntax error"),  # libyaml's mark: line 2 of a one-line file
        (NASTY[8], 2, "YAML error: character #x0000 not allowed"),
    ],
)
def test_found_cases_name_their_line(text: str, line: int, message: str) -> None:
    result = outcome(text)
    assert isinstance(result, InventoryError)
    assert result.problems[0].line == line
    assert result.problems[0].message.startswith(message), result.problems[0]


@given(mutated_document())
@example(LAB.replace("interfaces:\n      - Gi0/0", "interfaces: null"))  # TypeError (HYPOTHESIS_PROFILE=long)
def test_mutated_inventories(text: str) -> None:
    assert_well_reported(outcome(text), text)


def test_snmp_interfaces_null_is_not_written() -> None:
    text = LAB.replace("interfaces:\n      - Gi0/0", "interfaces: null")
    assert text != LAB
    result = outcome(text)
    assert isinstance(result, Inventory), result
    snmp = [t for t in result.targets if t.probe == "snmp"]
    assert snmp and all(t.config.interfaces == () for t in snmp)  # type: ignore[attr-defined]


@given(st.sampled_from(SEEDS).flatmap(lambda s: mutated(s.encode(), max_ops=8)))
def test_byte_mutations_of_the_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="wardwatch-fuzz-") as d:
        path = Path(d) / SOURCE
        path.write_bytes(data)
        try:
            load_inventory(path, system_resolver=RESOLVER)
        except InventoryError as e:
            for p in e.problems:
                assert p.file == str(path) and p.message
                assert p.line is not None or p.message.startswith(("YAML error", "cannot read"))


@st.composite
def with_unknown_key(draw: st.DrawFn) -> tuple[str, int]:
    """A valid inventory with one unknown key added to one of its mappings: (text, its line)."""
    doc = yaml.safe_load(draw(st.sampled_from(SEEDS)))
    # not under monitor.modules: its keys are names the user chooses
    mappings = [p for p in _paths(doc) if isinstance(_get(doc, p), dict) and p[-1:] != ("modules",)]
    _get(doc, draw(st.sampled_from(mappings)))["zz_unknown"] = draw(_SCALARS)
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "zz_unknown:" in s)
    return text, line


@given(with_unknown_key())
def test_an_unknown_key_is_named_at_its_line(case: tuple[str, int]) -> None:
    text, line = case
    result = outcome(text)
    assert isinstance(result, InventoryError)
    hits = [p for p in result.problems if p.field.endswith("zz_unknown")]
    assert hits, result.problems
    assert all(p.line == line and "unknown" in p.message for p in hits), hits


# -- through the command line -------------------------------------------------------------------------


def _validate_in_process(path: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["inventory", "validate", str(path)])
    return rc, err.getvalue()


@settings(max_examples=60)
@given(st.one_of(mutated_document(), yamlish(), st.sampled_from(NASTY)))
@example("province: 79\n? '\u2028  '\n: null\n")  # a key with a line separator split its problem's line
def test_validate_command(text: str) -> None:
    with tempfile.TemporaryDirectory(prefix="wardwatch-fuzz-") as d:
        path = Path(d) / SOURCE
        path.write_text(text, encoding="utf-8")
        rc, err = _validate_in_process(path)
    assert rc in (0, 2)
    assert "Traceback" not in err and "internal error" not in err, err
    if rc == 2:
        assert all(line.startswith(str(path)) for line in err.splitlines()), err


@pytest.mark.parametrize("text", [DEEP, *NASTY[:3], NASTY[7]], ids=["deep", "alias-cycle", "map-cycle",
                                                                       "timestamp", "alias-bomb"])
def test_validate_command_in_a_process(tmp_path: Path, text: str) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "monitor", "inventory", "validate", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)  # not -11 (SIGSEGV)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"{path}:"), proc.stderr
