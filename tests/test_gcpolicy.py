"""monitor/gcpolicy.py: what is alive at start-up leaves the collector's full passes; a reload
thaws, collects and freezes again; an engine embedded elsewhere never touches the collector."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from monitor import gcpolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gcpolicy._Policy.active = False


def _tracked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())  # generations 0-2: what a full pass walks


def test_start_freezes_what_is_alive() -> None:
    kept = Node()
    assert _tracked(kept)
    gcpolicy.start()
    assert gc.get_freeze_count() > 0
    assert not _tracked(kept)
    assert gc.get_threshold() == gcpolicy.THRESHOLDS
    later = Node()
    assert _tracked(later)  # only what was alive at the settle


def test_reload_collects_cycles_frozen_at_start_and_refreezes() -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: reference counting alone never frees it
    gone = weakref.ref(a)
    gcpolicy.start()
    del a, b
    gc.collect()
    assert gone() is not None  # frozen: full passes do not see it
    fresh = Node()
    gcpolicy.settle("a reload")  # what an inventory reload and the end of the first round call
    assert gone() is None
    assert not _tracked(fresh)


def test_without_a_start_a_reload_leaves_the_collector_alone() -> None:
    before = gc.get_freeze_count()
    a, b = Node(), Node()
    a.other, b.other = b, a
    thresholds = gc.get_threshold()
    gcpolicy.settle("a reload")
    assert gc.get_freeze_count() == before
    assert _tracked(a)
    assert gc.get_threshold() == thresholds
