"""Which wardwatch instances probe a target: ``--shard I/N --replicas R``.

Rendezvous (highest-random-weight) hashing: every instance id 1..N gets a weight per target,
BLAKE2b of the id and the target's stable key, and a target belongs to the R instances with
the highest weights. Each instance decides alone, from the key and (I, N, R), with no
coordination, and

* every target has exactly min(R, N) owners;
* a weight does not depend on N, so going from N to N+1 instances only moves the targets
  whose top R now include the new instance (about R/(N+1) of all assignments), and only onto
  it; removing the last instance moves only its share, onto the survivors;
* BLAKE2b, not ``hash()``: the same answer in every process and on every machine.

What is placed is a **unit**, not a single target (``unit_key``): all of a unit's targets go to
the same R instances. A unit's link is the parent of its other services, and the decisions that
hang on it are made where the children are probed: a child failing behind a failed link is
UNREACHABLE (not DOWN), one ``unit_isolated`` stands for the unit, a child's first failure
hurries the link's probe. Placed target by target, a replica could own a unit's e-mail check
but not its link, and page for the e-mail behind a cut link. 3,321 units (168 in a province)
spread evenly enough.

Pure functions; tests/test_placement.py holds their properties.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

# What a vantage name may be: a label value operators type and read (a site, a host).
_VANTAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")


def unit_key(unit_code: int) -> str:
    """What placement hashes for every target of a unit (see the module docstring)."""
    return f"unit:{unit_code}"


def weight(key: str, instance: int) -> int:
    """The rendezvous weight of ``instance`` for the target ``key`` (64 bits, stable)."""
    return int.from_bytes(hashlib.blake2b(f"{instance}\x00{key}".encode(), digest_size=8).digest(), "big")


def owners(key: str, instances: Iterable[int], replicas: int) -> tuple[int, ...]:
    """The ``replicas`` instances (of ``instances``) that probe ``key``, highest weight first.
    Ties (one in 2**64) are broken by the lower id, so the answer is still total."""
    ranked = sorted(instances, key=lambda i: (-weight(key, i), i))
    return tuple(ranked[:replicas])


def parse_shard(value: str) -> tuple[int, int]:
    """'I/N' with 1 <= I <= N (the first of three instances is 1/3)."""
    try:
        i_s, n_s = value.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise ValueError(f"shard must be I/N, e.g. 1/3 (got {value!r})") from None
    if not 1 <= i <= n:
        raise ValueError(f"shard I/N needs 1 <= I <= N (got {value!r})")
    return i, n


def check_vantage(value: str) -> str:
    if not _VANTAGE.match(value):
        raise ValueError(
            f"vantage must be 1-63 letters, digits, '_', '.', ':' or '-', starting with a letter or digit "
            f"(got {value!r})"
        )
    return value


@dataclass(frozen=True, slots=True)
class Placement:
    """This instance's place: id ``index`` of ``count``, each target probed by ``replicas``."""

    index: int = 1
    count: int = 1
    replicas: int = 1
    vantage: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard I/N needs 1 <= I <= N (got {self.index}/{self.count})")
        if self.replicas < 1:
            raise ValueError(f"--replicas must be at least 1 (got {self.replicas})")
        if self.replicas > self.count:
            raise ValueError(
                f"--replicas {self.replicas} needs at least {self.replicas} instances, but --shard "
                f"{self.index}/{self.count} says there are {self.count}"
            )

    @property
    def shard(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def everything(self) -> bool:
        """Every target is this instance's (one instance, or as many replicas as instances)."""
        return self.replicas >= self.count

    def owns(self, key: str) -> bool:
        return self.everything or self.index in owners(key, range(1, self.count + 1), self.replicas)
