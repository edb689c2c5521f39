"""Alert webhooks (docs/monitoring.md, "Webhooks"): the JSON configuration, the signature, and a
sender that posts events in the background.

Configuration: ``{"webhooks": [{"name", "url", "levels", "secret_env"}]}``. The secret is read
from the environment variable named by ``secret_env`` (required, at least 16 characters) so it
is never in a file, a log line, a repr or a delivery result. URLs must be https; plain http only
to this machine (localhost, 127.0.0.1, ::1). Unknown keys are errors, so a misspelt field (or a
secret pasted inline) never goes unnoticed.

Signature (as Stripe and GitHub sign theirs): ``X-Iatros-Signature: t=<unix seconds>,v1=<hex
HMAC-SHA256 of "<t>." + body>``. The timestamp is inside the MAC so a captured delivery cannot be
replayed later than ``verify``'s tolerance; a receiver checks with :func:`verify`.

Delivery: :class:`WebhookSender` puts one delivery per subscribed webhook on that webhook's own
bounded queue and returns at once; one worker thread per webhook posts them in order, so a
webhook that is down (retrying with back-off) never holds up the others. A delivery keeps its
``X-Iatros-Delivery`` id over retries (receivers drop repeats by it) and is signed afresh on each
try. Connection errors, timeouts, 5xx and 429 are retried (1, 2, 4, ... s, 6 tries); any other
answer that is not 2xx is final (redirects are not followed: the signed body goes only to the
configured URL). Each final outcome goes to ``on_result`` (the server's audit log) and to
:meth:`WebhookSender.recent`. Logs and results name the webhook, never its URL (a URL may carry
a token in its path) nor its secret.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from iatros.errors import ConfigError

log = logging.getLogger("iatros.monitoring.webhooks")

MIN_SECRET_LENGTH = 16
KEYS = ("name", "url", "levels", "secret_env")
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
SIGNATURE_VERSION = "v1"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# HTTP answers worth another try: the receiver is overloaded or briefly broken
_RETRY_STATUS = frozenset({429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class WebhookTarget:
    """One configured webhook: where to post, which escalation levels it receives, and the
    signing secret (left out of repr and comparisons so it never reaches a log by accident)."""

    name: str
    url: str
    levels: tuple[str, ...]
    secret: str = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("a webhook needs a non-empty name")
        object.__setattr__(self, "levels", tuple(self.levels))
        if not self.levels or not all(isinstance(x, str) and x.strip() for x in self.levels):
            raise ConfigError(f"webhook {self.name!r}: levels must be a non-empty list of "
                              f"escalation level names")
        problem = _url_problem(self.url)
        if problem:
            raise ConfigError(f"webhook {self.name!r}: url {problem}")
        if not isinstance(self.secret, str) or len(self.secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"webhook {self.name!r}: the secret must be at least "
                              f"{MIN_SECRET_LENGTH} characters")


def _url_problem(url: object) -> str | None:
    """Why a URL cannot be a webhook's (None when it can): http(s) only, https off this machine,
    no user:password part (it would be sent and could be logged)."""
    if not isinstance(url, str) or not url:
        return "must be a non-empty string"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a port that is not a number
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"must start with https:// (not {parts.scheme or 'nothing'}://)"
    if not host:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password (the secret comes from secret_env)"
    if parts.scheme == "http" and not _is_local(host):
        return f"uses plain http to {host}: use https (http is allowed only to localhost)"
    return None


def _is_local(host: str) -> bool:
    """True for this machine's loopback names: localhost, 127.0.0.1 and ::1 (exactly)."""
    if host.lower() in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host) in (ipaddress.ip_address("127.0.0.1"),
                                              ipaddress.ip_address("::1"))
    except ValueError:
        return False


