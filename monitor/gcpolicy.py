"""Keep the cyclic garbage collector's full passes short and rare while probing.

A running service holds ~240,000 GC-tracked objects, nearly all long-lived (the inventory,
its targets, their last results, the resolver cache, pysnmp's MIB objects). Every full
(generation 2) collection walked all of them: 110-180 ms with the event loop stopped, and
every probe due meanwhile started that late. With a thousand hostile targets churning
memory there were ~50 such passes in two minutes: most of the p99 of schedule lateness
(BENCHMARKS.md "Hostile targets").

Two changes, both the process's choice (``wardwatch run`` calls ``start``; an engine embedded
elsewhere, in tests, the lab or the demo, never touches the collector):

- What is alive once the service has started, and again once every target has been probed,
  stays alive: ``gc.freeze()`` moves it out of the collector's sight. Frozen objects are still
  freed by reference counting; only a reference cycle among them would outlive its use, so an
  inventory reload (which replaces the long-lived set) thaws, collects and freezes again.
- A full pass waits for 100 middle-generation passes instead of 10 (``THRESHOLDS``); the
  young generations keep CPython's defaults, so cyclic garbage still goes quickly.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("wardwatch.gc")

THRESHOLDS = (700, 10, 100)  # CPython's are (700, 10, 10)


class _Policy:
    active = False  # set by start(); the module is the process's one policy


def start() -> None:
    """Turn the policy on for this process and settle what start-up built."""
    _Policy.active = True
    gc.set_threshold(*THRESHOLDS)
    settle("start-up")


def settle(after: str) -> None:
    """Collect what start-up, the first round or a reload left behind, then freeze everything
    still alive. Does nothing unless ``start`` turned the policy on."""
    if not _Policy.active:
        return
    began = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    log.info("gc after %s: %d long-lived objects frozen, out of the collector's full passes (%.0f ms)",
             after, gc.get_freeze_count(), (time.perf_counter() - began) * 1000)
