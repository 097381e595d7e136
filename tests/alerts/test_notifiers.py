"""Each notifier's pure render() against golden payloads; templates substitute values only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from alerts import notifiers, templates
from alerts.config import AlertmanagerReceiver, EmailReceiver, TelegramReceiver, WebhookReceiver
from alerts.model import Notification
from alerts.notifiers.base import RenderContext, scrub
from alerts.notifiers.webhook import signature
from alerts.templates import Texts
from monitor.secrets import Secret
from tests.alerts.samples import DOWN, ISOLATED, firing, resolved

GOLDEN = Path(__file__).parent / "golden"
TEXTS_VI = Texts(dashboard_url="https://status.example.vn/units/{{unit_code}}?service={{service}}")
TEXTS_EN = Texts(language="en", dashboard_url="https://status.example.vn/units/{{unit_code}}")

CONFIGS = {
    "alertmanager": AlertmanagerReceiver(type="alertmanager", url="http://127.0.0.1:9093/"),
    "webhook": WebhookReceiver(type="webhook", url="https://hooks.example.vn/wardwatch", hmac_key_env="K"),
    "email": EmailReceiver.model_validate({"type": "email", "smarthost": "mail.example.vn:587",
                                           "from": "wardwatch@example.vn", "to": ["noc@example.vn"]}),
    "telegram": TelegramReceiver(type="telegram", chat_id="-1001234567890", bot_token_env="T"),
}
SECRETS = {"webhook": Secret("hook-key"), "telegram": Secret("123456:SECRET-token"), "email": None,
           "alertmanager": None}
CASES = {
    "firing": firing(),
    "resolved": resolved(),
    "isolated": firing(ISOLATED, 3),
}


def _check(name: str, data: object) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") or not path.exists():
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{path} differs (UPDATE_GOLDEN=1 rewrites it)"


def test_registry_is_complete() -> None:
    """Contract: every receiver type has a notifier module with Config and render."""
    import typing

    from alerts.config import ReceiverConfig  # the union the inventory accepts

    union = typing.get_args(ReceiverConfig)[0]
    accepted = {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in typing.get_args(union)}
    assert set(notifiers.REGISTRY) == set(accepted) == set(CONFIGS)
    for kind, module in notifiers.REGISTRY.items():
        assert module.Config is type(CONFIGS[kind]) is accepted[kind]
        assert callable(module.render)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_payloads(kind: str, case: str) -> None:
    ctx = RenderContext(TEXTS_VI, receiver=kind, secret=SECRETS[kind],
                        generator_url="http://127.0.0.1:9168/api/v1/alerts")
    req = notifiers.render(CASES[case], CONFIGS[kind], ctx)
    _check(f"{kind}_{case}", req.to_json())
    assert req.to_json() == notifiers.render(CASES[case], CONFIGS[kind], ctx).to_json()  # pure


def test_english_option() -> None:
    ctx = RenderContext(TEXTS_EN, receiver="webhook", secret=Secret("k"))
    req = notifiers.render(firing(), CONFIGS["webhook"], ctx)
    _check("webhook_firing_en", req.to_json())
    body = json.loads(req.body)
    assert body["title"].startswith("[FIRING] Service down: Phường Bến Thành (26734)")
    assert "Reason: bad HTTP status" in body["text"]


def test_webhook_signature_is_hmac_of_the_exact_body() -> None:
    req = notifiers.render(firing(), CONFIGS["webhook"], RenderContext(TEXTS_VI, "webhook", Secret("hook-key")))
    headers = dict(req.headers)
    assert headers["X-Wardwatch-Signature"] == signature("hook-key", req.body)
    assert headers["X-Wardwatch-Dedup-Key"] == firing().dedup_key


def test_alertmanager_payload_fields() -> None:
    [am] = json.loads(notifiers.render(resolved(), CONFIGS["alertmanager"], RenderContext(TEXTS_VI)).body)
    assert am["labels"]["alertname"] == "WardwatchTargetDown"
    assert {"unit_code", "unit", "service", "target", "severity"} <= am["labels"].keys()
    assert am["startsAt"] == "2026-11-21T01:02:03Z" and am["endsAt"] == "2026-11-21T01:49:03Z"
    assert am["generatorURL"].startswith("https://status.example.vn/units/26734")
    [fire] = json.loads(notifiers.render(firing(), CONFIGS["alertmanager"], RenderContext(TEXTS_VI)).body)
    assert "endsAt" not in fire


def test_telegram_token_is_scrubbed_everywhere() -> None:
    ctx = RenderContext(TEXTS_VI, "telegram", Secret("123456:SECRET-token"))
    req = notifiers.render(firing(), CONFIGS["telegram"], ctx)
    assert "SECRET" in req.url  # the real request needs it...
    assert "SECRET" not in req.describe() and "SECRET" not in json.dumps(req.to_json())  # ...nothing else shows it
    assert "SECRET" not in repr(req)
    assert scrub(f"error for {req.url}", req.secrets) == "error for http://api.example/bot<secret>/x".replace(
        "http://api.example/bot<secret>/x", "https://api.telegram.org/bot<secret>/sendMessage")


def test_email_headers_are_stable_per_dedup_key() -> None:
    ctx = RenderContext(TEXTS_VI, "email")
    a = dict(notifiers.render(firing(), CONFIGS["email"], ctx).headers)
    b = dict(notifiers.render(firing(), CONFIGS["email"], ctx).headers)
    r = dict(notifiers.render(resolved(), CONFIGS["email"], ctx).headers)
    assert a["Message-ID"] == b["Message-ID"] and a["Subject"] == b["Subject"]
    assert r["In-Reply-To"] == a["Message-ID"] != r["Message-ID"]


# -- templates ---------------------------------------------------------------------------------


def test_values_only_a_label_like_a_template_renders_literally() -> None:
    texts = Texts(overrides=(("firing_title", "{{unit}} {{7*7}} {{ unit_code }} {{__class__}} {{unit.upper}}"),))
    evil = Notification(
        DOWN.__class__(**{**{f: getattr(DOWN, f) for f in DOWN.__slots__}, "unit": "{{7*7}} {{target}}"}),
        firing().event, firing().at,
    )
    out = templates.title(evil, texts)
    assert out == "{{7*7}} {{target}} {{7*7}} 26734 {{__class__}} {{unit.upper}}"


def test_substitute_is_single_pass() -> None:
    assert templates.substitute("{{unit}}/{{service}}", {"unit": "{{service}}", "service": "x"}) == "{{service}}/x"


def test_vietnamese_message_has_everything_on_call_needs() -> None:
    body = templates.body(firing(), TEXTS_VI)
    assert "Phường Bến Thành (mã 26734)" in body
    assert "Dịch vụ: cổng thông tin" in body
    assert "Nguyên nhân: mã trạng thái HTTP lỗi" in body
    assert "Từ lúc: 08:02:03 21/11/2026 (UTC+7)" in body  # Asia/Ho_Chi_Minh local time
    assert "Đã kéo dài: 2 phút" in body
    assert "https://status.example.vn/units/26734?service=portal" in body


def test_every_reason_has_a_phrase_in_both_languages() -> None:
    from probes.base import Reason

    for r in Reason:
        vi, en = templates.REASONS[r.value]
        assert vi and en
