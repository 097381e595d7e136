"""Session-wide hygiene for tests that share one kernel.

Lab tests name their nftables tables ``wardwatch_<what>_<pid>``; a run killed hard
(SIGKILL, a CI timeout) cannot delete its table, and every lab on a machine uses the
same 127.x addresses, so a stale table would keep cutting units in later runs. Remove
the tables whose owning process is gone before any test starts; live ones (another
session on the machine) are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings

_TABLE = re.compile(r"^table inet (wardwatch_\w*?_(\d+))$", re.MULTILINE)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_lab_tables() -> list[str]:
    nft = shutil.which("nft") or "/usr/sbin/nft"
    if not os.access(nft, os.X_OK):
        return []
    listing = subprocess.run([nft, "list", "tables"], capture_output=True, text=True, check=False, timeout=10)
    removed = []
    for name, pid in _TABLE.findall(listing.stdout):
        if not _alive(int(pid)):
            with contextlib.suppress(subprocess.SubprocessError):
                subprocess.run([nft, "delete", "table", "inet", name], check=True, capture_output=True, timeout=10)
                removed.append(name)
    return removed


@pytest.fixture(scope="session", autouse=True)
def _no_stale_lab_tables() -> None:
    remove_stale_lab_tables()


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """`wardwatch` commands run in-process (cli.main) install a handler on the sys.stderr of the
    moment, which pytest closes after the test; put the root logger back as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# Hypothesis profiles: the normal suite keeps every property test short and bounded in time;
# HYPOTHESIS_PROFILE=long runs the fuzz tests deep (README, section Fuzzing).
settings.register_profile(
    "wardwatch",
    max_examples=150,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=20_000,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "wardwatch"))
