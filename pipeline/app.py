"""Building the Faust app of one pipeline worker from the shared Settings.

``create_app`` returns a configured app with its topics, its stream-memory table, the batch path
for ``streams`` (``consumer``), the timers, the control-topic task and the ``/stats`` page, so the
CLI stays a thin wrapper over Faust's worker and tests can build apps with their own ids and
ports.

Faust choices, and why:

* app id = consumer group: every worker started with the same id shares the ``streams``
  partitions, and Kafka moves partitions when one dies;
* ``store="memory://"``: the table is rebuilt from its changelog topic on start (state survives
  restarts through Kafka, not through local disk), and no RocksDB build is needed;
* the table is written to the changelog partition numbered like the record's ``streams``
  partition (co-partitioned, so a stream's memory moves with its partition and is recovered by
  the worker that takes the partition over); the worker names that partition explicitly, because
  it updates the table after a whole batch is delivered, when no single event is current;
* the worker's data dir lives under the streamtap home, one per app id and web port, so several
  workers on one machine never share it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.agents import register
from pipeline.consumer import DEFAULT_FETCH_WAIT_MS, BatchRoute, PipelineApp
from pipeline.reload import FileWatcher, ReloadEvent, RuleSources
from pipeline.stats import PipelineStats
from pipeline.topics import define_topics
from streamtap.settings import Settings

__all__ = ["DEFAULT_APP_ID", "PipelineConfig", "Runtime", "create_app", "logging_config"]

DEFAULT_APP_ID = "streamtap-pipeline"
MEMORY_TABLE = "stream-memory"

log = logging.getLogger("streamtap.pipeline")


@dataclass(frozen=True)
class PipelineConfig:
    """Worker options that are not shared settings (they come from ``streamtap pipeline``)."""

    settings: Settings
    rules_file: Path | None = None
    app_id: str = DEFAULT_APP_ID
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    datadir: Path | None = None
    #: records per batch at most (one fetch of the consumer)
    batch_size: int = 500
    #: longest the broker holds a fetch that finds nothing new (``consumer.FetchWaitThread``)
    fetch_wait_ms: int = DEFAULT_FETCH_WAIT_MS
    max_pending: int = 64
    #: bytes of remembered unmatched segments kept in memory for a later match (``recent``)
    recent_bytes: int = 64 * 1024 * 1024
    #: unmatched stream memories untouched for this many offsets of their partition expire
    idle_records: int | None = 10_000_000
    poll_interval_s: float = 1.0
    #: how often, and after how long without records from a partition that has more, the
    #: worker reads them itself (records Faust skipped at a partition's end; see ``agents``)
    catch_up_interval_s: float = 5.0
    catch_up_idle_s: float = 10.0
    control_wait_s: float = 10.0

    def data_dir(self) -> Path:
        if self.datadir is not None:
            return self.datadir
        return self.settings.home / "pipeline" / f"{self.app_id}-{self.web_port}"


@dataclass
class Runtime:
    """The live state of one worker, shared by the batch handler, the timers and ``/stats``."""

    config: PipelineConfig
    sources: RuleSources
    stats: PipelineStats = field(default_factory=PipelineStats)
    watcher: FileWatcher | None = None
    started_at: float = field(default_factory=time.time)

    def record_reload(self, event: ReloadEvent) -> None:
        if event.ok:
            log.info("%s", event)
        else:
            log.warning("%s", event)
            self.stats.error(event.at, event.source, "; ".join(event.problems))

    def poll_rules_file(self) -> None:
        if self.watcher is None:
            return
        try:
            changed, text = self.watcher.poll()
        except OSError as exc:
            log.warning("cannot read rules file %s: %s", self.watcher.path, exc)
            return
        if changed:
            self.record_reload(self.sources.reload_file(time.time(), text))

    def apply_control(self, document: Any) -> None:
        self.record_reload(self.sources.apply_control(time.time(), document))

    def stats_dict(self) -> dict[str, Any]:
        now = time.time()
        doc = self.stats.as_dict(now)
        doc["worker"] = {
            "app_id": self.config.app_id,
            "node": self.config.settings.node_name,
            "uptime_s": round(now - self.started_at, 1),
        }
        doc["rules"] = self.sources.current.describe()
        doc["recording"] = self.sources.current.enabled
        doc["reloads"] = [e.as_dict() for e in self.sources.history]
        return doc


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """One line per event from streamtap; Faust, mode and aiokafka only when something is off."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "line": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "line"},
        },
        "loggers": {
            "streamtap": {"level": level},
            "faust": {"level": "INFO" if level == "DEBUG" else "WARNING"},
            "mode": {"level": "INFO" if level == "DEBUG" else "WARNING"},
            "aiokafka": {"level": "ERROR"},
            "aiohttp": {"level": "WARNING"},
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
    }


def create_app(config: PipelineConfig) -> tuple[PipelineApp, Runtime]:
    settings = config.settings
    datadir = config.data_dir()
    datadir.mkdir(parents=True, exist_ok=True)
    brokers = [f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")]
    app = PipelineApp(
        config.app_id,
        route=BatchRoute(settings.streams_topic),
        fetch_wait_ms=config.fetch_wait_ms,
        broker=brokers,
        store="memory://",
        autodiscover=False,
        datadir=str(datadir),
        topic_replication_factor=1,
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=True,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=True,
        web_host=config.web_host,
        web_port=config.web_port,
        web_bind=config.web_host,
        producer_acks=-1,
        producer_max_request_size=settings.max_message_bytes + 64 * 1024,
        producer_linger_ms=5,
        producer_max_batch_size=1024 * 1024,
        consumer_max_fetch_size=max(settings.max_message_bytes, 1024 * 1024),
        broker_max_poll_records=config.batch_size,  # one fetch is one batch (consumer.py)
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        stream_buffer_maxsize=max(config.batch_size * 2, 4096),
        table_standby_replicas=0,
        worker_redirect_stdouts=False,
        logging_config=logging_config(),
    )
    topics = define_topics(app, settings)
    table = app.Table(
        MEMORY_TABLE,
        default=None,
        partitions=settings.topic_partitions,
        key_type=bytes,  # raw stream id bytes, exactly the ``streams`` key; values are JSON
        help="stream id -> rules that matched it and earlier unmatched segment positions",
    )
    sources = RuleSources(recording_kfl=settings.recording_kfl)
    runtime = Runtime(config=config, sources=sources)
    if config.rules_file is not None:
        runtime.watcher = FileWatcher(config.rules_file)
    register(app, runtime, topics, table)
    return app, runtime