def load_webhooks(path: str | Path, *, environ: Mapping[str, str] | None = None,
                  other_sections: Collection[str] = (),
                  known_levels: Collection[str] | None = None) -> list[WebhookTarget]:
    """Read the webhooks of a monitor config file, their secrets from the environment.

    ``other_sections`` names the file's other top-level keys the caller reads itself (anything
    else is an error); ``known_levels``, when given, makes a level outside it an error. A file
    without ``webhooks`` has none. Errors (ConfigError) name the file and the field at fault.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"monitor config {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"monitor config {path} cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"monitor config {path} is not valid JSON: {exc.msg} at line {exc.lineno} "
                          f"column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"monitor config {path}: the top level must be a JSON object "
                          f'like {{"webhooks": [...]}}')
    allowed = {"webhooks", *other_sections}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"monitor config {path}: unknown key {unknown[0]!r} at the top level "
                          f"(known: {', '.join(sorted(allowed))})")
    return webhooks_from_config(data.get("webhooks", []), source=f"monitor config {path}",
                                environ=environ, known_levels=known_levels)


def webhooks_from_config(entries: object, *, source: str = "monitor config",
                         environ: Mapping[str, str] | None = None,
                         known_levels: Collection[str] | None = None) -> list[WebhookTarget]:
    """The ``webhooks`` list of an already parsed config as targets (for a caller that reads the
    file itself); ``source`` starts every error message."""
    env = os.environ if environ is None else environ
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'webhooks' must be a list of objects")
    targets: list[WebhookTarget] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{source}: webhooks[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be an object with {', '.join(KEYS)}")
        name = entry.get("name")
        if isinstance(name, str) and name.strip():
            where = f"{where} ({name!r})"
        unknown = sorted(set(entry) - set(KEYS))
        if unknown:
            hint = (" (the secret is never written in the file: name an environment variable "
                    "in secret_env)" if any("secret" in k.lower() for k in unknown) else "")
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})"
                              f"{hint}")
        missing = [k for k in KEYS if k not in entry]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)}")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: name must be a non-empty string")
        if name in seen:
            raise ConfigError(f"{where}: name {name!r} is used by an earlier webhook")
        seen.add(name)
        problem = _url_problem(entry["url"])
        if problem:
            raise ConfigError(f"{where}: url {problem}")
        levels = entry["levels"]
        if (not isinstance(levels, list) or not levels
                or not all(isinstance(x, str) and x.strip() for x in levels)):
            raise ConfigError(f"{where}: levels must be a non-empty list of escalation level names")
        if known_levels is not None:
            bad = [x for x in levels if x not in known_levels]
            if bad:
                raise ConfigError(f"{where}: unknown level {bad[0]!r} in levels "
                                  f"(known: {', '.join(known_levels)})")
        var = entry["secret_env"]
        if not isinstance(var, str) or not _ENV_NAME.match(var):
            raise ConfigError(f"{where}: secret_env must be the name of an environment variable "
                              f"(letters, digits, _), got {var!r}")
        secret = env.get(var)
        if not secret:
            raise ConfigError(f"{where}: environment variable {var} is not set; set it to the "
                              f"webhook's signing secret (at least {MIN_SECRET_LENGTH} characters)")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"{where}: the secret in {var} is {len(secret)} characters; it must be "
                              f"at least {MIN_SECRET_LENGTH} (e.g. python -c 'import secrets; "
                              f"print(secrets.token_hex(32))')")
        targets.append(WebhookTarget(name=name, url=entry["url"], levels=tuple(dict.fromkeys(levels)),
                                     secret=secret))
    return targets


def _mac(secret: str, body: bytes, timestamp: int) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>." + body`` under the secret."""
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body,
                    hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Iatros-Signature`` header value of a body sent at ``timestamp`` (unix seconds)."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError(f"timestamp must be whole unix seconds (int), got {timestamp!r}")
    return f"t={timestamp},{SIGNATURE_VERSION}={_mac(secret, body, timestamp)}"


