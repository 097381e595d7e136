"""A unit's link cut for real: the unit lives in a network namespace of its own, joined to the
test's side by a veth pair, and the cut is the unit's end of the pair going down.

    ns "mon" (the test's own side)                    ns "unit"
    wardwatch, webhook receiver, control unit         198.51.100.2  the unit's router (ping)
    wwf0 198.51.100.1/24 <--- veth --->   wwf1     198.51.100.3  the meeting room: ping + HTTP :8080
                                                                 (python -m http.server, a real process)

Addresses: 198.51.100.0/24 is TEST-NET-2 (RFC 5737), documentation only and never routed, and
it exists only on the veth pair inside these two namespaces, which the test creates (tests/faults/
netns.py): the host's real namespace is never configured (checked: its links and addresses are
the same before and after). Not TEST-NET-1: some sandboxes give the host itself 192.0.2.x.
The control unit is on loopback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.alerts.receivers import Receiver
from tests.faults import netns
from tests.faults.service import HOOK_KEY, Service, alerting_yaml, unit_yaml, units, until

pytestmark = pytest.mark.slow

ROUTER, ROOM, PORT = "198.51.100.2", "198.51.100.3", 8080
(CUT, *_), (CONTROL, *_) = units(2)


def inventory(receiver: str, control_portal: str) -> str:
    (a, b) = units(2)
    return (
        "province: 79\n"
        "defaults: {interval: 2s, timeout: 1s, rechecks: 2, recheck_spacing: 0.3s,"
        " probes: {icmp: {count: 2, interval_seconds: 0.1}}}\n"
        "units:\n"
        + unit_yaml(*a, f"link: {{address: {ROUTER}}}\n"
                        f"vc_gov: {{address: {ROOM}, tcp_ports: [{PORT}]}}\n"
                        f'portal: {{url: "http://{ROOM}:{PORT}/"}}')
        + unit_yaml(*b, f'link: {{address: 127.0.0.1}}\nportal: {{url: "{control_portal}/"}}')
        + alerting_yaml(receiver)
    )


def test_link_cut_isolates_the_unit_and_recovers(tmp_path: Path) -> None:
    tag = f"wwf{os.getpid()}"
    own = netns.inode("/proc/self/ns/net")
    host_before = (netns.ip("-o", "link", "show"), netns.ip("-o", "addr", "show"))
    with netns.netns(f"{tag}m") as mon, netns.netns(f"{tag}u") as unit:
        netns.ip("-n", mon, "link", "add", "wwf0", "type", "veth", "peer", "name", "wwf1", "netns", unit)
        netns.ip("-n", mon, "addr", "add", "198.51.100.1/24", "dev", "wwf0")
        netns.ip("-n", unit, "addr", "add", f"{ROUTER}/24", "dev", "wwf1")
        netns.ip("-n", unit, "addr", "add", f"{ROOM}/24", "dev", "wwf1")
        netns.ip("-n", mon, "link", "set", "wwf0", "up")
        netns.ip("-n", unit, "link", "set", "wwf1", "up")
        # Nothing of this is in the namespace pytest runs in (the host's, under CI).
        assert own not in (netns.inode(f"/run/netns/{mon}"), netns.inode(f"/run/netns/{unit}"))
        assert (netns.ip("-o", "link", "show"), netns.ip("-o", "addr", "show")) == host_before

        with open(tmp_path / "http-server.log", "wb") as log:
            server = subprocess.Popen(
                ["ip", "netns", "exec", unit, sys.executable, "-m", "http.server", str(PORT), "--bind", ROOM],
                stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
            )
        try:
            netns.run_in(mon, lambda: _scenario(tmp_path, unit), timeout=110)
        finally:
            server.kill()
            server.wait()


async def _scenario(tmp: Path, unit_ns: str) -> None:
    receiver = Receiver(key=HOOK_KEY)
    control = Receiver()  # the control unit's portal: any 200
    await receiver.start()
    await control.start()
    inv = tmp / "inventory.yaml"
    inv.write_text(inventory(receiver.url, control.url))
    svc = Service(tmp, inv, tmp / "wardwatch.db")
    try:
        await svc.start()

        async def all_up() -> bool:
            return all(r["state"] == "up" for r in (await svc.states()).values())

        await until("every target up before the cut", all_up, 30)
        assert receiver.requests == []

        netns.ip("-n", unit_ns, "link", "set", "wwf1", "down")

        async def isolated() -> dict[str, str] | None:
            st = {k: r["state"] for k, r in (await svc.states(CUT)).items()}
            links = {k: v for k, v in st.items() if "/link/" in k}
            others = {k: v for k, v in st.items() if "/link/" not in k}
            ok = set(links.values()) == {"down"} and set(others.values()) == {"unreachable"}
            return st if ok else None

        seen = await until("link DOWN, the unit's other targets UNREACHABLE", isolated, 20)
        assert len(seen) == 4, seen  # link icmp; room icmp + tcp; portal http
        metrics = await svc.metrics()  # /metrics goes on serving, and says so
        assert f'wardwatch_target_state{{province="79",unit_code="{CUT}"' in metrics

        def got(kind: str | None = None, event: str | None = None, code: int | None = CUT) -> list[dict[str, object]]:
            out = []
            for r in receiver.requests:
                b = r.json()
                if (code is None or b["alert"]["unit_code"] == code) and kind in (None, b["alert"]["kind"]) \
                        and event in (None, b["event"]):
                    out.append(b)
            return out

        async def paged() -> list[dict[str, object]]:
            return got("unit_isolated", "firing")

        [page] = await until("one unit_isolated page", paged, 20)
        # Children confirm DOWN-equivalent failures for two more rounds: still that one page.
        for _ in range(3):
            await until("another round of the unit's probes", _round_passed(svc), 10)
        assert [(b["alert"]["kind"], b["event"]) for b in got()] == [("unit_isolated", "firing")]
        children = page["alert"]["children"]  # type: ignore[index]
        assert len(children) == 3, children
        assert all(r["state"] == "up" for r in (await svc.states(CONTROL)).values())
        assert (await svc.states(CUT)) and set((await isolated() or {}).values()) == {"down", "unreachable"}

        netns.ip("-n", unit_ns, "link", "set", "wwf1", "up")
        await until("every target up again after the link is back", all_up, 20)

        async def resolved() -> list[dict[str, object]]:
            return got("unit_isolated", "resolved")

        await until("the unit_isolated resolution", resolved, 15)
        for _ in range(2):
            await until("another round", _round_passed(svc), 10)
        assert [(b["alert"]["kind"], b["event"]) for b in got(code=None)] == [
            ("unit_isolated", "firing"), ("unit_isolated", "resolved")]
        keys = [r.json()["dedup_key"] for r in receiver.requests]
        assert len(keys) == len(set(keys)) == 2
        assert receiver.bad_signatures == 0
        assert await svc.stop() == 0
    finally:
        await svc.stop()
        await receiver.stop()
        await control.stop()


def _round_passed(svc: Service) -> Callable[[], Awaitable[bool]]:
    """A checker that is true once every target of the cut unit was probed again."""
    first: dict[str, str | None] = {}

    async def check() -> bool:
        rows = await svc.states(CUT)
        if not first:
            first.update({k: r["last_probe"] for k, r in rows.items()})
            return False
        return all(r["last_probe"] != first[k] for k, r in rows.items())

    return check
