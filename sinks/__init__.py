"""sinks: matched streams -> PCAP objects and chained manifests on S3, and ``verify``.

The public API is what replay, tests and tools need to write, read or check a recording:
batches, planning, the writer, manifests, keys, verify and the minio store. The service and
its command live in ``sinks.service`` and ``sinks.cli``.
"""

from sinks.batch import ClosedBatch, Consumed
from sinks.errors import ObjectConflictError, SinkError
from sinks.keys import MANIFEST_SUFFIX, ObjectKey, WriterId, manifest_key, parse_key
from sinks.manifest import MANIFEST_VERSION, build_manifest, parse_manifest
from sinks.pcap import write_pcap, write_pcapng
from sinks.plan import PlannedObject, PlanOptions, plan_batch
from sinks.s3 import MinioStore, make_store_client
from sinks.store import ObjectStore
from sinks.verify import Problem, VerifyReport, verify_prefix
from sinks.writer import BatchWriter

__all__ = [
    "MANIFEST_SUFFIX",
    "MANIFEST_VERSION",
    "BatchWriter",
    "ClosedBatch",
    "Consumed",
    "MinioStore",
    "ObjectConflictError",
    "ObjectKey",
    "ObjectStore",
    "PlanOptions",
    "PlannedObject",
    "Problem",
    "SinkError",
    "VerifyReport",
    "WriterId",
    "build_manifest",
    "make_store_client",
    "manifest_key",
    "parse_key",
    "parse_manifest",
    "plan_batch",
    "verify_prefix",
    "write_pcap",
    "write_pcapng",
]
