"""A private mount namespace held open by a small process, for putting wardwatch's store on a
file system the test can fill up or break without touching the host's mounts.

    with MountNs() as ns:
        ns.run("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(d))
        svc = Service(..., prefix=ns.enter)     # wardwatch runs inside the namespace
        ns.copy_store(d / "wardwatch.db", out)  # a copy of the store, made from the test's side

The holder (``unshare -m --propagation private``) waits on its stdin: it goes away with the test
process, and the namespace (with its mounts) with the last process in it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import TracebackType


class MountNs:
    def __init__(self) -> None:
        self.holder: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MountNs:
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", "read _"],
            stdin=subprocess.PIPE, start_new_session=True,
        )
        # The namespace exists once the holder runs sh (its mount ns differs from ours).
        import time

        deadline = time.monotonic() + 10
        mine = Path("/proc/self/ns/mnt").stat().st_ino
        while Path(f"/proc/{self.holder.pid}/ns/mnt").stat().st_ino == mine:
            if time.monotonic() > deadline or self.holder.poll() is not None:
                raise RuntimeError("unshare -m did not start: is util-linux installed and are we root?")
            time.sleep(0.01)  # no event to await: unshare gives no signal when it has switched
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        if self.holder is not None:
            assert self.holder.stdin is not None
            self.holder.stdin.close()
            try:
                self.holder.wait(10)
            except subprocess.TimeoutExpired:
                self.holder.kill()
                self.holder.wait()

    @property
    def pid(self) -> int:
        assert self.holder is not None
        return self.holder.pid

    @property
    def enter(self) -> tuple[str, ...]:
        """A command prefix that runs the command inside the namespace."""
        return ("nsenter", "-t", str(self.pid), "-m", "--")

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*self.enter, *argv], capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} (in the mount namespace): exit {done.returncode}: "
                               f"{done.stderr.strip() or done.stdout.strip()}")
        return done

    def path(self, p: Path) -> Path:
        """``p`` as the namespace sees it, from outside (through the holder's root)."""
        return Path(f"/proc/{self.pid}/root") / p.relative_to("/")

    def copy_store(self, db: Path, to: Path) -> Path:
        """A copy of a (stopped) SQLite store and its WAL, made outside the namespace. Not opened
        in place: SQLite resolves the /proc/PID/root link to "/" and would open the host's path."""
        import shutil

        to.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal"):
            src = self.path(db.with_name(db.name + suffix))
            if src.exists():
                shutil.copyfile(src, to / (db.name + suffix))
        return to / db.name
