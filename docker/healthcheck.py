"""Container healthcheck for the streamtap services (stdlib only, so it costs no imports).

Healthy means the container can do its job: it reaches Kafka and S3 at the configured
endpoints, and, when a URL is given, the service's own HTTP endpoint answers 2xx/3xx.
Usage: healthcheck.py [http://127.0.0.1:PORT/path]
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from urllib.parse import urlsplit


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


def _kafka_ok() -> bool:
    first = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092").split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return _reachable(host, int(port))


def _s3_ok() -> bool:
    url = urlsplit(os.environ.get("S3_ENDPOINT", "http://127.0.0.1:8333"))
    default = 443 if url.scheme == "https" else 80
    return _reachable(url.hostname or "127.0.0.1", url.port or default)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return 200 <= response.status < 400
    except OSError:
        return False


def main(argv: list[str]) -> int:
    checks = {"kafka": _kafka_ok(), "s3": _s3_ok()}
    if argv:
        checks[argv[0]] = _http_ok(argv[0])
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        print(f"unhealthy: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
