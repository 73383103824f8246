"""The background loops outlive any failure: an unexpected error is logged and retried, never the end of
the thread (a dead loop would stop sending, polling or applying until the pod restarts)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shoal.common.stores.events import EmbeddedEventBus
from shoal.common.topics import Topics
from shoal.common.v1 import common_pb2
from shoal.common.workers import Backoff, ThreadWorker
from shoal.labeling_bridge.workers import BridgeLoop, RequestConsumer, WebhookServer


def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_backoff_doubles_up_to_its_maximum_and_resets() -> None:
    stop = threading.Event()
    stop.set()  # waits return at once
    b = Backoff(0.5, 3.0)
    seen = []
    for _ in range(5):
        seen.append(b.current)
        b.wait(stop)
    assert seen == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.current == 0.5


def test_a_thread_worker_is_healthy_while_it_runs_and_not_while_failing() -> None:
    class Looping(ThreadWorker):
        name = "looping"

        def _run(self) -> None:
            while not self._stop.wait(0.01):
                pass

    w = Looping()
    assert not w.healthy()  # not started
    w.start()
    assert w.healthy()
    w._failing = "the store is down"
    assert not w.healthy()
    w._failing = None
    w.stop(5)
    assert not w._thread.is_alive() and not w.healthy()  # type: ignore[union-attr]


class _FlakyBridge:
    """A bridge whose first send raises an error no one planned for."""

    def __init__(self) -> None:
        self.sends = 0
        self.polls = 0
        self.closed = False

    def send_due(self) -> int:
        self.sends += 1
        if self.sends == 1:
            raise KeyError("an unexpected field")
        return 0

    def poll(self) -> int:
        self.polls += 1
        return 0

    def close(self) -> None:
        self.closed = True


def test_the_bridge_loop_survives_an_unexpected_error_and_tries_again() -> None:
    bridge = _FlakyBridge()
    loop = BridgeLoop(bridge, poll_seconds=0.0, tick_seconds=0.01)  # type: ignore[arg-type]
    loop.start()
    try:
        _until(lambda: bridge.sends >= 3, "sends after the failure")
        assert loop.healthy() and loop.last_error is None
    finally:
        loop.stop(5)
    assert bridge.closed and not loop.healthy()


class _Platform:
    name = "label_studio"

    def parse_webhook(self, payload: dict[str, Any]) -> list[Any]:
        return [payload["annotation"]]


class _BrokenOnceBridge:
    def __init__(self) -> None:
        self.applied: list[list[Any]] = []

    def platform(self) -> _Platform:
        return _Platform()

    def apply(self, project: str, platform: str, annotations: list[Any]) -> None:
        if annotations == ["bad"]:
            raise ValueError("cannot convert")
        self.applied.append(annotations)


def test_the_webhook_applier_survives_an_unexpected_error_and_applies_the_next_call() -> None:
    bridge = _BrokenOnceBridge()
    server = WebhookServer(bridge, host="127.0.0.1", port=0)  # type: ignore[arg-type]
    server.start()
    try:
        for annotation in ("bad", "good"):
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.port}/webhooks/label_studio/pets",
                data=json.dumps({"annotation": annotation}).encode(),
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback)
                assert response.status == 202
        _until(lambda: bridge.applied == [["good"]], "the second call applied")
    finally:
        server.stop(5)


def test_an_event_whose_recording_fails_unexpectedly_is_dead_lettered_not_retried_forever(tmp_path: Path) -> None:
    class Failing(RequestConsumer):
        def record(self, e: common_pb2.LabelingRequestEvent) -> None:
            raise RuntimeError("a bug")

    bus = EmbeddedEventBus(tmp_path)
    topics = Topics(prefix="t")
    bus.ensure_topics(topics.specs(1, 1))
    event = common_pb2.LabelingRequestEvent(schema_version=1, request_id="r-1", project="p", dataset="d")
    bus.publish(topics.labeling_requests, key=b"r-1", value=event.SerializeToString()).result(5)
    consumer = Failing(bus, topics, None, None, group_id="g")  # type: ignore[arg-type]
    consumer.start()
    try:
        _until(lambda: consumer.recorded_events == 1, "the event handled and committed")
        assert consumer.healthy()
        with bus.consumer("reader", [topics.labeling_dead_letter]) as reader:
            got: list[Any] = []
            _until(lambda: bool(got.extend(reader.poll(0.1)) or got), "the dead letter")
        (letter,) = got
        reason = dict(letter.headers)["shoal-reason"].decode()
        assert letter.value == event.SerializeToString()
        assert reason == "recording the request failed: RuntimeError: a bug"
    finally:
        consumer.stop(5)
        bus.close()
    committed = EmbeddedEventBus(tmp_path)
    try:
        ends = committed.end_offsets(topics.labeling_requests)
        with committed.consumer("g", [topics.labeling_requests]) as again:
            assert {tp: again.committed(tp) or 0 for tp in ends} == ends  # nothing left to redeliver
    finally:
        committed.close()
