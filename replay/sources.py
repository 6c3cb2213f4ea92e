"""Where a replay reads captures from: a local file, a local folder, or ``s3://bucket/prefix``.

Every source is turned into a list of :class:`CaptureObject` up front, so a job knows its total
(for the progress bar and ETA) and can record which objects it finished (to resume). S3 listing
walks every page (minio's ``list_objects`` follows continuation tokens), so a prefix with more
than 1,000 objects is read whole; manifests are read during listing because they are small and
are what lets the replay skip the big objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from replay.errors import ReplayError
from replay.manifest import MANIFEST_SUFFIX, Manifest, parse_manifest
from streamtap.settings import Settings

__all__ = ["CaptureObject", "S3Location", "list_source", "make_s3_client", "parse_s3_url"]

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class CaptureObject:
    """One capture to replay: a file path or an object key, its size and its manifest if any."""

    key: str
    size: int
    manifest: Manifest | None = None
    s3: S3Location | None = None

    @property
    def first_ns(self) -> int:
        if self.manifest and self.manifest.first_ns is not None:
            return self.manifest.first_ns
        return 0


def parse_s3_url(url: str) -> S3Location | None:
    """``s3://bucket/prefix`` -> location; None when ``url`` is not an s3 URL."""
    if not url.startswith("s3://"):
        return None
    parsed = urlparse(url)
    if not parsed.netloc:
        raise ReplayError(f"{url}: no bucket name (expected s3://bucket/prefix)")
    return S3Location(parsed.netloc, parsed.path.lstrip("/"))


def make_s3_client(settings: Settings) -> Any:
    """A minio client for the configured endpoint (built once at the edge and passed down)."""
    from streamtap.objectstore import make_minio

    return make_minio(settings)


def _is_capture(name: str) -> bool:
    return name.lower().endswith(CAPTURE_SUFFIXES)


def _list_local(path: Path) -> list[CaptureObject]:
    if path.is_file():
        return [CaptureObject(str(path), path.stat().st_size)]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _is_capture(p.name))
        return [CaptureObject(str(p), p.stat().st_size) for p in files]
    raise ReplayError(f"{path}: no such file or folder")


def _list_s3(
    client: Any, loc: S3Location, on_manifest: Callable[[], None] | None
) -> list[CaptureObject]:
    captures: dict[str, int] = {}
    manifests: list[str] = []
    try:
        for obj in client.list_objects(loc.bucket, prefix=loc.prefix, recursive=True):
            name = obj.object_name
            if name.endswith(MANIFEST_SUFFIX):
                manifests.append(name)
            elif _is_capture(name):
                captures[name] = int(obj.size or 0)
    except Exception as exc:  # minio raises S3Error, urllib3 errors, ...
        raise ReplayError(f"{loc.url}: cannot list objects: {exc}") from exc
    by_object: dict[str, Manifest] = {}
    for key in manifests:
        try:
            resp = client.get_object(loc.bucket, key)
            try:
                data = resp.read()
            finally:
                resp.close()
                resp.release_conn()
            m = parse_manifest(data, key)
        except Exception:
            continue  # an unreadable manifest only means its object cannot be pruned
        if on_manifest:
            on_manifest()
        target = m.object_key or key[: -len(MANIFEST_SUFFIX)]
        by_object[target] = m
    out = []
    for key, size in captures.items():
        found = by_object.get(key) or by_object.get(key.rsplit(".", 1)[0])
        out.append(CaptureObject(key, size, found, loc))
    out.sort(key=lambda o: (o.first_ns, o.key))
    return out


def list_source(
    source: str, client: Any = None, on_manifest: Callable[[], None] | None = None
) -> list[CaptureObject]:
    """Every capture under ``source`` (file, folder or s3 URL), in replay order."""
    loc = parse_s3_url(source)
    if loc is None:
        return _list_local(Path(source))
    if client is None:
        raise ReplayError("an s3:// source needs an S3 client")
    return _list_s3(client, loc, on_manifest)


def read_object(obj: CaptureObject, client: Any = None) -> bytes:
    """The capture's bytes (a whole object; objects are batches of bounded size)."""
    if obj.s3 is None:
        return Path(obj.key).read_bytes()
    try:
        resp = client.get_object(obj.s3.bucket, obj.key)
        try:
            return bytes(resp.read())
        finally:
            resp.close()
            resp.release_conn()
    except Exception as exc:
        raise ReplayError(f"s3://{obj.s3.bucket}/{obj.key}: download failed: {exc}") from exc
