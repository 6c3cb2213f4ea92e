"""sinks: matched streams -> PCAP objects and chained manifests on S3, and ``verify``.

The public API is the pure part (what replay, tests and tools need to read or check a
recording); the service and the S3 client live in ``sinks.service``, ``sinks.s3`` and
``sinks.cli`` and are imported from there.
"""

from sinks.errors import ObjectConflictError, SinkError
from sinks.keys import MANIFEST_SUFFIX, ObjectKey, WriterId, manifest_key, parse_key
from sinks.manifest import MANIFEST_VERSION, build_manifest, parse_manifest
from sinks.pcap import write_pcap, write_pcapng
from sinks.store import ObjectStore
from sinks.verify import Problem, VerifyReport, verify_prefix

__all__ = [
    "MANIFEST_SUFFIX",
    "MANIFEST_VERSION",
    "ObjectConflictError",
    "ObjectKey",
    "ObjectStore",
    "Problem",
    "SinkError",
    "VerifyReport",
    "WriterId",
    "build_manifest",
    "manifest_key",
    "parse_key",
    "parse_manifest",
    "verify_prefix",
    "write_pcap",
    "write_pcapng",
]
