"""The web security layer: pure parts (token bucket, header parsing, password cache) without a
network, then a real aiohttp server with real TLS (certificates from tests/peers/pki.py) for
every client_auth_type, the rate and size limits, and reloading the web config."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import bcrypt
import pytest

from monitor import webauth
from monitor.engine import Engine
from monitor.inventory import load_inventory
from monitor.web import serve
from monitor.webauth import RateLimiter, Verifier, client_key, parse_basic, refill, retry_after
from monitor.webconfig import RateLimit, WebConfig, load_web_config
from tests.peers.pki import Issued, TestCA
from tests.peers.proc import free_port

HOST = "127.0.0.1"

# -- pure parts --------------------------------------------------------------------------------


def test_bucket_maths() -> None:
    assert refill(0.0, 10.0, 12.0, rate=2.0, burst=50) == 4.0
    assert refill(49.5, 10.0, 20.0, rate=2.0, burst=50) == 50.0  # never above the burst
    assert refill(3.0, 10.0, 9.0, rate=2.0, burst=50) == 3.0  # a clock going back adds nothing
    assert retry_after(0.0, rate=0.5) == 2 and retry_after(0.9, rate=10.0) == 1 and retry_after(0.0, rate=0.1) == 10


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_burst_refill_and_bounded_table() -> None:
    clock = Clock()
    rl = RateLimiter(RateLimit(rate=2.0, burst=3), max_clients=4, clock=clock)
    assert [rl.take("a") for _ in range(4)] == [0, 0, 0, 1]
    assert rl.take("b") == 0  # per client
    clock.now += 0.5  # one token back for "a"
    assert rl.take("a") == 0 and rl.take("a") == 1
    for c in ("c", "d", "e", "f"):
        rl.take(c)
    assert len(rl) == 4  # bounded: "a" and "b", least recently seen, were forgotten
    assert [rl.take("a") for _ in range(4)] == [0, 0, 0, 1]  # a forgotten client starts full


def test_client_key_groups_ipv6_by_64() -> None:
    assert client_key("127.0.0.5") == "127.0.0.5"
    assert client_key("2001:db8:1:2::5") == client_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::5") != client_key("2001:db8:1:2::5")
    assert client_key("::ffff:127.0.0.9") == "127.0.0.9"
    assert client_key(None) == ""


def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


def test_parse_basic() -> None:
    assert parse_basic(_basic(b"alice:se:cret")) == ("alice", b"se:cret")
    assert parse_basic(_basic("Nguyễn:mật khẩu".encode())) == ("Nguyễn", "mật khẩu".encode())
    assert parse_basic("basic " + base64.b64encode(b"a:").decode()) == ("a", b"")
    for bad in (None, "", _basic(b"no-colon"), "Basic !!!", "Bearer abc", _basic(b"\xff:x")):
        assert parse_basic(bad) is None, bad


def _hash(password: bytes, cost: int = 4) -> bytes:
    return bcrypt.hashpw(password, bcrypt.gensalt(cost))


async def test_verifier_caches_success_keyed_by_hash_and_password() -> None:
    h = _hash(b"right")
    v = Verifier({"alice": h}, _hash(b"dummy"))
    try:
        assert not v.cached("alice", b"right")
        assert await v.verify("alice", b"right")
        assert v.cached("alice", b"right")
        assert not v.cached("alice", b"wrong") and not v.cached("bob", b"right")
        assert not await v.verify("alice", b"wrong") and not await v.verify("bob", b"right")
        assert not await v.verify("alice", b"x" * 73)  # bcrypt's 72-byte limit: refused, not truncated
        # A reload keeps a verified password only while its user's hash is unchanged.
        same, changed = Verifier({"alice": h}, _hash(b"d")), Verifier({"alice": _hash(b"right")}, _hash(b"d"))
        same.adopt(v)
        changed.adopt(v)
        assert same.cached("alice", b"right") and not same.cached("alice", b"wrong")
        assert not changed.cached("alice", b"right")
        assert await changed.verify("alice", b"right") and changed.cached("alice", b"right")
        same.close()
        changed.close()
    finally:
        v.close()


async def test_unknown_user_takes_as_long_as_a_wrong_password() -> None:
    cost = 9  # ~30 ms a check: well above scheduling noise
    v = Verifier({"alice": _hash(b"right", cost)}, _hash(b"dummy", cost))
    try:
        wrong: list[float] = []
        unknown: list[float] = []
        for _ in range(5):
            for out, user in ((wrong, "alice"), (unknown, "mallory")):
                t = time.perf_counter()
                assert not await v.verify(user, b"guess")
                out.append(time.perf_counter() - t)
        ratio = statistics.median(unknown) / statistics.median(wrong)
        assert 0.5 < ratio < 2.0, (wrong, unknown)
    finally:
        v.close()


async def test_bcrypt_runs_off_the_event_loop() -> None:
    v = Verifier({"alice": _hash(b"right", 12)}, _hash(b"d", 4))  # cost 12: ~0.2-0.4 s of CPU
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    t = asyncio.create_task(ticker())
    try:
        started = time.perf_counter()
        assert await v.verify("alice", b"right")
        elapsed = time.perf_counter() - started
    finally:
        t.cancel()
        v.close()
    assert elapsed > 0.1 and ticks >= elapsed / 0.01 / 3, (elapsed, ticks)


# -- a real server ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PKI:
    dir: Path
    ca: TestCA
    server: Issued
    client: Issued
    foreign: Issued  # a client certificate from another CA

    def client_ctx(self, cert: Issued | None = None, *, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca.bundle))
        if cert is not None:
            ctx.load_cert_chain(cert.cert, cert.key)
        if max_version is not None:
            ctx.maximum_version = max_version
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    d = tmp_path_factory.mktemp("webpki")
    ca = TestCA(d / "ca", "wardwatch web CA")
    other = TestCA(d / "other", "someone else's CA")
    return PKI(d, ca, ca.issue("server", [HOST]), ca.issue("client", ["prometheus"]), other.issue("foreign", ["x"]))


def inventory(path: Path) -> Path:
    path.write_text(
        "province: 79\ndefaults: {interval: 30s, timeout: 1s, rechecks: 0, templates: {portal: null, email: null}}\n"
        "units:\n  - code: 26506\n    name: Phường Vũng Tàu\n    type: phường\n    checks:\n"
        f"      - {{service: vc_gov, probe: tcp, target: '{HOST}:{free_port()}'}}\n",
        encoding="utf-8",
    )
    return path


@contextlib.asynccontextmanager
async def served(tmp: Path, cfg: WebConfig) -> AsyncIterator[str]:
    engine = Engine(load_inventory(inventory(tmp / "inv.yaml")))
    port = free_port()
    runner = await serve(engine, HOST, port, web_config=cfg)
    try:
        yield f"{'https' if cfg.ssl_context else 'http'}://{HOST}:{port}"
    finally:
        await engine.stop()
        await runner.cleanup()


def tls_config(pki: PKI, mode: str, *, extra: str = "") -> str:
    ca = f"  client_ca_file: {pki.ca.bundle}\n" if mode != "NoClientCert" else ""
    return (f"tls_server_config:\n  cert_file: {pki.server.cert}\n  key_file: {pki.server.key}\n"
            f"  client_auth_type: {mode}\n{ca}{extra}")


async def _status(url: str, ctx: ssl.SSLContext) -> int | str:
    try:
        async with aiohttp.ClientSession() as http, http.get(url + "/healthz", ssl=ctx) as r:
            await r.read()
            return r.status
    except aiohttp.ClientError as e:
        return type(e).__name__


# Which clients each client_auth_type lets in, as Go's crypto/tls (exporter-toolkit) does.
MATRIX = {
    "NoClientCert": {"none": True, "client": True, "foreign": True},
    "RequestClientCert": {"none": True, "client": True, "foreign": True},
    "RequireAnyClientCert": {"none": False, "client": True, "foreign": True},
    "VerifyClientCertIfGiven": {"none": True, "client": True, "foreign": False},
    "RequireAndVerifyClientCert": {"none": False, "client": True, "foreign": False},
}


@pytest.mark.parametrize("mode", list(MATRIX))
async def test_client_auth_types(tmp_path: Path, pki: PKI, mode: str) -> None:
    (tmp_path / "web.yml").write_text(tls_config(pki, mode))
    cfg = load_web_config(tmp_path / "web.yml")
    async with served(tmp_path, cfg) as url:
        assert url.startswith("https://")
        got = {}
        for name, cert in (("none", None), ("client", pki.client), ("foreign", pki.foreign)):
            status = await _status(url, pki.client_ctx(cert))
            got[name] = status == 200
            assert status == 200 or isinstance(status, str), status  # refused in the handshake, not by HTTP
        assert got == MATRIX[mode]
        # The server's certificate is the configured one: a client that does not trust its CA is refused.
        assert await _status(url, ssl.create_default_context()) != 200


async def test_min_version_tls13_refuses_a_tls12_client(tmp_path: Path, pki: PKI) -> None:
    (tmp_path / "web.yml").write_text(tls_config(pki, "NoClientCert", extra="  min_version: TLS13\n"))
    async with served(tmp_path, load_web_config(tmp_path / "web.yml")) as url:
        assert await _status(url, pki.client_ctx()) == 200
        assert await _status(url, pki.client_ctx(max_version=ssl.TLSVersion.TLSv1_2)) != 200


async def test_rate_limit_answers_429_with_retry_after_but_not_on_metrics(tmp_path: Path) -> None:
    async with served(tmp_path, WebConfig(rate_limit=RateLimit(rate=0.5, burst=3))) as url, \
            aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(4):
            async with http.get(url + "/api/v1/targets") as r:
                statuses.append(r.status)
                retry = r.headers.get("Retry-After")
        assert statuses == [200, 200, 200, 429]
        assert retry == "2"  # one token at 0.5 per second
        async with http.get(url + "/metrics") as r:
            assert r.status == 200  # Prometheus' scrape is never throttled
        async with http.get(url + "/api/v1/wallboard") as r:
            assert r.status == 429  # the bucket is the address's, not the path's


async def test_body_size_limit(tmp_path: Path) -> None:
    async with served(tmp_path, WebConfig()) as url, aiohttp.ClientSession() as http:
        async with http.post(url + "/-/reload", data=b"x" * (webauth.MAX_BODY_BYTES + 1)) as r:
            assert r.status == 413
        async with http.post(url + "/-/reload", data=b"{}") as r:
            assert r.status == 200


async def _peer_serial(url: str, pki: PKI) -> int:
    port = int(url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection(HOST, port, ssl=pki.client_ctx())
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    from cryptography import x509

    return int(x509.load_der_x509_certificate(der).serial_number)


def _auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": _basic(f"{user}:{password}".encode())}


async def test_reload_applies_users_and_roles_renews_the_certificate_and_refuses_a_bad_file(
    tmp_path: Path, pki: PKI
) -> None:
    # A copy of the server certificate: this test rewrites it in place.
    for name in ("server.pem", "server.key"):
        (tmp_path / name).write_bytes((pki.dir / "ca" / name).read_bytes())
    local = PKI(pki.dir, pki.ca, Issued(tmp_path / "server.pem", tmp_path / "server.key", pki.server.not_after,
                                        pki.server.x509), pki.client, pki.foreign)
    alice, carol = _hash(b"alice-pw").decode(), _hash(b"carol-pw").decode()
    web = tmp_path / "web.yml"
    base = tls_config(local, "NoClientCert")
    web.write_text(base + f"basic_auth_users:\n  alice: {alice}\nwardwatch:\n  roles: {{alice: admin}}\n")
    async with served(tmp_path, load_web_config(web)) as url, aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=pki.client_ctx())
    ) as http:
        first = await _peer_serial(url, pki)
        assert first == pki.server.x509.serial_number
        async with http.get(url + "/api/v1/targets", headers=_auth("carol", "carol-pw")) as r:
            assert r.status == 401
        web.write_text(base + f"basic_auth_users:\n  alice: {alice}\n  carol: {carol}\n"
                              "wardwatch:\n  roles: {alice: admin, carol: admin}\n")
        issued = pki.ca.issue("renewed", [HOST])  # a renewal, written over the configured files
        local.server.cert.write_bytes(issued.cert.read_bytes())
        local.server.key.write_bytes(issued.key.read_bytes())
        assert await _peer_serial(url, pki) == first  # nothing is re-read before a reload
        async with http.post(url + "/-/reload", headers=_auth("alice", "alice-pw")) as r:
            assert r.status == 200, await r.text()
        assert await _peer_serial(url, pki) == issued.x509.serial_number != first
        async with http.put(url + "/-/reload", headers=_auth("carol", "carol-pw")) as r:
            assert r.status == 200, await r.text()  # carol exists now, and is admin

        # A bad file: 400 naming file, line and field; the running users stay.
        web.write_text(base + "basic_auth_users:\n  alice: not-a-hash\n")
        async with http.post(url + "/-/reload", headers=_auth("alice", "alice-pw")) as r:
            assert r.status == 400
            body = await r.json()
        assert [p.split(" (")[0] for p in body["problems"]] == [f"{web}:6: basic_auth_users.alice: not a bcrypt hash"]
        async with http.get(url + "/api/v1/targets", headers=_auth("carol", "carol-pw")) as r:
            assert r.status == 200

        # A TLS setting a running listener cannot change: the rest applies, the answer says so.
        web.write_text(tls_config(local, "RequireAndVerifyClientCert") + f"basic_auth_users:\n  alice: {alice}\n")
        async with http.post(url + "/-/reload", headers=_auth("carol", "carol-pw")) as r:
            text = await r.text()
        assert r.status == 400 and "client_auth_type, client_ca_file: changing it needs a restart" in text
        async with http.get(url + "/api/v1/targets", headers=_auth("carol", "carol-pw")) as r:
            assert r.status == 401  # carol is gone: the users part applied
        assert await _status(url, pki.client_ctx()) == 200  # still no client certificate needed


def test_one_warning_when_exposed_without_auth(caplog: pytest.LogCaptureFixture) -> None:
    users = WebConfig(users={"alice": _hash(b"pw")})
    for host, cfg, warned in (("0.0.0.0", WebConfig(), True), ("::", WebConfig(), True), ("", WebConfig(), True),
                              ("198.51.100.7", WebConfig(), True), ("127.0.0.1", WebConfig(), False),
                              ("::1", WebConfig(), False), ("localhost", WebConfig(), False),
                              ("0.0.0.0", users, False)):
        caplog.clear()
        with caplog.at_level("WARNING", logger="wardwatch.web"):
            webauth.warn_if_exposed(host, cfg)
        assert len(caplog.records) == (1 if warned else 0), host
        if warned:
            assert "without authentication" in caplog.records[0].getMessage()


async def test_bcrypt_queue_is_bounded(tmp_path: Path) -> None:
    cfg = WebConfig(users={"alice": _hash(b"pw", 10)}, dummy_hash=_hash(b"d", 10),
                    rate_limit=RateLimit(rate=1000.0, burst=1000))
    async with served(tmp_path, cfg) as url, aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0)
    ) as http:
        async def guess(i: int) -> tuple[int, str]:
            async with http.get(url + "/metrics", headers=_auth("alice", f"guess-{i}")) as r:
                return r.status, await r.text()

        answers = await asyncio.gather(*(guess(i) for i in range(webauth.MAX_PENDING_VERIFICATIONS + 16)))
        refused = [text for status, text in answers if status == 429]
        assert refused and all("password checks in progress" in t for t in refused)
        assert sum(1 for status, _ in answers if status == 401) >= webauth.MAX_PENDING_VERIFICATIONS // 2
        # Wrong guesses are not cached: the right password still goes through bcrypt and works.
        async with http.get(url + "/metrics", headers=_auth("alice", "pw")) as r:
            assert r.status == 200
