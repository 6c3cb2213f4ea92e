"""The one place Kafka client configuration lives: every service builds its clients here.

Producers are idempotent (which forces acks=all) so a retried send never duplicates a record
within a partition; request and fetch sizes follow MAX_MESSAGE_BYTES so the broker, producers
and consumers agree on the largest record.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.codec import has_zstd

from streamtap.settings import Settings

__all__ = [
    "compression_type",
    "make_admin",
    "make_consumer",
    "make_producer",
    "producer_config",
]


def compression_type() -> str:
    """zstd when the codec library is installed (aiokafka needs cramjam), else gzip."""
    return "zstd" if has_zstd() else "gzip"


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer; exposed so Faust config can reuse them."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": f"streamtap-{settings.node_name}",
        "enable_idempotence": True,
        "acks": "all",
        "compression_type": compression_type(),
        "max_request_size": settings.max_message_bytes,
        "linger_ms": 5,
    }
    config.update(overrides)
    return config


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """An unstarted producer; the caller pairs start() with stop() in one place."""
    return AIOKafkaProducer(**producer_config(settings, **overrides))


def make_consumer(
    settings: Settings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """An unstarted consumer with manual commits: commit only after the work is durable."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": f"streamtap-{settings.node_name}",
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": max(settings.max_message_bytes, 1024 * 1024),
        "fetch_max_bytes": max(settings.max_message_bytes, 50 * 1024 * 1024),
    }
    config.update(overrides)
    return AIOKafkaConsumer(*topics, **config)


def make_admin(settings: Settings, **overrides: Any) -> AIOKafkaAdminClient:
    """An unstarted admin client (topic creation and inspection)."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": f"streamtap-admin-{settings.node_name}",
    }
    config.update(overrides)
    return AIOKafkaAdminClient(**config)
