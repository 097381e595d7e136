"""Registration in one place, checked: every probe kind has the contract's shape, every
series a probe can emit is documented for /metrics, every reason is a Reason."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from monitor.exporter import METRICS
from probes import registry
from probes.base import ProbeConfig, Reason

PROBES_DIR = Path(registry.__file__).parent


def test_every_kind_has_config_and_async_run() -> None:
    for spec in registry.all_specs():
        assert issubclass(spec.config, ProbeConfig), spec.kind
        assert inspect.iscoroutinefunction(spec.run), spec.kind
        assert list(inspect.signature(spec.run).parameters) == ["target", "cfg", "ctx"], spec.kind
    assert len({s.kind for s in registry.all_specs()}) == len(registry.KINDS)


def test_every_emitted_series_has_help_and_type() -> None:
    names = set()
    for path in PROBES_DIR.glob("*.py"):
        names |= set(re.findall(r'"((?:probe|wardwatch)_[a-z0-9_]+)"', path.read_text()))
    missing = sorted(n for n in names if n not in METRICS)
    assert not missing, f"series without HELP/TYPE in monitor.exporter.METRICS: {missing}"


def test_reasons_are_snake_case_and_unique() -> None:
    values = [r.value for r in Reason]
    assert len(values) == len(set(values))
    assert all(re.fullmatch(r"[a-z0-9_]+", v) for v in values)
