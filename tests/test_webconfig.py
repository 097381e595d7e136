"""The web config file: exporter-toolkit's keys accepted as written, every mistake named by file,
line and field, and `wardwatch run --web-config` refusing a bad file with exit 2 and no traceback."""

from __future__ import annotations

import asyncio
import ssl
import sys
from pathlib import Path

import bcrypt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from monitor.webconfig import WebConfigError, load_web_config
from tests.peers.pki import TestCA

HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    ca = TestCA(d, "web test CA")
    ca.issue("server", ["127.0.0.1"])
    other = TestCA(d / "other", "other CA")
    other.issue("foreign", ["127.0.0.1"])
    key = ec.generate_private_key(ec.SECP256R1())
    (d / "encrypted.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass"),
    ))
    (d / "garbage.pem").write_text("not a certificate\n")
    return d


def write(pki: Path, text: str, name: str = "web.yml") -> Path:
    path = pki / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(WebConfigError) as exc:
        load_web_config(path)
    return [str(p) for p in exc.value.problems]


def test_exporter_toolkit_file_loads_with_paths_relative_to_it(pki: Path) -> None:
    path = write(pki, f"""\
tls_server_config:
  cert_file: server.pem
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.pem
  min_version: TLS13
basic_auth_users:
  prometheus: {HASH}
  alice: {HASH.replace("$2b$", "$2y$")}
  bob: {HASH.replace("$2b$", "$2a$")}
wardwatch:
  roles: {{alice: admin}}
  api_rate_limit: {{requests_per_second: 2.5, burst: 7}}
""")
    cfg = load_web_config(path)
    assert cfg.tls is not None and cfg.tls.cert_file == pki / "server.pem" and cfg.tls.client_ca_file == pki / "ca.pem"
    assert cfg.ssl_context is not None
    assert cfg.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert cfg.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert set(cfg.users) == {"prometheus", "alice", "bob"}
    assert cfg.role("alice") == "admin" and cfg.role("prometheus") == "read-only"
    assert cfg.rate_limit.rate == 2.5 and cfg.rate_limit.burst == 7
    assert cfg.dummy_hash.startswith(b"$2b$04$")  # unknown users cost what known ones do
    assert bcrypt.checkpw(b"secret", cfg.users["alice"])


def test_basic_auth_only_no_tls(pki: Path) -> None:
    cfg = load_web_config(write(pki, f"basic_auth_users:\n  prometheus: '{HASH}'\n"))
    assert cfg.tls is None and cfg.ssl_context is None and cfg.auth


