"""Signed webhook notifications of automation runs, delivered with retries.

Each delivery is a JSON POST with these headers:

- ``X-Shoal-Event``: ``gates.failed``, ``run.failed`` or ``run.succeeded``;
- ``X-Shoal-Delivery``: the same for every attempt of one notification, so a receiver can drop repeats
  (a run taken up again after a crash may deliver a notification twice; this id says so);
- ``X-Shoal-Timestamp``: the attempt's time, seconds since the Unix epoch;
- ``X-Shoal-Signature``: ``sha256=`` and the hex HMAC-SHA256, keyed by the rule's secret, of the
  timestamp, a ``.`` and the body (:func:`signature`). A receiver recomputes it, compares in constant
  time, and refuses old timestamps, so that a recorded delivery cannot be replayed.

No answer, a 5xx, a 408 or a 429 is tried again after a wait that doubles; any other answer but a 2xx is
a refusal, not tried again. Redirects are not followed. Every attempt is reported to the caller, which
records it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shoal.common.errors import Unavailable
from shoal.common.timeutil import now_ms

log = logging.getLogger(__name__)

EVENT_HEADER = "X-Shoal-Event"
DELIVERY_HEADER = "X-Shoal-Delivery"
TIMESTAMP_HEADER = "X-Shoal-Timestamp"
SIGNATURE_HEADER = "X-Shoal-Signature"
#: most bytes of an answer read (its body is not used)
MAX_ANSWER_BYTES = 64 * 1024


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Shoal-Signature`` of a delivery: ``sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signed: str) -> bool:
    """Whether ``signed`` is the signature of ``body`` at ``timestamp`` (constant time): what a receiver checks."""
    return hmac.compare_digest(signature(secret, timestamp, body), signed)


@dataclass(frozen=True)
class Attempt:
    attempt: int
    #: the HTTP status answered, 0 when none came
    status_code: int
    #: why it failed; "" when the receiver took it
    error: str
    duration_seconds: float
    at: Any  # datetime

    @property
    def delivered(self) -> bool:
        return 200 <= self.status_code < 300


class NotDelivered(Exception):
    """The receiver refused the notification, or did not take it within the attempts."""


def retried(status: int) -> bool:
    """No answer (0), a 5xx, 408 Request Timeout and 429 Too Many Requests are tried again."""
    return status == 0 or status >= 500 or status in (408, 429)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx comes back as the answer: a refusal


def private_address(url: str) -> str:
    """Why ``url``'s host may not be posted to (empty: it may): a name that does not resolve, or one that
    resolves to a loopback, private, link-local or other non-public address (allowed only with
    ``automations_allow_private_webhooks``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return f"the webhook host {host!r} cannot be resolved"
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global or addr.is_multicast:
            return (f"the webhook host {host!r} is a private or local address ({addr}); webhooks go to public "
                    "addresses only (SHOAL_AUTOMATIONS_ALLOW_PRIVATE_WEBHOOKS allows others)")  # fmt: skip
    return ""


class WebhookSender:
    """POSTs notifications: at most ``attempts`` tries, waiting ``initial_backoff`` seconds after the
    first failure, twice that after the next, up to ``max_backoff``; ``stopping`` ends the waits (the
    delivery then raises :class:`~shoal.common.errors.Unavailable`, and is made again later)."""

    def __init__(
        self,
        *,
        attempts: int = 5,
        initial_backoff: float = 1.0,
        max_backoff: float = 30.0,
        timeout_seconds: float = 10.0,
        stopping: threading.Event | None = None,
        allow_private: bool = False,
    ) -> None:
        self.attempts = attempts
        self.allow_private = allow_private
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.timeout_seconds = timeout_seconds
        self.stopping = stopping or threading.Event()
        self._opener = urllib.request.build_opener(_NoRedirects())

    def deliver(
        self,
        url: str,
        secret: str,
        *,
        event: str,
        delivery_id: str,
        body: bytes,
        record: Callable[[Attempt], None],
        first_attempt: int = 1,
    ) -> Attempt:
        """Delivers ``body``; returns the attempt the receiver took. Raises :class:`NotDelivered` when it
        refused or every attempt failed. ``record`` is called after each attempt; numbering starts at
        ``first_attempt`` (after the attempts of an interrupted run)."""
        wait = self.initial_backoff
        host = urlsplit(url).hostname or "?"
        if not self.allow_private:
            refused = private_address(url)
            if refused:
                record(Attempt(first_attempt, 0, refused, 0.0, now_ms()))
                raise NotDelivered(refused)
        last: Attempt | None = None
        for n in range(first_attempt, first_attempt + self.attempts):
            last = self._attempt(url, secret, event, delivery_id, body, n)
            record(last)
            if last.delivered:
                return last
            if not retried(last.status_code):
                raise NotDelivered(f"{host} refused it: {last.error}")
            if n == first_attempt + self.attempts - 1:
                break
            log.info("webhook delivery %s to %s, attempt %d: %s; next in %.1fs", delivery_id, host, n, last.error, wait)
            if self.stopping.wait(wait):
                raise Unavailable(f"stopping while delivering {delivery_id}; it is delivered again later")
            wait = min(wait * 2, self.max_backoff)
        assert last is not None
        raise NotDelivered(f"{self.attempts} attempts to {host} failed, the last: {last.error}")

    def _attempt(self, url: str, secret: str, event: str, delivery_id: str, body: bytes, n: int) -> Attempt:
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "shoal-automations/1",
            EVENT_HEADER: event,
            DELIVERY_HEADER: delivery_id,
            TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: signature(secret, ts, body),
        }
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only
        at = now_ms()
        t0 = time.monotonic()
        status, error = 0, ""
        try:
            with self._opener.open(request, timeout=self.timeout_seconds) as answer:
                answer.read(MAX_ANSWER_BYTES)
                status = int(answer.status)
        except urllib.error.HTTPError as exc:
            status, error = int(exc.code), f"HTTP {exc.code} {exc.reason}"
            exc.close()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            error = f"no answer: {reason}"
        if not error and not 200 <= status < 300:
            error = f"HTTP {status}"
        return Attempt(n, status, error, time.monotonic() - t0, at)
