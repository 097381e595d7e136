"""Fuzzing what alerting reads back: the JSON codec round-trips any alert and notification
(any text, any time zone), and delivery reads any answer of an Alertmanager, Telegram or
webhook receiver (a TCP peer on loopback sending fuzzed HTTP) as delivered or a DeliveryError."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import example, given
from hypothesis import strategies as st

from alerts.codec import alert_to_json, notification_from_json, notification_to_json
from alerts.model import Alert, AlertKind, Event, Notification
from alerts.notifiers.base import DeliveryError, Request, Sender
from tests.fuzzing import fuzzed, loop_with, tcp_peer

_TEXT = st.text(max_size=40)
_ZONES = st.sampled_from([UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-3, minutes=-30)),
                          timezone(timedelta(seconds=61))])
_TIMES = st.builds(lambda d, tz: d.replace(tzinfo=tz), st.datetimes(min_value=datetime(1970, 1, 2),  # noqa: DTZ001 - naive bounds, zone added
                                                                     max_value=datetime(9999, 1, 1)), _ZONES)  # noqa: DTZ001
ALERTS = st.builds(
    Alert, id=_TEXT, kind=st.sampled_from(AlertKind), severity=_TEXT, started_at=_TIMES,
    unit_code=st.none() | st.integers(-(2**63), 2**63), unit=_TEXT, service=_TEXT, probe=_TEXT, target=_TEXT,
    reason=_TEXT, message=st.text(max_size=200), tier=st.none() | st.integers(0, 400),
    children=st.lists(_TEXT, max_size=3).map(tuple), in_maintenance=st.booleans(),
    labels=st.lists(st.tuples(_TEXT, _TEXT), max_size=3).map(tuple), supersedes=_TEXT,
)
NOTIFICATIONS = st.builds(Notification, alert=ALERTS, event=st.sampled_from(Event), at=_TIMES,
                          receiver=_TEXT, ended_at=st.none() | _TIMES)


@given(NOTIFICATIONS)
def test_notification_round_trips_through_json(n: Notification) -> None:
    text = json.dumps(notification_to_json(n))  # as the outbox stores it
    back = notification_from_json(json.loads(text))
    assert back == n
    assert back.dedup_key == n.dedup_key
    assert alert_to_json(back.alert) == alert_to_json(n.alert)


# -- receivers' answers ---------------------------------------------------------------------------------

SEEDS = [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b'HTTP/1.1 200 OK\r\nContent-Length: 23\r\n\r\n{"ok":true,"result":{}}',  # Telegram
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nbad request",
    b"HTTP/1.1 500 Internal\r\nTransfer-Encoding: chunked\r\n\r\n4\r\noops\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x08\x00",
    b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
]


@given(fuzzed(SEEDS))
@example(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort")
@example(b"HTTP/1.1 \xff\xfe OK\r\n\r\n")
@example(SEEDS[0])
@example(SEEDS[2])
def test_delivery_reads_any_answer(reply: bytes) -> None:
    async def deliver(port: int) -> DeliveryError | None:
        sender = Sender(timeout=1.0)
        req = Request("POST", f"http://127.0.0.1:{port}/api/v2/alerts",
                      (("Content-Type", "application/json"),), b"[]", secrets=("s3cr3t",))
        try:
            await sender.send(req)
        except DeliveryError as e:
            return e
        finally:
            await sender.close()
        return None

    with loop_with(tcp_peer) as (runner, peer):
        peer.reply = lambda _req: reply  # type: ignore[attr-defined]
        outcome = runner.run(asyncio.wait_for(deliver(peer.port), 5))  # type: ignore[attr-defined]
    if outcome is not None:
        assert str(outcome) and "s3cr3t" not in str(outcome)
    if reply in (SEEDS[0], SEEDS[1]):
        assert outcome is None
    if reply == SEEDS[2]:
        assert outcome is not None and outcome.permanent
