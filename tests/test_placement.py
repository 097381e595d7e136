"""Rendezvous placement (monitor/placement.py): properties of --shard I/N --replicas R."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.placement import Placement, check_vantage, owners, weight

REPO = Path(__file__).resolve().parents[1]

keys = st.text(min_size=1, max_size=80)
sizes = st.integers(min_value=1, max_value=12)


def ids(n: int) -> range:
    return range(1, n + 1)


@settings(max_examples=300)
@given(key=keys, n=sizes, r=st.integers(min_value=1, max_value=15))
def test_every_target_has_exactly_min_r_n_distinct_owners(key: str, n: int, r: int) -> None:
    got = owners(key, ids(n), r)
    assert len(got) == len(set(got)) == min(r, n)
    assert set(got) <= set(ids(n))
    if r <= n:
        # Each instance decides alone, and together they agree with owners().
        assert {i for i in ids(n) if Placement(i, n, r).owns(key)} == set(got)


@settings(max_examples=300)
@given(key=keys, n=sizes, r=st.integers(min_value=1, max_value=12))
def test_adding_an_instance_moves_at_most_one_assignment_and_only_onto_it(key: str, n: int, r: int) -> None:
    before, after = set(owners(key, ids(n), r)), set(owners(key, ids(n + 1), r))
    assert after - before <= {n + 1}
    assert len(before - after) <= (1 if r <= n else 0)


@settings(max_examples=300)
@given(key=keys, n=st.integers(min_value=2, max_value=12), r=st.integers(min_value=1, max_value=11),
       lost=st.integers(min_value=1, max_value=12))
def test_losing_any_instance_moves_only_its_share(key: str, n: int, r: int, lost: int) -> None:
    lost = (lost - 1) % n + 1
    before = set(owners(key, ids(n), r))
    after = set(owners(key, [i for i in ids(n) if i != lost], r))
    if lost not in before:
        assert after == before
    else:  # the lost one is replaced by at most one survivor; the other owners stay
        assert before - after == {lost} and len(after - before) <= 1


@pytest.mark.parametrize(("n", "r"), [(3, 1), (3, 2), (5, 2), (9, 3)])
def test_growth_moves_about_r_over_n_plus_1_of_targets_and_load_is_even(n: int, r: int) -> None:
    # 6,000 keys shaped like target keys: binomial spread around the expected share is ~1%.
    ks = [f"{26000 + u}|portal|http|https://u{u}.example/{s}" for u in range(2000) for s in range(3)]
    moved = sum(set(owners(k, ids(n), r)) != set(owners(k, ids(n + 1), r)) for k in ks)
    assert abs(moved / len(ks) - r / (n + 1)) < 0.03, moved / len(ks)
    load = {i: sum(Placement(i, n, r).owns(k) for k in ks) for i in ids(n)}
    assert sum(load.values()) == r * len(ks)
    for i, share in load.items():
        assert abs(share / len(ks) - r / n) < 0.04, (i, share / len(ks))


def test_weights_do_not_depend_on_python_hash_randomisation() -> None:
    ks = [f"k{i}|link|icmp|127.0.{i}.1" for i in range(50)]
    here = [list(owners(k, ids(5), 2)) for k in ks]
    code = (
        "import json, sys; from monitor.placement import owners; "
        "print(json.dumps([list(owners(k, range(1, 6), 2)) for k in json.loads(sys.argv[1])]))"
    )
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        out = subprocess.run([sys.executable, "-c", code, json.dumps(ks)], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=60, check=True).stdout
        assert json.loads(out) == here
    # Pinned: a change of the hash would silently move every target of a running fleet.
    assert weight("25747|link|icmp|127.14.0.1", 1) == 16151772337924099813
    assert owners("25747|link|icmp|127.14.0.1", ids(5), 2) == (1, 3)


@pytest.mark.parametrize(("index", "count", "replicas", "message"), [
    (1, 2, 3, "--replicas 3 needs at least 3 instances"),
    (1, 3, 0, "--replicas must be at least 1"),
    (4, 3, 1, "needs 1 <= I <= N"),
])
def test_placement_refuses_impossible_settings(index: int, count: int, replicas: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Placement(index, count, replicas)


def test_vantage_names() -> None:
    assert check_vantage("hcm-dc1") == "hcm-dc1"
    for bad in ("", "-x", "a b", "x" * 64, 'a"b'):
        with pytest.raises(ValueError, match="vantage must be"):
            check_vantage(bad)


def test_one_instance_or_as_many_replicas_as_instances_owns_everything() -> None:
    assert Placement().owns("anything") and Placement(2, 2, 2).owns("anything")
