"""Run one probe safely: the deadline is enforced and a bug becomes ``internal_error``.

Used alike by the engine, the /probe endpoint and ``wardwatch check`` so the three
can never disagree about what a probe returned.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from monitor.secrets import describe_error, scrub
from probes.base import ProbeContext, ProbeResult, Reason, Sample
from probes.registry import ProbeSpec

# Probes enforce their own deadline to keep partial timings; this grace is only
# the safety net for one that does not.
_GRACE = 0.5


async def run_probe(spec: ProbeSpec, target: str, cfg: Any, ctx: ProbeContext) -> ProbeResult:
    start = time.monotonic()
    ctx.started = start
    try:
        async with asyncio.timeout(ctx.timeout + _GRACE):
            result = await spec.run(target, cfg, ctx)
    except TimeoutError:
        return ProbeResult(False, Reason.TIMEOUT, f"no answer within {ctx.timeout:g}s", time.monotonic() - start)
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # really cancelled (shutdown, reload): let it go
        # A stray CancelledError from inside a library is a bug, not a stop request.
        return _internal_error(spec.kind, target, ctx, exc, start)
    except Exception as exc:  # a bug in a probe must not stop the schedule
        return _internal_error(spec.kind, target, ctx, exc, start)
    message = scrub(result.message) if result.message else ""  # the one exit of probe text
    if result.duration_seconds <= 0 or message != result.message:
        duration = result.duration_seconds if result.duration_seconds > 0 else time.monotonic() - start
        result = ProbeResult(result.success, result.reason, message, duration, result.samples)
    return result


def _internal_error(kind: str, target: str, ctx: ProbeContext, exc: BaseException, start: float) -> ProbeResult:
    ctx.logger.error("probe %s %s raised %s: %s", kind, target, type(exc).__name__, exc, exc_info=exc)
    return ProbeResult(False, Reason.INTERNAL_ERROR, describe_error(exc), time.monotonic() - start)


def common_samples(result: ProbeResult, timeout: float) -> tuple[Sample, ...]:
    """The series blackbox_exporter's handler adds to every probe."""
    return (
        Sample("probe_success", 1.0 if result.success else 0.0),
        Sample("probe_duration_seconds", result.duration_seconds),
        Sample("probe_timeout_seconds", timeout),
    )
