"""The Kafka bus holds kafka-python's response classes strongly: a dead weak proxy in its registry
once killed a connection's read task, and the consumer on it received nothing more."""

from __future__ import annotations

import gc
import weakref

from shoal.common.stores.events.kafka import _hold_response_classes, _StrongRegistry


def test_a_class_registered_through_a_weak_proxy_outlives_its_other_references() -> None:
    registry = _StrongRegistry({})
    cls = type("ShortLivedResponse", (), {"API_KEY": 9999})
    registry[9999] = weakref.proxy(cls)
    del cls
    gc.collect()
    assert registry[9999].__name__ == "ShortLivedResponse"
    assert isinstance(registry[9999], type)


def test_every_response_class_kafka_python_knows_is_held_once_a_client_is_made() -> None:
    from kafka.protocol.api_header import ResponseClassRegistry

    _hold_response_classes()
    _hold_response_classes()  # twice changes nothing
    registry = ResponseClassRegistry._response_class_registry
    assert isinstance(registry, _StrongRegistry)
    assert len(registry) > 40  # every API kafka-python speaks, Fetch and JoinGroup among them
    assert all(isinstance(cls, type) for cls in registry.values())
    fetch = registry[1]  # Fetch
    assert fetch[4].__name__.startswith("FetchResponse")  # its versions are found as before
