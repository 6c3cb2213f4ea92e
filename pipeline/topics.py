"""The pipeline's topics as Faust sees them: raw bytes in and out.

Values are decoded and encoded by ``streamtap.schema`` inside the agent, not by a Faust codec, so a
record that does not decode is a value the agent can dead-letter with a reason instead of an error
inside Faust's consumer. Output topics are declared with the configured partition count so a
fresh cluster gets them keyed and partitioned like ``streams``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamtap.settings import Settings

__all__ = ["CONTROL_KEY", "Topics", "define_topics"]

#: key of rule-set messages on the control topic (the topic is compacted on this key)
CONTROL_KEY = b"rules"


@dataclass(frozen=True)
class Topics:
    streams: Any
    matched: Any
    deadletter: Any
    control: Any


def define_topics(app: Any, settings: Settings) -> Topics:
    raw = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    partitions = settings.topic_partitions
    return Topics(
        streams=app.topic(settings.streams_topic, **raw),
        matched=app.topic(settings.matched_topic, partitions=partitions, internal=True, **raw),
        deadletter=app.topic(
            settings.deadletter_topic, partitions=partitions, internal=True, **raw
        ),
        control=app.topic(settings.control_topic, partitions=1, internal=True, **raw),
    )
