"""Where a ``wardwatch run`` loses its event loop: a diagnostic, loaded by putting this folder
on PYTHONPATH (Python imports ``sitecustomize`` at start-up), e.g.

    LOOPWATCH=/tmp/lw PYTHONPATH=bench/loopwatch python bench/hostile.py --repeats 1 --seconds 60

Only in processes whose arguments include ``run``; everything else starts untouched. It writes
``$LOOPWATCH.<pid>`` every 10 s:

- stalls: a task on the loop marks the time every 5 ms; a thread that sees the mark older than
  30 ms samples the stack of the loop's thread (and of every other thread that is not idle)
  every 5 ms until the loop comes back. Each sample is ~5 ms of stall. A stall whose samples
  sit in a call that releases the GIL (ssl, sendto, the event loop's own poll) while another
  thread runs Python is the loop waiting for the GIL, not working;
- the collector: count, total and longest pause of each generation (``gc.callbacks``).

- with ``LOOPWATCH_STEPS=MS`` and asyncio's own loop (``wardwatch run --loop asyncio``; the
  bench's ``--loop asyncio``): every callback or task step longer than MS milliseconds, summed
  by what ran it: ``probe target`` for a step of ``Engine._probe`` (its ``entry``), else the
  callback's or coroutine's name. Finer than the stalls: it finds the many 5-50 ms steps
  that make a p99, which is how the http probe's header flood was found.

``LOOPWATCH_FROM=S`` drops what was seen in the first S seconds (start-up, the first round).
Both threads cost a little CPU: compare runs made with it, not with runs made without.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import sys
import threading
import time
import traceback
from typing import Any

_OUT = os.environ.get("LOOPWATCH")
_IDLE = {"wait", "_worker", "get", "select", "_wait_for_tstate_lock", "sleep", "_watch"}


def _where(frame: Any, depth: int) -> tuple[str, ...]:
    root = os.getcwd()
    out = []
    for s in traceback.extract_stack(frame)[-depth:]:
        f = os.path.relpath(s.filename, root) if s.filename.startswith(root) else os.path.basename(s.filename)
        out.append(f"{f}:{s.lineno} {s.name}")
    return tuple(out)


def _step_name(handle: asyncio.Handle) -> str:
    cb = getattr(handle, "_callback", None)
    task = getattr(cb, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro: Any = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        entry = frame.f_locals.get("entry") if frame is not None else None
        target = getattr(entry, "target", None)
        if target is not None:
            return f"{target.probe} {target.target}"
        return str(getattr(coro, "__qualname__", coro))
    return str(getattr(cb, "__qualname__", cb))


class _Watch:
    def __init__(self, out: str) -> None:
        self.out = f"{out}.{os.getpid()}"
        self.mark = time.monotonic()
        self.loop_thread = threading.get_ident()
        self.samples: collections.Counter[tuple[str, ...]] = collections.Counter()
        self.stalls: list[float] = []
        self.gc: dict[int, list[float]] = collections.defaultdict(list)
        self._gc_start = 0.0
        self.skip_until = time.monotonic() + float(os.environ.get("LOOPWATCH_FROM", "0"))
        self.steps: dict[str, list[float]] = collections.defaultdict(list)

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif time.monotonic() >= self.skip_until:
            self.gc[info["generation"]].append(time.perf_counter() - self._gc_start)

    async def beat(self) -> None:
        while True:
            self.mark = time.monotonic()
            await asyncio.sleep(0.005)

    def _watch(self) -> None:
        stall_from: float | None = None
        last_write = time.monotonic()
        me = threading.get_ident()
        while True:
            time.sleep(0.005)
            now = time.monotonic()
            if now < self.skip_until:
                continue
            if now - self.mark > 0.03:
                stall_from = stall_from or self.mark
                for tid, frame in sys._current_frames().items():
                    if tid == self.loop_thread:
                        self.samples[("LOOP", *_where(frame, 6))] += 1
                    elif tid != me:
                        where = _where(frame, 6)
                        if where and where[-1].rsplit(" ", 1)[-1] not in _IDLE:
                            self.samples[("THREAD", *where)] += 1
            elif stall_from is not None:
                self.stalls.append(now - stall_from)
                stall_from = None
            if now - last_write > 10:
                last_write = now
                self.write()

    def write(self) -> None:
        with open(self.out, "w", encoding="utf-8") as f:
            s = sorted(self.stalls)
            f.write(f"argv {sys.argv}\n")
            f.write(f"stalls over 30 ms: {len(s)}, over 50 ms: {sum(x > 0.05 for x in s)}, "
                    f"longest {max(s, default=0) * 1000:.0f} ms\n")
            for g, pauses in sorted(self.gc.items()):
                f.write(f"gc generation {g}: {len(pauses)} passes, {sum(pauses):.3f} s in all, longest "
                        f"{max(pauses) * 1000:.1f} ms, over 50 ms: {sum(p > 0.05 for p in pauses)}\n")
            f.write(f"gc frozen objects: {gc.get_freeze_count()}, thresholds {gc.get_threshold()}\n")
            if self.steps:
                f.write("\nslow steps (count, total ms, longest ms, what ran):\n")
                for what, ds in sorted(self.steps.items(), key=lambda kv: -sum(kv[1]))[:60]:
                    f.write(f"{len(ds)}\t{sum(ds) * 1000:.1f}\t{max(ds) * 1000:.1f}\t{what}\n")
            for where, n in self.samples.most_common(40):
                f.write(f"\n{n} samples\n" + "".join(f"  {w}\n" for w in where))

    def time_steps(self, limit: float) -> None:
        handle_run = asyncio.events.Handle._run

        def timed(handle: asyncio.Handle) -> None:
            began = time.perf_counter()
            handle_run(handle)
            took = time.perf_counter() - began
            if took > limit and time.monotonic() >= self.skip_until:
                self.steps[_step_name(handle)].append(took)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign,assignment]

    def install(self) -> None:
        gc.callbacks.append(self.on_gc)
        if os.environ.get("LOOPWATCH_STEPS"):
            self.time_steps(float(os.environ["LOOPWATCH_STEPS"]) / 1000)
        run = asyncio.runners.Runner.run

        def watched(runner: asyncio.Runner, coro: Any, *, context: Any = None) -> Any:
            async def main() -> Any:
                self.loop_thread = threading.get_ident()
                beat = asyncio.get_running_loop().create_task(self.beat())
                threading.Thread(target=self._watch, name="loopwatch", daemon=True).start()
                try:
                    return await coro
                finally:
                    beat.cancel()
                    self.write()

            return run(runner, main(), context=context)

        asyncio.runners.Runner.run = watched  # type: ignore[method-assign,assignment]


if _OUT and "run" in sys.argv:
    _Watch(_OUT).install()
