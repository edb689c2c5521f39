"""Alert webhooks against a real HTTP server on 127.0.0.1: deliveries a receiver can verify,
retries on 5xx and connection errors (once delivered per delivery id), giving up after the last
try, 4xx final, routing by escalation level, a full queue dropping the oldest without blocking;
the config's errors; verify() refusing a wrong secret, a changed body and a stale timestamp; the
secret in no repr, result or log line."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iatros.errors import ConfigError
from iatros.monitoring.webhooks import (
    DeliveryResult,
    WebhookSender,
    WebhookTarget,
    encode_event,
    load_webhooks,
    sign,
    verify,
)

SECRET = "s3cret-for-tests-0123456789abcdef"
OTHER_SECRET = "another-secret-0123456789abcdef"
EVENT = {"type": "escalation", "level": "doctor", "alert_id": 7, "patient_id": "132539",
         "severity": "high", "reason": "NEWS2 8: respiration rate 3, SpO2 3, pulse 2"}
FAST = {"backoff_base_s": 0.001, "backoff_factor": 2.0, "timeout_s": 2.0}


@dataclass
class Received:
    """One request as the test server saw it, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that records requests; answers ``fail_status`` to the
    first ``fail_first`` of them (or always ``status``), and can hold requests until released."""

    url: str = ""
    fail_first: int = 0
    fail_status: int = 500
    status: int = 200
    requests: list[Received] = field(default_factory=list)
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        self.arrived.set()
        if self.hold is not None:
            self.hold.wait(5)
        with self.lock:
            status = self.fail_status if len(self.requests) < self.fail_first else self.status
            self.requests.append(Received(path, headers, body, status))
        return status

    def delivered(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if 200 <= r.status < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = state.answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        if state.hold is not None:
            state.hold.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables; the test server is local."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def target(url: str, levels: tuple[str, ...] = ("doctor",), name: str = "pager",
           secret: str = SECRET) -> WebhookTarget:
    return WebhookTarget(name=name, url=url, levels=levels, secret=secret)


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- delivery ---------------------------------------------------------------------------------

def test_a_delivery_carries_the_event_and_a_signature_the_receiver_verifies(receiver: Receiver) -> None:
    results: list[DeliveryResult] = []
    with WebhookSender([target(receiver.url)], on_result=results.append, **FAST) as sender:
        started = time.monotonic()
        ids = sender.send(EVENT)
        assert time.monotonic() - started < 0.5  # send does not wait for the post
    assert len(ids) == 1 and len(receiver.requests) == 1
    got = receiver.requests[0]
    assert got.path == "/hook"
    assert got.body == encode_event(EVENT)
    assert json.loads(got.body) == EVENT
    assert got.body == json.dumps(EVENT, sort_keys=True, separators=(",", ":")).encode()
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-iatros-event"] == "escalation"
    assert got.headers["x-iatros-delivery"] == ids[0] and len(ids[0]) == 32
    assert verify(SECRET, got.headers["x-iatros-signature"], got.body)
    assert not verify(OTHER_SECRET, got.headers["x-iatros-signature"], got.body)
    assert SECRET not in json.dumps(got.headers) and SECRET.encode() not in got.body
    [result] = results
    assert (result.outcome, result.tries, result.status, result.reason) == ("delivered", 1, 200, "")
    assert (result.delivery_id, result.webhook, result.event_type, result.level) == (
        ids[0], "pager", "escalation", "doctor")
    assert sender.recent() == results


def test_5xx_is_retried_until_delivered_once_under_one_delivery_id(receiver: Receiver) -> None:
    receiver.fail_first = 3
    results: list[DeliveryResult] = []
    with WebhookSender([target(receiver.url)], on_result=results.append, **FAST) as sender:
        [delivery_id] = sender.send(EVENT)
    assert [r.status for r in receiver.requests] == [500, 500, 500, 200]
    assert {r.headers["x-iatros-delivery"] for r in receiver.requests} == {delivery_id}
    assert len(receiver.delivered()) == 1
    assert all(verify(SECRET, r.headers["x-iatros-signature"], r.body) for r in receiver.requests)
    assert [(r.outcome, r.tries, r.status) for r in results] == [("delivered", 4, 200)]


def test_429_is_retried(receiver: Receiver) -> None:
    receiver.fail_first, receiver.fail_status = 1, 429
    with WebhookSender([target(receiver.url)], **FAST) as sender:
        sender.send(EVENT)
    assert [r.status for r in receiver.requests] == [429, 200]
    assert sender.recent()[0].outcome == "delivered"


def test_after_the_last_try_the_failure_is_reported(receiver: Receiver) -> None:
    receiver.status = 503
    results: list[DeliveryResult] = []
    with WebhookSender([target(receiver.url)], on_result=results.append, max_tries=4,
                       **FAST) as sender:
        sender.send(EVENT)
    assert len(receiver.requests) == 4
    [result] = results
    assert (result.outcome, result.tries, result.status) == ("failed", 4, 503)
    assert "HTTP 503" in result.reason and "4 tries" in result.reason


def test_a_connection_error_is_retried_and_reported_without_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook/tok3n-in-path"
    results: list[DeliveryResult] = []
    with WebhookSender([target(url)], on_result=results.append, max_tries=3, **FAST) as sender:
        sender.send(EVENT)
    [result] = results
    assert (result.outcome, result.tries, result.status) == ("failed", 3, None)
    assert "ConnectError" in result.reason
    assert "tok3n" not in json.dumps(result.to_dict())


def test_a_4xx_is_not_retried(receiver: Receiver) -> None:
    receiver.status = 400
    with WebhookSender([target(receiver.url)], **FAST) as sender:
        sender.send(EVENT)
    assert len(receiver.requests) == 1
    [result] = sender.recent()
    assert (result.outcome, result.tries, result.status) == ("failed", 1, 400)
    assert "not retried" in result.reason


def test_back_off_doubles_from_the_base(receiver: Receiver) -> None:
    receiver.fail_first = 3
    with WebhookSender([target(receiver.url)], backoff_base_s=0.05, backoff_factor=2.0) as sender:
        started = time.monotonic()
        sender.send(EVENT)
        assert sender.close(5)
    assert time.monotonic() - started >= 0.05 + 0.1 + 0.2  # waits of 0.05, 0.1, 0.2 s


def test_events_go_only_to_the_webhooks_of_their_level(receiver: Receiver) -> None:
    pager = target(receiver.url + "/pager", levels=("doctor", "rapid-response"), name="pager")
    team = target(receiver.url + "/team", levels=("rapid-response",), name="team")
    with WebhookSender([pager, team], **FAST) as sender:
        assert sender.send({**EVENT, "level": "ward-nurse"}) == []
        assert len(sender.send({**EVENT, "level": "doctor"})) == 1
        assert len(sender.send({**EVENT, "level": "rapid-response"})) == 2
    by_path = sorted((r.path, json.loads(r.body)["level"]) for r in receiver.requests)
    assert by_path == [("/hook/pager", "doctor"), ("/hook/pager", "rapid-response"),
                       ("/hook/team", "rapid-response")]


def test_a_down_webhook_does_not_hold_up_another(receiver: Receiver) -> None:
    down = target(f"http://127.0.0.1:{free_port()}/", name="down")
    up = target(receiver.url, name="up")
    with WebhookSender([down, up], max_tries=6, backoff_base_s=0.2) as sender:
        sender.send(EVENT)
        deadline = time.monotonic() + 1.0  # the down one backs off 0.2 + 0.4 + 0.8 + ... s
        while not sender.recent() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [r.webhook for r in sender.recent()] == ["up"]
        assert sender.close(0.05) is False  # abandons the retries at once
    assert {r.webhook: r.outcome for r in sender.recent()} == {"up": "delivered", "down": "failed"}


def test_a_full_queue_drops_the_oldest_without_blocking(receiver: Receiver,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    receiver.hold = threading.Event()
    with WebhookSender([target(receiver.url)], max_queue=2, **FAST) as sender:
        first = sender.send({**EVENT, "n": 1})
        assert receiver.arrived.wait(2)  # the worker is inside the first post
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="iatros.monitoring.webhooks"):
            second = sender.send({**EVENT, "n": 2})
            rest = [sender.send({**EVENT, "n": n}) for n in (3, 4)]
        assert time.monotonic() - started < 0.5
        assert "dropped the oldest delivery of pager; 1 dropped since start" in caplog.text
        assert sender.dropped == 1
        receiver.hold.set()
    assert [json.loads(r.body)["n"] for r in receiver.requests] == [1, 3, 4]
    outcomes = {r.delivery_id: (r.outcome, r.reason) for r in sender.recent()}
    assert outcomes[second[0]] == ("failed", "dropped: the webhook's queue was full")
    assert all(outcomes[ids[0]][0] == "delivered" for ids in (first, *rest))


def test_close_drains_and_send_after_close_is_refused(receiver: Receiver) -> None:
    sender = WebhookSender([target(receiver.url)], **FAST)
    for n in range(20):
        sender.send({**EVENT, "n": n})
    assert sender.close(5) is True
    assert sorted(json.loads(r.body)["n"] for r in receiver.requests) == list(range(20))
    assert sender.pending() == 0
    with pytest.raises(RuntimeError, match="closed"):
        sender.send(EVENT)


def test_a_failing_callback_is_logged_and_delivery_goes_on(receiver: Receiver,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    def broken(result: DeliveryResult) -> None:
        raise OSError("audit log is full")

    with caplog.at_level(logging.ERROR, logger="iatros.monitoring.webhooks"), \
            WebhookSender([target(receiver.url)], on_result=broken, **FAST) as sender:
        sender.send(EVENT)
        sender.send(EVENT)
    assert len(receiver.delivered()) == 2
    assert "on_result callback failed" in caplog.text


def test_an_event_without_type_or_level_or_not_json_is_refused(receiver: Receiver) -> None:
    with WebhookSender([target(receiver.url)], **FAST) as sender:
        with pytest.raises(ValueError, match="'type' and 'level'"):
            sender.send({"type": "alert"})
        with pytest.raises(ValueError):
            sender.send({**EVENT, "score": float("nan")})
        with pytest.raises(TypeError):
            sender.send({**EVENT, "when": object()})
    assert receiver.requests == []


# --- secrets stay secret ---------------------------------------------------------------------

def test_the_secret_is_in_no_repr_result_or_log_line(receiver: Receiver,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    receiver.fail_first = 1
    hook = target(receiver.url)
    dead = target(f"http://127.0.0.1:{free_port()}/", name="dead")
    with caplog.at_level(logging.DEBUG, logger="iatros.monitoring.webhooks"), \
            WebhookSender([hook, dead], max_tries=2, **FAST) as sender:
        sender.send(EVENT)
        text = f"{hook!r} {hook} {sender!r} {[r.to_dict() for r in sender.recent()]}"
    text += repr(sender.recent()) + caplog.text
    assert "failed" in caplog.text  # the log did record the failures
    assert SECRET not in text
    assert receiver.url not in caplog.text  # nor the URL (it may carry a token)


def test_errors_never_echo_the_secret(tmp_path: Path) -> None:
    path = write_config(tmp_path, [{**ENTRY, "secret": "inline-secret-0123456789"}])
    with pytest.raises(ConfigError) as err:
        load_webhooks(path, environ={"PAGER_SECRET": SECRET})
    assert "inline-secret" not in str(err.value) and "environment variable" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_webhooks(write_config(tmp_path, [ENTRY]), environ={"PAGER_SECRET": "short-secret"})
    assert "short-secret" not in str(err.value)


# --- configuration ---------------------------------------------------------------------------

ENTRY = {"name": "pager", "url": "https://pager.example.org/hooks/iatros",
         "levels": ["doctor", "rapid-response"], "secret_env": "PAGER_SECRET"}


def write_config(tmp_path: Path, webhooks: object, **other: object) -> Path:
    path = tmp_path / "monitor.json"
    path.write_text(json.dumps({"webhooks": webhooks, **other}))
    return path


def test_a_config_loads_with_the_secret_from_the_environment(tmp_path: Path) -> None:
    local = {**ENTRY, "name": "bridge", "url": "http://localhost:8080/x", "levels": ["ward-nurse"],
             "secret_env": "BRIDGE_SECRET"}
    path = write_config(tmp_path, [ENTRY, local])
    env = {"PAGER_SECRET": SECRET, "BRIDGE_SECRET": OTHER_SECRET}
    pager, bridge = load_webhooks(path, environ=env)
    assert (pager.name, pager.url, pager.levels, pager.secret) == (
        "pager", ENTRY["url"], ("doctor", "rapid-response"), SECRET)
    assert (bridge.url, bridge.levels, bridge.secret) == ("http://localhost:8080/x",
                                                          ("ward-nurse",), OTHER_SECRET)
    assert SECRET not in repr(pager)


def test_the_secret_is_read_from_os_environ_by_default(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGER_SECRET", SECRET)
    [pager] = load_webhooks(write_config(tmp_path, [ENTRY]))
    assert pager.secret == SECRET


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/h", "http://[::1]:9000/h",
                                 "http://LOCALHOST/h", "https://10.0.0.5/h"])
def test_https_anywhere_and_http_to_this_machine_are_accepted(tmp_path: Path, url: str) -> None:
    [hook] = load_webhooks(write_config(tmp_path, [{**ENTRY, "url": url}]),
                           environ={"PAGER_SECRET": SECRET})
    assert hook.url == url


@pytest.mark.parametrize(("change", "env", "message"), [
    ({}, {}, "webhooks[0] ('pager'): environment variable PAGER_SECRET is not set"),
    ({}, {"PAGER_SECRET": ""}, "environment variable PAGER_SECRET is not set"),
    ({}, {"PAGER_SECRET": "x" * 15}, "the secret in PAGER_SECRET is 15 characters; it must be at least 16"),
    ({"url": "http://pager.example.org/h"}, None, "plain http to pager.example.org: use https"),
    ({"url": "http://127.0.0.2/h"}, None, "plain http to 127.0.0.2: use https"),
    ({"url": "ftp://pager.example.org/h"}, None, "must start with https://"),
    ({"url": "https:///h"}, None, "url has no host"),
    ({"url": "https://user:pw@pager.example.org/h"}, None, "must not contain a user name or password"),
    ({"url": "https://pager.example.org:port/h"}, None, "is not a valid URL"),
    ({"levels": []}, None, "levels must be a non-empty list"),
    ({"levels": "doctor"}, None, "levels must be a non-empty list"),
    ({"secret_env": "PAGER-SECRET"}, None, "secret_env must be the name of an environment variable"),
    ({"name": ""}, None, "webhooks[0]: name must be a non-empty string"),
    ({"levles": ["doctor"]}, None, "webhooks[0] ('pager'): unknown key 'levles' (known: name, url"),
])
def test_a_bad_webhook_entry_is_an_error_naming_file_and_field(tmp_path: Path, change: dict,
                                                               env: dict | None, message: str) -> None:
    path = write_config(tmp_path, [{**ENTRY, **change}])
    with pytest.raises(ConfigError, match=r"monitor config .*monitor\.json") as err:
        load_webhooks(path, environ={"PAGER_SECRET": SECRET} if env is None else env)
    assert message in str(err.value)


def test_missing_keys_and_duplicate_names_are_errors(tmp_path: Path) -> None:
    env = {"PAGER_SECRET": SECRET}
    no_env = {k: v for k, v in ENTRY.items() if k != "secret_env"}
    with pytest.raises(ConfigError, match=r"webhooks\[0\] \('pager'\): missing secret_env"):
        load_webhooks(write_config(tmp_path, [no_env]), environ=env)
    with pytest.raises(ConfigError, match=r"webhooks\[1\] \('pager'\): name 'pager' is used"):
        load_webhooks(write_config(tmp_path, [ENTRY, ENTRY]), environ=env)


def test_levels_can_be_checked_against_the_known_ones(tmp_path: Path) -> None:
    path = write_config(tmp_path, [{**ENTRY, "levels": ["docter"]}])
    with pytest.raises(ConfigError, match="unknown level 'docter'"):
        load_webhooks(path, environ={"PAGER_SECRET": SECRET},
                      known_levels=["ward-nurse", "doctor", "rapid-response"])


def test_file_level_errors_name_the_file(tmp_path: Path) -> None:
    env = {"PAGER_SECRET": SECRET}
    with pytest.raises(ConfigError, match="does not exist"):
        load_webhooks(tmp_path / "absent.json", environ=env)
    bad = tmp_path / "bad.json"
    bad.write_text('{"webhooks": [}')
    with pytest.raises(ConfigError, match=r"bad\.json is not valid JSON: .* line 1 column 15"):
        load_webhooks(bad, environ=env)
    with pytest.raises(ConfigError, match="'webhooks' must be a list"):
        load_webhooks(write_config(tmp_path, {"pager": ENTRY}), environ=env)
    with pytest.raises(ConfigError, match=r"unknown key 'webhook' at the top level \(known: webhooks\)"):
        bad.write_text(json.dumps({"webhook": [ENTRY]}))
        load_webhooks(bad, environ=env)
    bad.write_text("[]")
    with pytest.raises(ConfigError, match="top level must be a JSON object"):
        load_webhooks(bad, environ=env)


def test_other_sections_of_the_file_are_left_to_the_caller(tmp_path: Path) -> None:
    path = write_config(tmp_path, [ENTRY], escalation={"doctor": 300})
    [hook] = load_webhooks(path, environ={"PAGER_SECRET": SECRET}, other_sections={"escalation"})
    assert hook.name == "pager"
    (tmp_path / "empty.json").write_text('{"escalation": {}}')
    assert load_webhooks(tmp_path / "empty.json", other_sections={"escalation"}) == []


def test_a_target_built_in_code_is_checked_too() -> None:
    with pytest.raises(ConfigError, match="plain http to example.org"):
        WebhookTarget(name="x", url="http://example.org/", levels=("doctor",), secret=SECRET)
    with pytest.raises(ConfigError, match="at least 16"):
        WebhookTarget(name="x", url="https://example.org/", levels=("doctor",), secret="short")


# --- signatures ------------------------------------------------------------------------------

def test_sign_has_the_documented_form() -> None:
    import hashlib
    import hmac

    header = sign(SECRET, b'{"a":1}', 1_800_000_000)
    mac = hmac.new(SECRET.encode(), b'1800000000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1800000000,v1={mac}"


def test_verify_refuses_wrong_secret_changed_body_and_stale_or_future_time() -> None:
    body, t = encode_event(EVENT), 1_800_000_000
    header = sign(SECRET, body, t)
    assert verify(SECRET, header, body, now=t + 299)
    assert not verify(OTHER_SECRET, header, body, now=t)
    assert not verify(SECRET, header, body.replace(b"high", b"low!"), now=t)
    assert not verify(SECRET, header, body, now=t + 301)
    assert not verify(SECRET, header, body, now=t - 301)  # from the future
    assert verify(SECRET, header, body, tolerance_s=3600, now=t + 3000)
    assert not verify(SECRET, sign(SECRET, body, 1_000_000_000), body)  # 2001 is not now (the clock)


@pytest.mark.parametrize("header", ["", "t=1800000000", "v1=abc", "t=x,v1=abc", "garbage",
                                    "t=1800000000,t=1800000000,v1=00", "t=-5,v1=00"])
def test_a_malformed_signature_header_is_refused_not_raised(header: str) -> None:
    assert verify(SECRET, header, b"{}", now=1_800_000_000) is False


def test_any_of_several_signatures_may_match() -> None:
    body, t = b"{}", 1_800_000_000
    right = sign(SECRET, body, t).split(",")[1]
    assert verify(SECRET, f"t={t},v1={'0' * 64},{right}", body, now=t)


@settings(max_examples=200, deadline=None)
@given(secret=st.text(min_size=16, max_size=64), body=st.binary(max_size=2048),
       t=st.integers(min_value=0, max_value=10**11), skew=st.integers(min_value=-300, max_value=300))
def test_sign_then_verify_round_trips(secret: str, body: bytes, t: int, skew: int) -> None:
    header = sign(secret, body, t)
    assert verify(secret, header, body, now=t + skew)
    assert not verify(secret + "x", header, body, now=t)
    assert not verify(secret, header, body + b"\x00", now=t)


@settings(max_examples=100, deadline=None)
@given(body=st.binary(min_size=1, max_size=512), data=st.data())
def test_any_flipped_byte_breaks_the_signature(body: bytes, data: st.DataObject) -> None:
    i = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    flipped = body[:i] + bytes([body[i] ^ data.draw(st.integers(1, 255))]) + body[i + 1:]
    assert not verify(SECRET, sign(SECRET, body, 1000), flipped, now=1000)
