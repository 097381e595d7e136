"""monitor/secrets.py: a Secret never shows its value; sources fail with where and why; every
value read is scrubbed from log lines, probe messages and error text."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
import pickle
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import BaseModel, ValidationError

from monitor import logs, secrets
from monitor.inventory import InventoryError, parse_inventory
from monitor.secrets import REDACTED, Secret, SecretUnavailable
from probes import certfile, registry, snmp
from probes.base import ProbeContext, ProbeResult
from probes.runner import run_probe

VALUE = "s3cr3t-Value/with:odd chars&=+"


def test_the_value_shows_nowhere_but_reveal() -> None:
    s = Secret(VALUE)
    assert s.reveal() == VALUE

    class Model(BaseModel):
        key: Secret

    @dataclasses.dataclass
    class Holder:
        key: Secret

    m = Model(key=s)
    shown = [repr(s), str(s), f"{s}", f"{s!r}", f"{s:>40}", "%s %r" % (s, s),  # noqa: UP031 - logging's way
             json.dumps({"k": s}, default=str),
             repr(m), str(m), m.model_dump_json(), json.dumps(m.model_dump(mode="json")), repr(m.model_dump()),
             repr(Holder(s)), repr(dataclasses.asdict(Holder(s))), repr(copy.deepcopy(m)), repr([s, {"a": s}])]
    for text in shown:
        assert VALUE not in text and "s3cr3t" not in text, text
    assert m.model_dump_json() == '{"key":"<secret>"}'
    assert repr(s) == "Secret(<a literal value>)"
    assert copy.copy(s) is s and copy.deepcopy(s) is s
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(s)
    assert Model.model_json_schema()["properties"]["key"]["writeOnly"] is True


def test_validation_errors_never_echo_a_secret() -> None:
    """pydantic puts the input in its error text; Configs holding secrets hide it."""
    with pytest.raises(ValidationError) as e:
        snmp.Config(community=12345678901234)  # type: ignore[arg-type]
    assert "12345678901234" not in str(e.value) and "must be a non-empty string" in str(e.value)
    with pytest.raises(ValidationError) as e:
        snmp.Config(community="c0mmunity-literal", community_env="WW_X")  # type: ignore[arg-type]
    assert "c0mmunity-literal" not in str(e.value) and "give only one of community" in str(e.value)


def test_sources_fail_with_where_and_why_never_the_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WW_TEST_UNSET", raising=False)
    monkeypatch.setenv("WW_TEST_EMPTY", "  ")
    monkeypatch.setenv("WW_TEST_SET", "  from-the-env\n")
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "latin1").write_bytes(b"caf\xe9")
    (tmp_path / "ok").write_text("from-a-file\n")
    where = "inv.yaml:7: unit 26506: link.snmp.auth_key_env"
    cases = {
        Secret.from_env("WW_TEST_UNSET", where): f"{where}: environment variable WW_TEST_UNSET is not set",
        Secret.from_env("WW_TEST_EMPTY", where): f"{where}: environment variable WW_TEST_EMPTY is empty",
        Secret.from_file(tmp_path / "missing", "x"): f"x: cannot read {tmp_path / 'missing'}: No such file or "
                                                     "directory",
        Secret.from_file(tmp_path / "empty"): f"{tmp_path / 'empty'} is empty",
        Secret.from_file(tmp_path / "latin1"): f"{tmp_path / 'latin1'} is not UTF-8 text",
        # the secret itself, pasted where the variable's name belongs: not echoed
        Secret.from_env("hunter2-pasted-secret", "f:1: k"): "f:1: k: not an environment variable name (letters, "
                                                             "digits, '_'; not shown, in case it is the secret itself)",
    }
    for s, message in cases.items():
        with pytest.raises(SecretUnavailable) as e:
            s.reveal()
        assert str(e.value) == message
    assert "hunter2" not in repr(Secret.from_env("hunter2-pasted-secret"))
    assert Secret.from_env("WW_TEST_SET").reveal() == "from-the-env"  # surrounding whitespace dropped
    assert Secret.from_file(tmp_path / "ok").reveal() == "from-a-file"
    assert secrets.check([*cases, Secret.from_env("WW_TEST_SET")]) == list(cases.values())


def test_scrub_replaces_every_value_read_and_its_url_forms(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("file-secret-77\n")
    s = Secret.from_file(tmp_path / "t")
    assert secrets.scrub("a file-secret-77 b") == "a file-secret-77 b"  # not read yet: not known
    s.load()
    Secret(VALUE)
    text = (f"x file-secret-77 y {VALUE} z https://h.example/bot{VALUE}/send "
            "s3cr3t-Value%2Fwith%3Aodd%20chars%26%3D%2B s3cr3t-Value%2Fwith%3Aodd+chars%26%3D%2B")
    clean = secrets.scrub(text)
    assert "file-secret-77" not in clean and "s3cr3t" not in clean, clean
    assert clean.startswith("x <secret> y <secret> z https://h.example/bot<secret>/send")
    Secret("abc")  # too short to scrub without mangling ordinary words
    assert secrets.scrub("abcdef") == "abcdef"


def test_log_lines_are_scrubbed_messages_arguments_extras_and_tracebacks() -> None:
    Secret("log-secret-4242")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        _log_lines_are_scrubbed()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def _log_lines_are_scrubbed() -> None:
    for fmt in ("text", "json"):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        logs.setup(fmt, "debug")
        root = logging.getLogger()
        handler.setFormatter(root.handlers[0].formatter)
        root.handlers[:] = [handler]
        log = logging.getLogger("wardwatch.test")
        log.debug("token %s in a URL https://x.example/botlog-secret-4242/y", "log-secret-4242",
                  extra={"url": "log-secret-4242"})
        try:
            raise ValueError("failed with log-secret-4242")
        except ValueError:
            log.exception("boom")
        out = stream.getvalue()
        assert "log-secret-4242" not in out and out.count(REDACTED) >= 4, out
        assert "Traceback" in out or fmt == "json"


async def test_probe_messages_are_scrubbed_even_from_a_raising_probe() -> None:
    s = Secret("probe-secret-9191")
    spec = registry.get("certfile")

    async def raising(target: str, cfg: object, ctx: ProbeContext) -> ProbeResult:
        raise RuntimeError(f"library said: bad key {s.reveal()}")

    async def telling(target: str, cfg: object, ctx: ProbeContext) -> ProbeResult:
        return ProbeResult(False, None, f"GET https://x.example/?key={s.reveal()}")

    for run in (raising, telling):
        result = await run_probe(dataclasses.replace(spec, run=run), "t", certfile.Config(), ProbeContext(timeout=1))
        assert "probe-secret-9191" not in result.message and REDACTED in result.message, result.message


INVENTORY = """\
province: 79
monitor:
  modules:
    v3: {probe: snmp, v3_user: noc, auth_key_env: WW_TEST_MODULE_AUTH}
