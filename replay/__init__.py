"""replay: recordings back into traffic you can investigate.

The public API is what other packages and tools need: the entry store and its queries, the
job model, and the record-level helpers. The web app (``replay.app``), the CLI
(``replay.cli``) and the service wiring (``replay.service``) are imported from their modules,
so importing ``replay`` does not pull in FastAPI.
"""

from replay.errors import ReplayError
from replay.jobs import Job, JobSpec, JobStore
from replay.manifest import Criteria, Manifest, criteria_from, may_match, parse_manifest
from replay.query import Query, compile_query
from replay.runner import restore_names, run_job
from replay.store import EntryStore, Page, StoreError

__all__ = [
    "Criteria",
    "EntryStore",
    "Job",
    "JobSpec",
    "JobStore",
    "Manifest",
    "Page",
    "Query",
    "ReplayError",
    "StoreError",
    "compile_query",
    "criteria_from",
    "may_match",
    "parse_manifest",
    "restore_names",
    "run_job",
]
