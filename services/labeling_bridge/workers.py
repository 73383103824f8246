"""The labeling bridge's background work: the consumer of labeling-request events, the loop that
sends due requests and polls for annotations, and the HTTP endpoint of the platform's webhooks."""

from __future__ import annotations

import hmac
import json
import logging
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError

from shoal.common import telemetry
from shoal.common.data import labeling_requests
from shoal.common.data.datasets import DatasetCatalog, existing_frames
from shoal.common.errors import InvalidArgument, ShoalError, Unavailable
from shoal.common.labeling import platform_of
from shoal.common.stores.events import Event, EventBus
from shoal.common.topics import Topics
from shoal.common.v1 import common_pb2
from shoal.common.workers import Backoff, ThreadWorker, close_quietly
from shoal.labeling_bridge import state as st
from shoal.labeling_bridge.bridge import Bridge
from shoal.labeling_bridge.platforms import PlatformException

log = logging.getLogger(__name__)

#: events of this layout are understood
SCHEMA_VERSION = 1
WEBHOOK_TOKEN_HEADER = "X-Shoal-Webhook-Token"  # noqa: S105 - a header name
#: largest webhook body read
MAX_WEBHOOK_BYTES = 32 * 1024 * 1024


class RequestConsumer(ThreadWorker):
    """A consumer-group member on the labeling-requests topic: each event is recorded (its frames
    once, whatever the redeliveries) before its offset is committed; an event that cannot be
    understood goes to the labeling dead-letter topic with the reason."""

    name = "labeling-request-consumer"

    def __init__(self, bus: EventBus, topics: Topics, bridge: Bridge, datasets: DatasetCatalog, *, group_id: str):
        super().__init__()
        self.bus = bus
        self.topics = topics
        self.bridge = bridge
        self.datasets = datasets
        self.group_id = group_id
        self.recorded_events = 0

    def _run(self) -> None:
        consumer = None
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self.bus.consumer(self.group_id, [self.topics.labeling_requests])
                events = consumer.poll(0.5, max_records=50)
                for e in events:
                    self.handle(e)
                if events:
                    consumer.commit()
                    self.recorded_events += len(events)
                    telemetry.EVENTS_CONSUMED.labels(self.group_id, self.topics.labeling_requests).inc(len(events))
                self._failing = None
                backoff.reset()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any failure; _attempt_failed logs it
                self._failing = self._attempt_failed(exc, backoff, consumer)
                consumer = None
        if consumer is not None:
            close_quietly(consumer)

    def handle(self, event: Event) -> None:
        """Records one event, or dead-letters it with the reason."""
        try:
            e = common_pb2.LabelingRequestEvent.FromString(event.value)
        except DecodeError as exc:
            self._dead_letter(event, f"not a LabelingRequestEvent: {exc}")
            return
        try:
            self.record(e)
        except Unavailable:
            raise  # a store is down: the event stays uncommitted and comes again
        except ShoalError as exc:
            self._dead_letter(event, exc.describe())
        except Exception as exc:  # redelivering it would fail the same way, forever
            log.exception("%s: recording request %r failed", self.name, e.request_id)
            self._dead_letter(event, f"recording the request failed: {type(exc).__name__}: {exc}")

    def record(self, e: common_pb2.LabelingRequestEvent) -> None:
        if e.schema_version != SCHEMA_VERSION:
            raise InvalidArgument(f"schema_version {e.schema_version} is not {SCHEMA_VERSION}", field="schema_version")
        for name in ("request_id", "project", "dataset"):
            if not getattr(e, name):
                raise InvalidArgument("is empty", field=name)
        platform = platform_of(e.platform)
        self.datasets.get(e.project, e.dataset)  # NotFound: dead-lettered with the reason
        frames = [ref.frame_id for ref in e.items if ref.frame_id and not ref.object_id]
        # a reason per item when the producer gave them (those of items that are no frame dropped with them)
        reasons = None
        if len(e.reasons) == len(e.items):
            reasons = [r for ref, r in zip(e.items, e.reasons, strict=True) if ref.frame_id and not ref.object_id]
        present = existing_frames(self.bridge.metrics, e.project, e.dataset, frames)
        request = st.Request(
            project=e.project,
            request_id=e.request_id,
            dataset=e.dataset,
            platform=platform,
            source=e.source,
            reason=e.reason,
            preannotation_inference_set=e.preannotation_inference_set,
            requested_by=e.requested_by,
            requested_time=e.requested_time.ToDatetime(tzinfo=st.dt.UTC) if e.HasField("requested_time") else st._now(),
            frames=len(frames),
        )
        self.bridge.record(
            request,
            frames,
            reasons,
            first_position=e.part * labeling_requests.EVENT_ITEMS,
            missing=[f for f in frames if f not in present],
        )

    def _dead_letter(self, event: Event, reason: str) -> None:
        log.warning(
            "dead-lettering labeling request event %s/%d/%d: %s", event.topic, event.partition, event.offset, reason
        )
        headers = (
            ("shoal-reason", reason.encode()),
            ("shoal-source", f"{event.topic}/{event.partition}/{event.offset}".encode()),
        )
        self.bus.publish(
            self.topics.labeling_dead_letter, key=event.key or b"", value=event.value, headers=headers
        ).result(timeout=60)


