"""Fetching the Kafka broker's jars with Maven, once per pom change.

The pom in `stack/maven/` is the only place the Kafka version is written; install copies its
runtime closure into `<home>/kafka/lib` and stamps it with the pom's hash so a second run is a
no-op and a version bump re-fetches.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from stack.errors import StackError
from stack.layout import Layout

__all__ = [
    "POM",
    "check_tools",
    "install_kafka",
    "is_installed",
    "kafka_jar",
    "pinned_kafka_version",
]

POM = Path(__file__).parent / "maven" / "pom.xml"
STAMP = ".pom-sha256"
MVN_TIMEOUT_S = 900


def pinned_kafka_version(pom: Path = POM) -> str:
    """The Kafka version the pom pins (its `kafka.version` property)."""
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", pom.read_text())
    if not match:
        raise StackError(f"{pom} has no <kafka.version> property")
    return match.group(1)


def check_tools(*tools: str) -> None:
    """Fail with one message listing every missing tool and how to get it."""
    hints = {
        "java": "a Java 17+ runtime (Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless)",
        "mvn": "Apache Maven (Debian/Ubuntu: apt-get install -y maven)",
    }
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        lines = [f"  - {t}: install {hints.get(t, t)}" for t in missing]
        raise StackError("missing on PATH:\n" + "\n".join(lines))


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def kafka_jar(lib: Path) -> Path | None:
    """The broker jar (`kafka_2.13-<version>.jar`) in lib, if installed."""
    jars = sorted(lib.glob("kafka_2.*-*.jar"))
    return jars[-1] if jars else None


def is_installed(layout: Layout) -> bool:
    stamp = layout.kafka_lib / STAMP
    return stamp.is_file() and stamp.read_text().strip() == _pom_digest()


def install_kafka(layout: Layout, force: bool = False) -> bool:
    """Copy the pom's runtime jars into lib. Returns False when they were already there."""
    if not force and is_installed(layout):
        return False
    check_tools("java", "mvn")
    staging = layout.kafka_dir / "lib.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    argv = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=MVN_TIMEOUT_S, cwd=layout.kafka_dir
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"mvn did not finish in {MVN_TIMEOUT_S}s: {' '.join(argv)}") from exc
    if done.returncode != 0 or kafka_jar(staging) is None:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise StackError(f"fetching Kafka jars failed: {' '.join(argv)}\n{output}")
    (staging / STAMP).write_text(_pom_digest() + "\n")
    # Swap in whole so a failed fetch never leaves a half-filled lib behind.
    shutil.rmtree(layout.kafka_lib, ignore_errors=True)
    staging.replace(layout.kafka_lib)
    return True
