"""What `streamtap stack status` prints, from a StackStatus built by hand."""

from __future__ import annotations

from pathlib import Path

from stack.cli import render_status
from stack.local import ServerStatus, StackStatus


def _status(topics: dict[str, int] | None, kafka_pid: int | None = 10) -> StackStatus:
    return StackStatus(
        kafka=ServerStatus("Apache Kafka", "4.1.2", 9092, kafka_pid, Path("/h/logs/kafka.log")),
        s3=ServerStatus("SeaweedFS", "4.48", 8333, 11, Path("/h/logs/seaweedfs.log")),
        topics=topics,
        expected_topics={"streams": 6, "streamtap.stats": 1},
        bucket="rec",
        bucket_lock="Enabled (no default retention; retention is set per object)",
        client_env={"KAFKA_BOOTSTRAP": "127.0.0.1:9092"},
    )


def test_versions_ports_pids_and_lock_are_shown() -> None:
    text = render_status(_status({"streams": 6, "streamtap.stats": 1}))

    assert "Apache Kafka 4.1.2: running, pid 10" in text
    assert "SeaweedFS 4.48: running, pid 11" in text
    assert "port 8333 on 127.0.0.1; log /h/logs/seaweedfs.log" in text
    assert "bucket rec: Enabled" in text
    assert "  streams (6 partitions)\n" in text


def test_missing_and_mismatched_topics_are_called_out() -> None:
    text = render_status(_status({"streams": 3}))

    assert "streams (3 partitions; settings want 6)" in text
    assert "streamtap.stats: MISSING" in text


def test_a_stopped_broker_shows_no_topics() -> None:
    status = _status(None, kafka_pid=None)
    text = render_status(status)

    assert "Apache Kafka 4.1.2: stopped" in text
    assert "topics" not in text
    assert not status.running


def test_a_running_broker_that_does_not_answer_says_so() -> None:
    assert "topics: (broker not answering)" in render_status(_status(None))