class BridgeLoop(ThreadWorker):
    """Sends the requests that are due (every second) and polls the platform for annotations
    (every ``poll_seconds``), on its own thread. A platform or store failure is retried on the
    next tick; it does not make the service unready (the status of each request shows it)."""

    name = "labeling-bridge-loop"

    def __init__(self, bridge: Bridge, *, poll_seconds: float, tick_seconds: float = 1.0) -> None:
        super().__init__()
        self.bridge = bridge
        self.poll_seconds = poll_seconds
        self.tick_seconds = tick_seconds
        self._wake = threading.Event()
        #: why the last tick failed, until one succeeds
        self.last_error: str | None = None

    def stop(self, timeout_seconds: float) -> None:
        super().stop(timeout_seconds)
        self.bridge.close()

    def _interrupt(self) -> None:
        self._wake.set()

    def wake(self) -> None:
        """Makes the next send attempt now (a new request arrived)."""
        self._wake.set()

    def _run(self) -> None:
        last_poll = 0.0
        while not self._stop.is_set():
            try:
                self.bridge.send_due()
                if time.monotonic() - last_poll >= self.poll_seconds:
                    last_poll = time.monotonic()
                    self.bridge.poll()
                self.last_error = None
            except (PlatformException, ShoalError, OSError) as exc:
                # the platform or a store failed between requests: the next tick tries again
                self.last_error = str(exc)
                log.warning("%s: %s", self.name, exc)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("%s: unexpected failure; the next tick tries again", self.name)
            self._wake.wait(self.tick_seconds)
            self._wake.clear()


class WebhookServer:
    """``POST /webhooks/<platform>/<project>``: the platform's annotation events. A call is answered
    as soon as its annotations are parsed (202; Label Studio waits for the answer while the annotator
    saves, and gives up after a second), and a thread applies them in arrival order. What is
    queued when the process stops is not lost: the poll reads it again. With a secret set, a call
    without the matching ``X-Shoal-Webhook-Token`` is refused (401)."""

    name = "labeling-webhooks"

    def __init__(self, bridge: Bridge, *, host: str, port: int, secret: str = "") -> None:
        self.bridge = bridge
        self.host = host
        self.requested_port = port
        self.secret = secret
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue[tuple[str, str, list[Any]] | None] = queue.Queue()
        self._applier: threading.Thread | None = None

    def _apply(self) -> None:
        while (work := self._queue.get()) is not None:
            project, platform, annotations = work
            try:
                self.bridge.apply(project, platform, annotations)
            except (ShoalError, PlatformException) as exc:
                log.warning("webhook annotations of project %s not applied (the poll will): %s", project, exc)
            except Exception:  # the applier must outlive any failure
                log.exception("webhook annotations of project %s not applied (the poll will)", project)

    def start(self) -> None:
        bridge, secret, pending = self.bridge, self.secret, self._queue
        if not secret:
            log.warning("labeling webhooks accept calls without a token: set SHOAL_LABELING_WEBHOOK_SECRET")
        self._applier = threading.Thread(target=self._apply, name=f"{self.name}-apply", daemon=True)
        self._applier.start()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.debug("webhook %s", format % args)

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                parts = self.path.split("?", 1)[0].strip("/").split("/")
                if len(parts) != 3 or parts[0] != "webhooks":
                    self._answer(404, {"error": "POST /webhooks/<platform>/<project>"})
                    return
                _, platform_name, project = parts
                if secret and not hmac.compare_digest(self.headers.get(WEBHOOK_TOKEN_HEADER, ""), secret):
                    self._answer(401, {"error": f"missing or wrong {WEBHOOK_TOKEN_HEADER}"})
                    return
                platform = bridge.platform()
                if platform is None or platform.name != platform_name:
                    self._answer(404, {"error": f"no platform {platform_name!r} is configured"})
                    return
                size = int(self.headers.get("Content-Length") or 0)
                if size > MAX_WEBHOOK_BYTES:
                    self._answer(413, {"error": "body too large"})
                    return
                try:
                    payload = json.loads(self.rfile.read(size) or b"{}")
                except ValueError as exc:
                    self._answer(400, {"error": f"the body is not JSON: {exc}"})
                    return
                if not isinstance(payload, dict):
                    self._answer(400, {"error": "the body is not a JSON object"})
                    return
                annotations = platform.parse_webhook(payload)
                if annotations:
                    pending.put((project, platform.name, annotations))
                self._answer(202, {"queued": len(annotations)})

        self._server = ThreadingHTTPServer((self.host, self.requested_port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        log.info("labeling webhooks on http://%s:%d/webhooks/<platform>/<project>", self.host, self.port)

    def stop(self, timeout_seconds: float) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout_seconds)
        self._queue.put(None)
        if self._applier is not None:
            self._applier.join(timeout_seconds)

    def healthy(self) -> bool:
        alive = [t for t in (self._thread, self._applier) if t is not None]
        return len(alive) == 2 and all(t.is_alive() for t in alive)
