"""Network namespaces the fault tests create, and running test code inside one.

The test's own side ("monitor" namespace: wardwatch, the webhook receiver, the test's HTTP
calls) is a fresh namespace the test creates and joins on a worker thread, rather than the
namespace pytest happens to run in: so nothing is ever configured in the host's real
namespace, whether or not pytest was started under ``unshare -n`` (CI starts it without).
Every process the worker thread starts inherits that namespace.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def ip(*args: str) -> str:
    """``ip ARGS``; raises with ip's own message on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def inode(path: str) -> int:
    return os.stat(path).st_ino


@contextmanager
def netns(name: str) -> Iterator[str]:
    """A named network namespace (loopback up), deleted on exit with whatever is left in it."""
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False).stdout
        for pid in pids.split():
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        ip("netns", "del", name)


def _setns(name: str) -> None:
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


def run_in(name: str, main: Callable[[], Awaitable[T]], timeout: float) -> T:
    """``asyncio.run(main())`` on a thread that has joined network namespace ``name``."""
    out: dict[str, object] = {}

    def body() -> None:
        try:
            _setns(name)
            out["r"] = asyncio.run(main())  # type: ignore[arg-type]
        except BaseException as e:  # handed to the caller's thread
            out["e"] = e

    t = threading.Thread(target=body, name=f"in-netns-{name}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"the test body in netns {name} still runs after {timeout}s")
    if "e" in out:
        raise out["e"]  # type: ignore[misc]
    return out["r"]  # type: ignore[return-value]
