"""Cutting lab addresses off with nftables (what a real link or device outage looks like).

The kernel answers ICMP echo for every 127.x address, so without a packet filter a "down"
router still pings. When the ``nft`` tool is present and permitted (root), the lab keeps one
table, ``inet <name>``, with two sets on the input hook:

- ``cut``: every packet to these addresses is dropped (a unit behind a failed link: pings and
  connections time out);
- ``noping``: ICMP echo requests to these addresses are dropped (a VC room that is down);
- ``refuse``: connections to these (address, port) pairs are refused with a TCP reset (a
  service that is down on a host that is up: the probe sees ``refused``).

The table is created at start (replacing a stale one of the same name) and deleted at stop.
Without nft, link faults still stop every service of the unit (connections reset), but
pings to its addresses keep being answered: ``available`` says which.
"""

from __future__ import annotations

import asyncio
import logging
import shutil

log = logging.getLogger("wardwatch.lab")


class NetfilterError(RuntimeError):
    pass


def ruleset(table: str) -> str:
    return f"""table inet {table} {{
    set cut {{ type ipv4_addr; }}
    set noping {{ type ipv4_addr; }}
    set refuse {{ type ipv4_addr . inet_service; }}
    chain input {{
        type filter hook input priority -10; policy accept;
        ip daddr @cut drop
        ip daddr @noping icmp type echo-request drop
        tcp flags syn ip daddr . tcp dport @refuse reject with tcp reset
    }}
}}
"""


class Netfilter:
    def __init__(self, table: str) -> None:
        self.table = table
        self.binary = shutil.which("nft") or None
        self.available = False
        self.current: dict[str, set[str]] = {"cut": set(), "noping": set(), "refuse": set()}

    async def _nft(self, script: str) -> None:
        assert self.binary is not None
        proc = await asyncio.create_subprocess_exec(
            self.binary, "-f", "-", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate(script.encode())
        if proc.returncode != 0:
            raise NetfilterError(err.decode(errors="replace").strip() or f"nft exited with {proc.returncode}")

    async def start(self) -> bool:
        if not self.table or self.binary is None:
            return False
        try:
            # "add" then "delete" removes a stale table without failing when there is none.
            await self._nft(f"add table inet {self.table}\ndelete table inet {self.table}\n" + ruleset(self.table))
        except NetfilterError as e:
            log.warning("nftables unavailable (%s): link faults will not stop pings", e)
            return False
        self.available = True
        return True

    async def apply(self, want: dict[str, set[str]]) -> None:
        if not self.available:
            return
        lines = []
        for name in ("cut", "noping", "refuse"):
            add = want.get(name, set()) - self.current[name]
            gone = self.current[name] - want.get(name, set())
            if gone:
                lines.append(f"delete element inet {self.table} {name} {{ {', '.join(sorted(gone))} }}")
            if add:
                lines.append(f"add element inet {self.table} {name} {{ {', '.join(sorted(add))} }}")
        if lines:
            await self._nft("\n".join(lines) + "\n")
            self.current = {k: set(want.get(k, set())) for k in self.current}

    async def stop(self) -> None:
        if self.available:
            self.available = False
            try:
                await self._nft(f"delete table inet {self.table}\n")
            except NetfilterError as e:
                log.warning("could not delete nftables table %s: %s", self.table, e)
