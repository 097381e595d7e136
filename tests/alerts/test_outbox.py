"""The durable outbox against real receivers on loopback: at least once, deduplicated, ordered,
backing off while a receiver is down, nothing resent or lost across a restart."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alerts.config import AlertingConfig
from alerts.model import Event
from alerts.notifiers.base import Sender
from alerts.outbox import DirectSender, Outbox, OutboxDB, Routing, backoff
from tests.alerts.receivers import Receiver, TelegramBotApi
from tests.alerts.samples import DOWN, ISOLATED, firing, resolved


def _routing(receivers: dict[str, dict[str, object]], **extra: object) -> Routing:
    cfg = AlertingConfig.model_validate({"receivers": receivers, "default_receivers": list(receivers), **extra})
    return Routing.from_config(cfg)


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    r = Receiver(key="k3y")
    await r.start()
    yield r
    await r.stop()


@pytest.fixture(autouse=True)
def _hook_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WW_TEST_HOOK_KEY", "k3y")


def _hook_cfg(r: Receiver) -> dict[str, object]:
    return {"type": "webhook", "url": f"{r.url}/hook", "hmac_key_env": "WW_TEST_HOOK_KEY", "timeout": 2}


def _outbox(path: Path, routing: Routing, **kw: float) -> Outbox:
    return Outbox(OutboxDB(path), routing, Sender(), backoff_initial=kw.get("initial", 0.1),
                  backoff_max=kw.get("cap", 0.4))


async def test_delivered_once_signed_and_not_resent_after_restart(tmp_path: Path, hook: Receiver) -> None:
    routing = _routing({"oncall": _hook_cfg(hook)})
    box = _outbox(tmp_path / "s.db", routing)
    box.start()
    assert await box.write([firing()], state='{"v": 1}') == 1
    assert await box.write([firing()], state=None) == 0  # the same dedup key again: ignored
    [got] = await hook.wait_for(1, 5)
    assert got.json()["dedup_key"] == firing().dedup_key and hook.bad_signatures == 0
    for _ in range(50):  # the delivered mark is committed right after the answer
        if box.db.counts().get("delivered") == 1:
            break
        await asyncio.sleep(0.02)
    await box.stop()
    await box.sender.close()
    box.db.close()

    again = _outbox(tmp_path / "s.db", routing)  # a restart
    again.start()
    await asyncio.sleep(0.5)
    assert len(hook.requests) == 1
    assert again.db.load_state() == {"v": 1}
    await again.stop()
    await again.sender.close()


async def test_receiver_down_then_back_gets_everything_in_order(tmp_path: Path, hook: Receiver) -> None:
    routing = _routing({"oncall": _hook_cfg(hook)})
    await hook.stop()  # connection refused
    box = _outbox(tmp_path / "s.db", routing)
    box.start()
    await box.write([firing()], None)
    await box.write([resolved()], None)
    await asyncio.sleep(1.0)
    rows = box.db.pending("oncall")
    assert [r.notification.event for r in rows] == [Event.FIRING, Event.RESOLVED]
    assert rows[0].attempts >= 2 and "refused" in rows[0].last_error.lower() or "connect" in rows[0].last_error
    await hook.start()  # back, same port
    got = await hook.wait_for(2, 5)
    assert [g.json()["event"] for g in got] == ["firing", "resolved"]
    await box.stop()
    await box.sender.close()


async def test_503_is_retried_and_4xx_gives_up(tmp_path: Path, hook: Receiver) -> None:
    routing = _routing({"oncall": _hook_cfg(hook)})
    box = _outbox(tmp_path / "s.db", routing)
    hook.down = True
    box.start()
    await box.write([firing()], None)
    await asyncio.sleep(0.6)
    assert not hook.requests and box.db.pending("oncall")[0].attempts >= 2
    hook.down = False
    await hook.wait_for(1, 5)
    hook.status = 400  # accepted by the server but answered 400: permanent
    await box.write([firing(ISOLATED)], None)
    for _ in range(100):
        if box.db.counts().get("failed"):
            break
        await asyncio.sleep(0.02)
    assert box.db.counts() == {"delivered": 1, "failed": 1}
    await box.stop()
    await box.sender.close()


def test_a_failed_write_leaves_neither_rows_nor_state(tmp_path: Path) -> None:
    """The outbox rows and the engine state are one transaction: a crash or error inside it
    leaves the previous state and no half-written notifications."""
    db = OutboxDB(tmp_path / "s.db")
    db.write([("k1", "oncall", json.dumps({}), 0)], '{"v": 1}')

    def boom() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    db.fail = boom
    with pytest.raises(sqlite3.OperationalError):
        db.write([("k2", "oncall", json.dumps({}), 0)], '{"v": 2}')
    db.fail = None
    assert db.load_state() == {"v": 1}
    with sqlite3.connect(tmp_path / "s.db") as c:
        assert [k for (k,) in c.execute("SELECT dedup_key FROM outbox")] == ["k1"]


async def test_no_receiver_configured_records_and_sends_nothing(tmp_path: Path) -> None:
    box = _outbox(tmp_path / "s.db", _routing({}))
    box.start()
    await box.write([firing()], None)
    assert box.db.counts() == {"recorded": 1}
    [row] = box.db.recent()
    assert row.status() == "recorded" and row.notification == firing()
    await box.stop()
    await box.sender.close()


def test_routes_first_match_continue_and_escalation_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T", "s3cr3t-value")
    hook = {"type": "webhook", "url": "http://127.0.0.1:9/x"}
    cfg = AlertingConfig.model_validate({
        "receivers": {"a": hook, "b": hook, "c": hook, "tg": {"type": "telegram", "chat_id": 1, "bot_token_env": "T"}},
        "routes": [
            {"services": ["link"], "receivers": ["b"], "continue": True},
            {"units": [26734], "kinds": ["unit_isolated"], "receivers": ["c"]},
            {"services": ["portal"], "receivers": ["tg"]},
        ],
        "default_receivers": ["a"],
    })
    r = Routing.from_config(cfg)
    assert r.route(firing(ISOLATED)) == ["b", "c"]
    assert r.route(firing(DOWN)) == ["tg"]
    assert r.route(firing(DOWN.__class__(**{**{f: getattr(DOWN, f) for f in DOWN.__slots__}, "service": "email"}))) \
        == ["a"]
    esc = firing().__class__(DOWN, Event.FIRING, firing().at, receiver="c")
    assert r.route(esc) == ["c"]
    assert r.receivers["tg"].secret.reveal() == "s3cr3t-value" and "s3cr3t" not in repr(r.receivers["tg"])


def test_missing_secret_is_named_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    cfg = AlertingConfig.model_validate({"receivers": {"tg": {"type": "telegram", "chat_id": 1,
                                                               "bot_token_env": "NOPE_NOT_SET"}}})
    with pytest.raises(ValueError, match=r"receivers.tg.bot_token_env: environment variable NOPE_NOT_SET is not set"):
        Routing.from_config(cfg)


def test_backoff_doubles_caps_and_jitters() -> None:
    assert [round(backoff(a, 1, 60, lambda: 0.5), 3) for a in (1, 2, 3, 4, 10)] == [1, 2, 4, 8, 60]
    assert backoff(3, 1, 60, lambda: 0.0) == pytest.approx(3.2)
    assert backoff(3, 1, 60, lambda: 1.0) == pytest.approx(4.8)


async def test_telegram_against_the_recorded_bot_api_contract(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    token = "7000000001:AAH-test-token-never-logged"
    api = TelegramBotApi(token)
    await api.start()
    monkeypatch.setenv("WW_TG", token)
    routing = _routing({"tg": {"type": "telegram", "base_url": api.base_url, "chat_id": api.chat_id,
                               "bot_token_env": "WW_TG"}})
    box = _outbox(tmp_path / "s.db", routing)
    box.start()
    await box.write([firing(ISOLATED)], None)
    for _ in range(100):
        if api.messages:
            break
        await asyncio.sleep(0.02)
    [msg] = api.messages
    assert "Đơn vị mất kết nối" in msg["text"] and msg["chat_id"] == api.chat_id
    # A wrong token: 401 from the API, permanent, and the token is in no log line or stored error.
    monkeypatch.setenv("WW_TG", "7000000001:WRONG-secret")
    box.routing = _routing({"tg": {"type": "telegram", "base_url": api.base_url, "chat_id": api.chat_id,
                                   "bot_token_env": "WW_TG"}})
    await box.write([resolved(ISOLATED)], None)
    for _ in range(100):
        if box.db.counts().get("failed"):
            break
        await asyncio.sleep(0.02)
    [failed] = [r for r in box.db.recent() if r.status() == "failed"]
    assert "401" in failed.last_error and "WRONG" not in failed.last_error and "<secret>" in failed.last_error
    assert "WRONG" not in caplog.text and "AAH-test" not in caplog.text
    await box.stop()
    await box.sender.close()
    await api.stop()


async def test_direct_sender_needs_no_store(hook: Receiver) -> None:
    routing = _routing({"oncall": _hook_cfg(hook)})
    hook.down = True
    direct = DirectSender(routing, Sender(), backoff_initial=0.1, backoff_max=0.2)
    direct.send([firing()])
    await asyncio.sleep(0.4)
    hook.down = False
    [got] = await hook.wait_for(1, 5)
    assert got.json()["event"] == "firing"
    await direct.stop()
    await direct.sender.close()
