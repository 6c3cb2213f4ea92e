"""The ``streamtap`` command: a thin dispatcher to each package's own CLI module.

Subcommands are imported only when run, so ``streamtap --help`` and ``streamtap kfl check``
start fast and do not pull in Faust, aiokafka or scapy.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import click

from streamtap import __version__

__all__ = ["main"]

# name -> ("module:attribute", one-line help). Each package owns its CLI module.
COMMANDS: dict[str, tuple[str, str]] = {
    "stack": ("stack.cli:stack", "Run the local Kafka + S3 stack (no Docker needed)."),
    "kfl": ("pipeline.kfl.cli:kfl", "Check and evaluate KFL queries."),
    "sensor": ("producers.cli:sensor", "Capture, reassemble and dissect traffic into records."),
    "pipeline": ("pipeline.cli:pipeline", "Run a rule-evaluation worker (Faust)."),
    "watch": ("pipeline.cli:watch", "Print matched streams as they arrive."),
    "sink": ("sinks.cli:sink", "Write matched streams into PCAP objects on S3."),
    "verify": ("sinks.cli:verify", "Check a recording's objects, manifests and locks."),
    "replay": ("replay.cli:replay", "Replay recorded PCAPs into a topic."),
    "jobs": ("replay.cli:jobs", "List replay jobs and their state."),
    "tap": ("replay.cli:tap", "Open a recording in the local dashboard."),
    "demo": ("streamtap.demo:demo", "Record a capture end to end on the local stack."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands live in other packages and load on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if self._available(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target[0].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None  # that part of streamtap is not built yet
            raise
        command = getattr(module, attr, None)
        return command if isinstance(command, click.Command) else None

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    @staticmethod
    def _available(name: str) -> bool:
        module_name = COMMANDS[name][0].partition(":")[0]
        return importlib.util.find_spec(module_name.split(".")[0]) is not None and _has_module(
            module_name
        )


def _has_module(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except ModuleNotFoundError:
        return False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="streamtap")
def main() -> None:
    """streamtap: record the network streams that match your KFL rules, keep them as PCAPs in
    an immutable bucket, and investigate them later.

    Every command reads the same settings: environment variables (KAFKA_BOOTSTRAP, S3_ENDPOINT,
    S3_BUCKET, RECORDING_KFL, ...) and an optional YAML file named by STREAMTAP_CONFIG.
    """
