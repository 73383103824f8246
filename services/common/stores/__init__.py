"""The three stores of a Shoal deployment, opened from settings.

=========  ===================================  ===========================================
role       embedded default (``shoal serve``)   scale-out
=========  ===================================  ===========================================
metrics    chDB under ``data_dir/clickhouse``   ClickHouse server, ``http(s)://host:8123``
vectors    Milvus Lite ``data_dir/milvus.db``   Milvus server, ``http(s)://host:19530``
events     in-process bus ``data_dir/bus``      Kafka, ``SHOAL_KAFKA_BOOTSTRAP_SERVERS``
=========  ===================================  ===========================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shoal.common.settings import ShoalSettings
from shoal.common.stores.events import EmbeddedEventBus, EventBus, KafkaEventBus, kafka_client_config
from shoal.common.stores.metrics import MetricsStore, open_metrics_store
from shoal.common.stores.vectors import VectorStore, open_vector_store

log = logging.getLogger(__name__)

__all__ = ["EventBus", "MetricsStore", "Stores", "VectorStore", "open_stores"]


@dataclass
class Stores:
    metrics: MetricsStore
    vectors: VectorStore
    events: EventBus

    def close(self) -> None:
        for name in ("events", "vectors", "metrics"):
            try:
                getattr(self, name).close()
            except Exception:
                log.warning("closing the %s store failed", name, exc_info=True)


def metrics_store(settings: ShoalSettings) -> MetricsStore:
    """The metrics store the settings name (not connected yet)."""
    password = settings.clickhouse_password.get_secret_value() if settings.clickhouse_password else None
    return open_metrics_store(
        settings.resolved_metrics_url,
        database=settings.clickhouse_database,
        username=settings.clickhouse_username,
        password=password,
        verify_tls=settings.clickhouse_verify_tls,
        ca_file=settings.clickhouse_ca_file,
        timeout_seconds=settings.store_timeout_seconds,
    )


def open_stores(settings: ShoalSettings) -> Stores:
    """Opens (lazily connects) the stores the settings name. Nothing is reached yet: a store
    that is down shows in health, it does not stop the process from starting."""
    metrics = metrics_store(settings)
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    vectors = open_vector_store(
        settings.resolved_vectors_url,
        token=token,
        db_name=settings.milvus_db_name,
        ca_file=settings.milvus_ca_file,
        timeout_seconds=settings.store_timeout_seconds,
    )
    events: EventBus
    if settings.kafka_bootstrap_servers:
        events = KafkaEventBus(
            settings.kafka_bootstrap_servers,
            client_config=kafka_client_config(settings),
            request_timeout_seconds=settings.store_timeout_seconds,
        )
    else:
        events = EmbeddedEventBus(settings.embedded_bus_dir, default_partitions=settings.topic_partitions)
    log.info("stores: metrics=%r vectors=%r events=%s", metrics, vectors, events.kind)
    return Stores(metrics=metrics, vectors=vectors, events=events)
