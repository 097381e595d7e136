"""A real MTA on loopback that takes mail: Debian's exim4 in the foreground, private configuration.

(tests/peers/mta.py is the email probe's exim, which refuses every message; this one accepts
and queues what the e-mail notifier sends, so the test can read it back.)

It listens on a free 127.0.0.1 port, offers STARTTLS with a certificate from the test CA and
refuses MAIL FROM on an unencrypted session, and queues every accepted message without
delivering it (``queue_only``): the test reads the spooled headers and body. The spool and
log directories belong to Debian-exim (the daemon drops to that user), under a directory
other users can traverse (pytest's tmp_path is 0700).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from tests.peers.pki import TestCA
from tests.peers.proc import free_port, require, running, wait_tcp

_HEADER = re.compile(r"^\d{3,}[A-Za-z* ] (.*)$")

CONFIG = """\
primary_hostname = mx.wardwatch.test
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
pid_file_path = {dir}/exim.pid
daemon_smtp_ports = {port}
local_interfaces = 127.0.0.1
tls_advertise_hosts = *
tls_certificate = {dir}/mx.pem
tls_privatekey = {dir}/mx.key
queue_only = true
keep_environment =
acl_smtp_mail = acl_mail
acl_smtp_rcpt = acl_rcpt
begin acl
acl_mail:
  deny    message = STARTTLS required
          !encrypted = *
  accept
acl_rcpt:
  accept
{authenticators}begin routers
begin transports
"""

# SMTP AUTH PLAIN with one fixed account, offered only inside TLS (as a real smarthost would).
AUTHENTICATORS = r"""begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{@USER@}}{eq{$auth3}{@PASSWORD@}}}}
  server_set_id = $auth2
  server_advertise_condition = ${if def:tls_in_cipher}
"""


@dataclass
class Exim:
    dir: Path
    port: int
    ca: Path

    def messages(self) -> list[EmailMessage]:
        """The queued messages, oldest first (headers from the -H spool file, body from -D)."""
        out: list[tuple[float, EmailMessage]] = []
        spool = self.dir / "spool" / "input"
        for h in spool.glob("*-H") if spool.exists() else ():
            lines = h.read_text(errors="replace").splitlines()
            received = float(lines[3].split()[0]) if len(lines) > 3 else 0.0
            # After the envelope and a blank line: '<length><flag> Name: value' (3+ digits), continuation
            # lines start with whitespace.
            headers: list[str] = []
            blank = lines.index("") if "" in lines else len(lines)
            for line in lines[blank + 1:]:
                m = _HEADER.match(line)
                if m:
                    headers.append(m.group(1))
                elif headers and line[:1] in (" ", "\t"):
                    headers[-1] += "\n" + line
            body_lines = (h.with_name(h.name[:-2] + "-D")).read_bytes().split(b"\n", 1)
            raw = ("\n".join(headers) + "\n\n").encode() + (body_lines[1] if len(body_lines) > 1 else b"")
            out.append((received, message_from_bytes(raw, policy=policy.default)))  # type: ignore[arg-type]
        return [m for _, m in sorted(out, key=lambda x: x[0])]

    def log(self) -> str:
        path = self.dir / "log" / "mainlog"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def exim(ca: TestCA, auth: tuple[str, str] | None = None) -> Iterator[Exim]:
    """``auth``: (user, password) of the one account SMTP AUTH PLAIN accepts (letters, digits, '-')."""
    binary = require("exim4")
    user = pwd.getpwnam("Debian-exim")
    root = Path(tempfile.mkdtemp(prefix="wardwatch-exim-"))
    try:
        root.chmod(0o755)
        leaf = ca.issue("mx", ["127.0.0.1", "localhost", "mx.wardwatch.test"])
        shutil.copy(leaf.cert, root / "mx.pem")
        shutil.copy(leaf.key, root / "mx.key")
        for name in ("spool", "log"):
            (root / name).mkdir()
        for p in (root / "mx.pem", root / "mx.key", root / "spool", root / "log"):
            os.chown(p, user.pw_uid, user.pw_gid)
        (root / "mx.key").chmod(0o600)
        port = free_port()
        conf = root / "exim.conf"
        authenticators = AUTHENTICATORS.replace("@USER@", auth[0]).replace("@PASSWORD@", auth[1]) if auth else ""
        conf.write_text(CONFIG.format(dir=root, port=port, authenticators=authenticators))
        with running([binary, "-bdf", "-C", str(conf)], root / "stdout.log") as proc:
            wait_tcp("127.0.0.1", port, proc=proc)
            yield Exim(root, port, ca.bundle)
    finally:
        shutil.rmtree(root, ignore_errors=True)