@pytest.mark.parametrize(("text", "want"), [
    ("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  cert_fil: x\n",
     ["web.yml:4: tls_server_config.cert_fil: unknown key"]),
    ("basic_auth_users: {}\nweb_listen: x\n", ["web.yml:2: web_listen: unknown key"]),
    ("http_server_config:\n  http2: false\n",
     ["web.yml:1: http_server_config: exporter-toolkit option that wardwatch does not support"]),
    ("tls_server_config:\n  key_file: server.key\n", ["web.yml:1: tls_server_config.cert_file: required"]),
    ("tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n",
     ["web.yml:2: tls_server_config.cert_file: cannot read {pki}/missing.pem: No such file or directory"]),
    ("tls_server_config:\n  cert_file: garbage.pem\n  key_file: server.key\n",
     ["web.yml:2: tls_server_config.cert_file: {pki}/garbage.pem: no PEM certificate in it"]),
    ("tls_server_config:\n  cert_file: server.pem\n  key_file: other/foreign.key\n",
     ["web.yml:3: tls_server_config.key_file: {pki}/other/foreign.key: it does not match cert_file"]),
    ("tls_server_config:\n  cert_file: server.pem\n  key_file: encrypted.key\n",
     ["web.yml:3: tls_server_config.key_file: {pki}/encrypted.key: the key is encrypted; wardwatch needs it "
      "unencrypted"]),
    ("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireClientCerts\n",
     ["web.yml:4: tls_server_config.client_auth_type: must be 'NoClientCert', 'RequestClientCert', "
      "'RequireAnyClientCert', 'VerifyClientCertIfGiven' or 'RequireAndVerifyClientCert', got 'RequireClientCerts'"]),
    ("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
     "  client_auth_type: RequireAndVerifyClientCert\n",
     ["web.yml:4: tls_server_config.client_auth_type: RequireAndVerifyClientCert needs client_ca_file (the CA that "
      "issues client certificates)"]),
    ("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n",
     ["web.yml:4: tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert: set a "
      "client_auth_type that uses it"]),
    ("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
     "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: garbage.pem\n",
     ["web.yml:5: tls_server_config.client_ca_file: {pki}/garbage.pem: no PEM certificate in it"]),
    ("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS10\n",
     ["web.yml:4: tls_server_config.min_version: must be 'TLS12' or 'TLS13', got 'TLS10'"]),
    ("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS13\n"
     "  max_version: TLS12\n", ["web.yml:5: tls_server_config.max_version: TLS12 is below min_version TLS13"]),
    ("basic_auth_users:\n  alice: $2b$10$tooshort\n",
     ["web.yml:2: basic_auth_users.alice: not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04-31, 53 characters "
      "after it); make one with: htpasswd -nBC 10 '' | tr -d ':\\n'  or  python3 -c 'import bcrypt, getpass; "
      "print(bcrypt.hashpw(getpass.getpass().encode(), bcrypt.gensalt()).decode())'"]),
    ("basic_auth_users:\n  alice: 12345\n", ["web.yml:2: basic_auth_users.alice: must be a bcrypt hash (a string)"]),
    (f"basic_auth_users:\n  ok: {HASH}\n  'a:b': {HASH}\n",
     ["web.yml:3: basic_auth_users.a:b: a user name cannot contain ':' (basic auth splits user and password "
      "there)"]),
    (f"basic_auth_users:\n  alice: {HASH}\nwardwatch:\n  roles:\n    alice: admin\n    bob: admin\n",
     ["web.yml:6: wardwatch.roles.bob: no such user in basic_auth_users"]),
    (f"basic_auth_users:\n  alice: {HASH}\nwardwatch:\n  roles: {{alice: root}}\n",
     ["web.yml:4: wardwatch.roles.alice: must be 'admin' or 'read-only', got 'root'"]),
    ("wardwatch:\n  roles: {alice: admin}\n", ["web.yml:2: wardwatch.roles: roles need basic_auth_users"]),
    ("wardwatch:\n  api_rate_limit: {requests_per_second: 0}\n",
     ["web.yml:2: wardwatch.api_rate_limit.requests_per_second: Input should be greater than 0"]),
    (f"basic_auth_users:\n  alice: {HASH}\n  alice: {HASH}\n",
     ["web.yml:3: basic_auth_users.alice: duplicate key (first at line 2)"]),
    ("tls_server_config: [\n", ["web.yml:1: YAML syntax error: *"]),  # the last line, not one past the end
    ("", ["web.yml:1: file is empty"]),
    ("- a\n", ["web.yml:1: must be a mapping of tls_server_config, basic_auth_users, wardwatch"]),
])
def test_problems_name_file_line_and_field(pki: Path, text: str, want: list[str]) -> None:
    got = problems(write(pki, text))
    expected = [w.format(pki=pki).replace("web.yml", str(pki / "web.yml"), 1) for w in want]
    # '*' ends a prefix: the YAML parser's own wording differs between its C and Python builds.
    assert [g[: len(w) - 1] if w.endswith("*") else g for g, w in zip(got, expected, strict=False)] == [
        w.removesuffix("*") for w in expected
    ] and len(got) == len(expected), got


def test_every_problem_at_once_in_file_order(pki: Path) -> None:
    got = problems(write(pki, "basic_auth_users:\n  alice: nope\ntls_server_config:\n  cert_file: server.pem\n"
                              "  key_file: server.key\n  colour: red\n"))
    assert [g.split(": ")[0].rsplit(":", 1)[1] for g in got] == ["2", "6"]


def test_unreadable_file(pki: Path) -> None:
    assert problems(pki / "nope.yml") == [f"{pki}/nope.yml: cannot read: No such file or directory"]


async def test_run_refuses_a_bad_web_config_with_exit_2(pki: Path, tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("province: 79\ndefaults: {templates: {portal: null, email: null}}\n"
                   "units:\n  - {code: 26506, name: Phường Vũng Tàu, type: phường}\n", encoding="utf-8")
    bad = write(pki, "basic_auth_users:\n  alice: plaintext-password\n", "bad.yml")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "run", "-c", str(inv), "--web-config", str(bad),
        "--store", str(tmp_path / "s.db"), "--listen", "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    text = (out + err).decode()
    assert "Traceback" not in text
    assert f"{bad}:2: basic_auth_users.alice: not a bcrypt hash" in text
    assert "plaintext-password" not in text  # a value in basic_auth_users is never echoed
