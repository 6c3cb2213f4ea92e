"""The local stack without Docker: Kafka (KRaft) and SeaweedFS S3 on 127.0.0.1, the topics and
the Object-Lock bucket, all under one home directory."""

from stack.errors import StackError
from stack.local import LocalStack, StackStatus, init_resources, settings_env

__all__ = ["LocalStack", "StackError", "StackStatus", "init_resources", "settings_env"]