defaults:
  services:
    link:
      snmp: {version: 3, user: noc, auth_key_env: WW_TEST_SNMP_AUTH}
units:
  - code: 26506
    name: Phường Vũng Tàu
    type: phường
    link: {address: 127.0.0.1, snmp: {priv_key_file: /nonexistent/wardwatch-priv}}
    checks:
      - {service: certs, probe: certfile, target: /etc/ssl/x.p12, password_env: WW_TEST_P12}
"""


def test_the_inventory_locates_every_secret_and_run_reads_them_all(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WW_TEST_MODULE_AUTH", "WW_TEST_SNMP_AUTH", "WW_TEST_P12"):
        monkeypatch.delenv(name, raising=False)
    inv = parse_inventory(INVENTORY, "inv.yaml", system_resolver="127.0.0.53:53")
    assert secrets.check(inv.secrets()) == [
        "inv.yaml:4: monitor.modules.v3.auth_key_env: environment variable WW_TEST_MODULE_AUTH is not set",
        "inv.yaml:8: defaults.services.link.snmp.auth_key_env: environment variable WW_TEST_SNMP_AUTH is not set",
        "inv.yaml:13: unit 26506: link.snmp.priv_key_file: cannot read /nonexistent/wardwatch-priv: "
        "No such file or directory",
        "inv.yaml:15: unit 26506: checks[0].password_env: environment variable WW_TEST_P12 is not set",
    ]


@pytest.mark.parametrize(("line", "field"), [
    ("    link: {address: 127.0.0.1, snmp: {community_env: hunter2-secret!, version: 2c}}", "link.snmp.community_env"),
    ("    checks: [{service: certs, probe: certfile, target: /x.p12, password: hunter2-secret}]",
     "checks[0].password"),
])
def test_a_secret_written_in_the_inventory_is_refused_and_not_echoed(line: str, field: str) -> None:
    head = INVENTORY.split("units:", maxsplit=1)[0].replace("auth_key_env: WW_TEST_SNMP_AUTH", "community_env: C")
    text = head + "units:\n  - code: 26506\n    name: Phường Vũng Tàu\n    type: phường\n" + line + "\n"
    with pytest.raises(InventoryError) as e:
        parse_inventory(text, "inv.yaml", system_resolver="127.0.0.53:53")
    [problem] = [p for p in e.value.problems if p.field == field]
    assert problem.line == text.splitlines().index(line) + 1 and "hunter2" not in str(e.value), str(e.value)
    assert "never written in the inventory" in problem.message or "not an environment variable name" in \
        problem.message


def test_urls_with_a_password() -> None:
    """A probed URL is a label value: a password there is refused (and not echoed). A receiver's
    Basic auth in its URL (aiohttp sends it) is accepted, and scrubbed like a secret."""
    text = INVENTORY.split("units:", maxsplit=1)[0] + (
        "units:\n  - code: 26506\n    name: Phường Vũng Tàu\n    type: phường\n"
        "    checks: [{service: portal, probe: http, target: 'https://noc:url-pw-31337@portal.example.vn/'}]\n"
        "alerting:\n  receivers:\n"
        "    am: {type: alertmanager, url: 'https://wardwatch:am-pw-42424@am.example.vn/'}\n")
    with pytest.raises(InventoryError) as e:
        parse_inventory(text, "inv.yaml", system_resolver="127.0.0.53:53")
    [problem] = e.value.problems
    assert problem.field == "checks[0].target" and "remove user:password@" in problem.message
    assert "url-pw-31337" not in str(e.value)
    assert secrets.scrub("POST https://wardwatch:am-pw-42424@am.example.vn/api/v2/alerts") == (
        "POST https://wardwatch:<secret>@am.example.vn/api/v2/alerts")


def test_validate_reads_the_secrets_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.commands.inventory import validate_inventory

    monkeypatch.setenv("WW_TEST_MODULE_AUTH", "validate-secret-1")
    monkeypatch.setenv("WW_TEST_SNMP_AUTH", "validate-secret-2")
    monkeypatch.delenv("WW_TEST_P12", raising=False)
    inv = tmp_path / "inv.yaml"
    inv.write_text(INVENTORY)
    assert validate_inventory(inv, system_resolver="127.0.0.53:53") == 0  # the file alone is valid
    assert validate_inventory(inv, system_resolver="127.0.0.53:53", read_secrets=True) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{inv}:13: unit 26506: link.snmp.priv_key_file: cannot read /nonexistent/wardwatch-priv: "
                   "No such file or directory",
                   f"{inv}:15: unit 26506: checks[0].password_env: environment variable WW_TEST_P12 is not set"]


def test_scrub_through_the_prefix_index_matches_a_plain_scan() -> None:
    # Past _SCAN_LIMIT values scrub() looks candidates up by prefix; it must find what a scan finds,
    # nested values and URL-encoded forms included (the values are random: nothing else matches).
    import secrets as rnd

    from monitor import secrets as sec

    values = [rnd.token_hex(8) for _ in range(2 * sec._SCAN_LIMIT)] + ["a/b c+d=e" + rnd.token_hex(4)]
    inner = values[3][:6]  # a shorter secret inside a longer one
    for v in (*values, inner):
        sec.remember(v)
    assert len(sec._KNOWN.values) > sec._SCAN_LIMIT
    text = f"x{values[0]}y {values[3]} {inner}z /bot{quote(values[-1], safe='')}/send {values[-1]}"
    got = sec.scrub(text)
    assert got == (f"x{sec.REDACTED}y {sec.REDACTED} {sec.REDACTED}z /bot{sec.REDACTED}/send {sec.REDACTED}")
