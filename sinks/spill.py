"""A bounded spill area on disk for closed batches waiting on S3.

While S3 is down, closed batches pile up. Past the memory cap their bytes go here instead of
being dropped; past the disk cap the service stops consuming (back-pressure) until uploads
catch up. Nothing here survives a restart on purpose: Kafka still holds every uncommitted
message, and a restarted sink rebuilds the same batches from it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sinks.plan import PlannedObject

__all__ = ["SpillArea"]


class SpillArea:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.used = 0
        self._serial = 0

    def reset(self) -> None:
        """Start empty: leftovers belong to a run whose batches Kafka will replay."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.used = 0

    def fits(self, size: int) -> bool:
        return self.used + size <= self.max_bytes

    def spill(self, obj: PlannedObject) -> PlannedObject:
        """Write the object's bytes to disk and return a copy that reads them back."""
        self._serial += 1
        path = self.directory / f"{self._serial:012d}-{obj.sha256[:16]}.pcap"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(obj.data)
        tmp.rename(path)
        self.used += obj.size
        return obj.spilled_to(path)

    def release(self, obj: PlannedObject) -> None:
        if obj.spill_path is not None:
            obj.spill_path.unlink(missing_ok=True)
            self.used -= obj.size
