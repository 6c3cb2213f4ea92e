"""The local stack without Docker: Kafka (KRaft) and SeaweedFS S3 on 127.0.0.1, the topics and
the Object-Lock bucket, all under one home directory."""

from stack.bucket import ensure_bucket
from stack.errors import StackError
from stack.install import pinned_kafka_version
from stack.local import LocalStack, StackStatus, init_resources, settings_env
from stack.ports import free_port
from stack.topics import TopicSpec, describe_topics, ensure_topics, topic_specs

__all__ = [
    "LocalStack",
    "StackError",
    "StackStatus",
    "TopicSpec",
    "describe_topics",
    "ensure_bucket",
    "ensure_topics",
    "free_port",
    "init_resources",
    "pinned_kafka_version",
    "settings_env",
    "topic_specs",
]