def verify(secret: str, header: str, body: bytes, tolerance_s: float = 300,
           now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a time within ``tolerance_s`` of
    ``now`` (either side; default the clock). Any malformed header is False, never an error; the
    MAC is compared in constant time and any of several ``v1`` values may match (secret
    rotation)."""
    if not isinstance(header, str) or not isinstance(body, bytes | bytearray):
        return False
    timestamp: int | None = None
    macs: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if timestamp is not None or not re.fullmatch(r"\d{1,15}", value):
                return False
            timestamp = int(value)
        elif key == SIGNATURE_VERSION:
            macs.append(value)
    if timestamp is None or not macs:
        return False
    current = time.time() if now is None else now
    if not math.isfinite(current) or abs(current - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, bytes(body), timestamp).encode("ascii")
    ok = False
    for mac in macs:  # compare every candidate: no early exit whose timing says which matched
        ok |= hmac.compare_digest(expected, mac.encode("ascii", "replace"))
    return ok


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The body posted for an event: compact JSON with sorted keys, UTF-8 (no NaN: not JSON)."""
    return json.dumps(event, separators=(",", ":"), sort_keys=True, ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


@dataclass(frozen=True)
class DeliveryResult:
    """The final outcome of one delivery of one event to one webhook (no URL, no secret)."""

    delivery_id: str
    webhook: str
    event_type: str
    level: str
    outcome: Literal["delivered", "failed"]
    tries: int
    status: int | None  # the last HTTP status, None when no answer came
    reason: str  # why it failed ("" when delivered)
    finished_at: float  # unix seconds

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON values (for the audit log)."""
        return {"delivery_id": self.delivery_id, "webhook": self.webhook,
                "event_type": self.event_type, "level": self.level, "outcome": self.outcome,
                "tries": self.tries, "status": self.status, "reason": self.reason,
                "finished_at": self.finished_at}


@dataclass(frozen=True)
class _Delivery:
    """One queued delivery: the event's body for one webhook, under one id for all its tries."""

    delivery_id: str
    event_type: str
    level: str
    body: bytes


class _Worker:
    """One webhook's bounded queue and the thread that posts its deliveries in order."""

    def __init__(self, sender: WebhookSender, target: WebhookTarget) -> None:
        self.sender = sender
        self.target = target
        self.queue: deque[_Delivery] = deque()
        self.cond = threading.Condition()
        self.closing = False
        self.dropped: list[DeliveryResult] = []  # taken off a full queue, to be reported
        # made here, on the caller's thread, so a broken TLS setup fails the sender's start
        self.client = httpx.Client(timeout=sender.timeout_s, follow_redirects=False)
        self.thread = threading.Thread(target=self._run, name=f"webhook-{target.name}", daemon=True)

    def put(self, delivery: _Delivery) -> bool:
        """Queue a delivery without blocking; True when the oldest one was dropped for room (the
        worker reports it, so ``on_result`` never runs on the caller's thread)."""
        with self.cond:
            if self.closing:
                raise RuntimeError("the webhook sender is closed")
            dropped = len(self.queue) >= self.sender.max_queue
            if dropped:  # kept as its small result, without the body
                self.dropped.append(self._result(self.queue.popleft(), "failed", 0, None,
                                                 "dropped: the webhook's queue was full"))
            self.queue.append(delivery)
            self.cond.notify()
            return dropped

    def _run(self) -> None:
        """Post queued deliveries until closed and drained (or stopped)."""
        with self.client as client:
            while True:
                with self.cond:
                    while not self.queue and not self.dropped and not self.closing:
                        self.cond.wait()
                    dropped, self.dropped = self.dropped, []
                    stop = not self.queue or self.sender._stop.is_set()
                    delivery = None if stop else self.queue.popleft()
                for result in dropped:
                    self.sender._finish(result)
                if delivery is None:
                    break
                try:
                    result = self._deliver(client, delivery)
                except Exception as exc:  # a bug must not end the worker and strand the queue
                    log.exception("webhook %s: delivery %s broke", self.target.name,
                                  delivery.delivery_id)
                    result = self._result(delivery, "failed", 0, None,
                                          _scrub(f"internal error: {type(exc).__name__}", self.target))
                self.sender._finish(result)
        with self.cond:  # stopped before these could go: they are failures too
            dropped, left = self.dropped, list(self.queue)
            self.dropped, self.queue = [], deque()
        for result in dropped:
            self.sender._finish(result)
        for old in left:
            self.sender._finish(self._result(old, "failed", 0, None,
                                             "not sent: the sender was closed first"))

    def _deliver(self, client: httpx.Client, delivery: _Delivery) -> DeliveryResult:
        """Post one delivery, retrying what may pass later; the final outcome."""
        sender, target = self.sender, self.target
        status: int | None = None
        reason = ""
        tries = 0
        for attempt in range(sender.max_tries):
            if attempt:
                delay = sender.backoff_base_s * sender.backoff_factor ** (attempt - 1)
                if sender._stop.wait(delay):
                    return self._result(delivery, "failed", tries, status,
                                        f"{reason} after {tries} tries (close() stopped the retries)")
            tries += 1
            headers = {"Content-Type": "application/json",
                       "User-Agent": "iatros-webhooks",
                       "X-Iatros-Event": delivery.event_type,
                       "X-Iatros-Delivery": delivery.delivery_id,
                       "X-Iatros-Signature": sign(target.secret, delivery.body, int(sender._clock()))}
            try:
                response = client.post(target.url, content=delivery.body, headers=headers)
            except httpx.TransportError as exc:  # connection refused / reset, timeouts, TLS
                status, reason = None, _scrub(f"{type(exc).__name__}: {exc}", target)
                log.info("webhook %s: delivery %s try %d/%d failed (%s)", target.name,
                         delivery.delivery_id, tries, sender.max_tries, reason)
                continue
            except httpx.HTTPError as exc:  # a request that can never be sent (bad URL, ...)
                reason = _scrub(f"{type(exc).__name__}: {exc}", target)
                return self._result(delivery, "failed", tries, None, reason)
            status = response.status_code
            if 200 <= status < 300:
                return self._result(delivery, "delivered", tries, status, "")
            reason = f"HTTP {status}" + (f" {response.reason_phrase}" if response.reason_phrase else "")
            if status not in _RETRY_STATUS:
                return self._result(delivery, "failed", tries, status, reason + " (not retried)")
            log.info("webhook %s: delivery %s try %d/%d answered %s", target.name,
                     delivery.delivery_id, tries, sender.max_tries, reason)
        return self._result(delivery, "failed", tries, status, f"{reason} after {tries} tries")

    def _result(self, delivery: _Delivery, outcome: Literal["delivered", "failed"], tries: int,
                status: int | None, reason: str) -> DeliveryResult:
        """A final outcome of this webhook's delivery, stamped now."""
        return DeliveryResult(delivery_id=delivery.delivery_id, webhook=self.target.name,
                              event_type=delivery.event_type, level=delivery.level,
                              outcome=outcome, tries=tries, status=status, reason=reason,
                              finished_at=self.sender._clock())


def _scrub(text: str, target: WebhookTarget) -> str:
    """An error text without the webhook's URL (it may hold a token) or secret."""
    return text.replace(target.url, f"<webhook {target.name}>").replace(target.secret, "<secret>")


class WebhookSender:
    """Posts monitoring events to the webhooks subscribed to their escalation level, in the
    background: :meth:`send` never blocks, :meth:`close` drains.

    ``max_queue`` bounds each webhook's queue (when full the oldest delivery is dropped, logged
    and reported as failed); ``max_tries``, ``backoff_base_s`` and ``backoff_factor`` set the
    retries (waits of base, base*factor, ... between tries); ``timeout_s`` bounds each request.
    ``on_result`` gets every final :class:`DeliveryResult` on a worker thread (an exception it
    raises is logged, never stops delivery). ``clock`` gives unix seconds for signatures and
    results.
    """

    def __init__(self, targets: Iterable[WebhookTarget], *,
                 on_result: Callable[[DeliveryResult], None] | None = None,
                 max_queue: int = 1000, max_tries: int = 6, backoff_base_s: float = 1.0,
                 backoff_factor: float = 2.0, timeout_s: float = 10.0, recent_size: int = 100,
                 clock: Callable[[], float] = time.time) -> None:
        self.targets = tuple(targets)
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ConfigError(f"webhook names must be unique, got {names}")
        if max_queue < 1 or max_tries < 1 or recent_size < 0:
            raise ConfigError("max_queue and max_tries must be at least 1, recent_size at least 0")
        if backoff_base_s < 0 or backoff_factor < 1 or timeout_s <= 0:
            raise ConfigError("backoff_base_s must be >= 0, backoff_factor >= 1, timeout_s > 0")
        self.on_result = on_result
        self.max_queue = max_queue
        self.max_tries = max_tries
        self.backoff_base_s = backoff_base_s
        self.backoff_factor = backoff_factor
        self.timeout_s = timeout_s
        self._clock = clock
        self._stop = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._recent: deque[DeliveryResult] = deque(maxlen=recent_size)
        self._dropped = 0
        self._workers = {t.name: _Worker(self, t) for t in self.targets}
        for worker in self._workers.values():
            worker.thread.start()

    def __repr__(self) -> str:
        return (f"WebhookSender(webhooks={[t.name for t in self.targets]}, "
                f"max_tries={self.max_tries}, closed={self._closed})")

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        """How many deliveries were dropped from full queues since the start."""
        return self._dropped

    def send(self, event: Mapping[str, Any]) -> list[str]:
        """Queue ``event`` for every webhook subscribed to ``event["level"]``; returns at once
        with the delivery ids (one per webhook, none when nobody subscribes). The event must
        have string ``type`` and ``level`` and be JSON (TypeError / ValueError otherwise)."""
        if self._closed:
            raise RuntimeError("the webhook sender is closed")
        event_type, level = event.get("type"), event.get("level")
        if not isinstance(event_type, str) or not isinstance(level, str):
            raise ValueError("a webhook event needs string 'type' and 'level' fields")
        body = encode_event(event)
        ids: list[str] = []
        full: list[str] = []
        for target in self.targets:
            if level not in target.levels:
                continue
            delivery = _Delivery(uuid.uuid4().hex, event_type, level, body)
            if self._workers[target.name].put(delivery):
                full.append(target.name)
            ids.append(delivery.delivery_id)
        if full:
            with self._lock:
                self._dropped += len(full)
                total = self._dropped
            log.warning("webhook queue full (%d per webhook): dropped the oldest delivery of %s; "
                        "%d dropped since start", self.max_queue, ", ".join(full), total)
        return ids

    def recent(self) -> list[DeliveryResult]:
        """The latest final outcomes, oldest first (at most ``recent_size``)."""
        with self._lock:
            return list(self._recent)

    def pending(self) -> int:
        """Deliveries queued and not yet taken by a worker."""
        return sum(len(w.queue) for w in self._workers.values())

    def close(self, timeout: float = 10.0) -> bool:
        """Stop taking events and deliver what is queued, waiting at most ``timeout`` seconds.
        Returns True when everything finished; otherwise the rest is abandoned (retries stop,
        still-queued deliveries are reported as failed) and False is returned."""
        self._closed = True
        for worker in self._workers.values():
            with worker.cond:
                worker.closing = True
                worker.cond.notify_all()
        deadline = time.monotonic() + timeout
        for worker in self._workers.values():
            worker.thread.join(max(0.0, deadline - time.monotonic()))
        if all(not w.thread.is_alive() for w in self._workers.values()):
            return True
        self._stop.set()
        for worker in self._workers.values():  # a moment to report what they abandon
            worker.thread.join(0.5)
        log.warning("webhook sender closed after %.1f s with deliveries unfinished", timeout)
        return False

    def _finish(self, result: DeliveryResult) -> None:
        """Keep and hand on one final outcome; log failures."""
        with self._lock:
            self._recent.append(result)
        if result.outcome == "failed":
            log.warning("webhook %s: %s event delivery %s failed after %d tries: %s", result.webhook,
                        result.event_type, result.delivery_id, result.tries, result.reason)
        else:
            log.debug("webhook %s: %s event delivery %s delivered (%d tries)", result.webhook,
                      result.event_type, result.delivery_id, result.tries)
        if self.on_result is not None:
            try:
                self.on_result(result)
            except Exception:
                log.exception("webhook %s: the on_result callback failed for delivery %s",
                              result.webhook, result.delivery_id)
