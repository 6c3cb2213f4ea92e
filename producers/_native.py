"""Which of the engine's modules run compiled, and the guard that keeps a stale build out.

The sensor engine's hot modules (``NATIVE_MODULES``) are compiled with mypyc by
``scripts/build_native.py`` (``make native``, part of ``make setup``) into extension modules
next to their ``.py`` files: the same source, about twice as fast, because a packet's path
through decode, reassembly and the dissectors is hundreds of small Python calls.

Python's import system prefers an extension module to the ``.py`` beside it, so an edited
``.py`` would silently lose to an old build. The build therefore also compiles
``producers._native_stamp``, which holds the SHA-256 of every source it compiled. ``activate()``
runs first thing when ``producers`` is imported and picks one mode for all of the modules
(they call each other natively, so they are compiled all together or not at all):

* ``"compiled"``: a build exists and every source still matches its hash;
* ``"stale"``: a build exists but some source changed since: a warning says so and the pure
  Python sources are imported instead (``make native`` rebuilds);
* ``"pure"``: no build, or ``STREAMTAP_PURE=1`` in the environment.

Module-level constants of the compiled modules are annotated ``Final``: mypyc keeps those in
C statics, where any other module global is looked up in the module's dict on every use.

This module is never compiled itself and imports nothing from the package.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Literal

__all__ = [
    "NATIVE_MODULES",
    "STAMP_MODULE",
    "activate",
    "is_compiled",
    "mode",
    "source_digest",
    "stale_modules",
]

Mode = Literal["compiled", "stale", "pure"]

#: compiled together, as one mypyc group (chosen by profile: every module a packet's path
#: from the pcap reader through ``Engine.feed`` spends time in)
NATIVE_MODULES: tuple[str, ...] = (
    "producers.capture.pcap",
    "producers.decode.packet",
    "producers.decode.link",
    "producers.decode.fragments",
    "producers.reassembly.half",
    "producers.reassembly.conn",
    "producers.reassembly.table",
    "producers.reassembly.roles",
    "producers.dissect.base",
    "producers.dissect.http1.buffer",
    "producers.dissect.http1.readers",
    "producers.dissect.http1.side",
    "producers.dissect.http1.state",
    "producers.dissect.http1.dissector",
    "producers.dissect.http1.message",
    "producers.dissect.http1.content",
    "producers.dissect.http1.events",
    "producers.dissect.dns.wire",
    "producers.dissect.dns.names",
    "producers.dissect.dns.dissector",
    "producers.dissect.dns.framing",
    "producers.engine",
    "producers.records",
    "producers.names",
)
#: the compiled-only module holding ``SOURCES``: {module name: SHA-256 of its source}
STAMP_MODULE = "producers._native_stamp"

_PACKAGE_DIR = Path(__file__).resolve().parent
_mode: Mode | None = None


def source_path(module: str, package_dir: Path = _PACKAGE_DIR) -> Path:
    """The ``.py`` file of one of ``NATIVE_MODULES`` under ``package_dir``."""
    parts = module.split(".")[1:]
    return package_dir.joinpath(*parts[:-1], parts[-1] + ".py")


def source_digest(path: Path) -> str:
    """What the build records per module and the guard compares: SHA-256 of the file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stale_modules(sources: dict[str, str], package_dir: Path = _PACKAGE_DIR) -> list[str]:
    """Modules whose source no longer matches the build's hash (or that the build lacks)."""
    stale = []
    for module in NATIVE_MODULES:
        path = source_path(module, package_dir)
        if sources.get(module) != (source_digest(path) if path.exists() else None):
            stale.append(module)
    return stale


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Import the listed modules from their ``.py`` even where an extension module sits
    beside it (the pure and stale modes)."""

    def __init__(self, names: Sequence[str], package_dir: Path) -> None:
        self._paths = {name: source_path(name, package_dir) for name in names}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        file = self._paths.get(fullname)
        if file is None:
            return None
        return importlib.util.spec_from_file_location(fullname, file)


def _missing_extensions(package_dir: Path = _PACKAGE_DIR) -> list[str]:
    """Modules of the build without their extension module (a build being replaced)."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return [
        module
        for module in NATIVE_MODULES
        if not source_path(module, package_dir).with_suffix(suffix).exists()
    ]


def _stamp_sources() -> dict[str, str] | None:
    """The build's hashes, or None when there is no build (the stamp exists only compiled)."""
    try:
        stamp = importlib.import_module(STAMP_MODULE)
    except ImportError:
        return None
    sources = getattr(stamp, "SOURCES", None)
    return dict(sources) if isinstance(sources, dict) else None


def activate() -> Mode:
    """Pick the mode once (at ``producers`` import; later calls return it)."""
    global _mode
    if _mode is not None:
        return _mode
    loaded = [name for name in NATIVE_MODULES if name in sys.modules]
    if loaded:  # too late to choose: report what is there
        _mode = "compiled" if all(is_compiled(sys.modules[n]) for n in loaded) else "pure"
        return _mode
    if os.environ.get("STREAMTAP_PURE", "") not in ("", "0"):
        _mode = "pure"
    else:
        sources = _stamp_sources()
        if sources is None:
            _mode = "pure"
        else:
            stale = stale_modules(sources) + _missing_extensions()
            if not stale:
                _mode = "compiled"
                return _mode
            warnings.warn(
                f"streamtap: the compiled engine does not match its source ({', '.join(stale)}); "
                "using the pure Python modules instead. Run `make native` to rebuild.",
                RuntimeWarning,
                stacklevel=2,
            )
            _mode = "stale"
    sys.meta_path.insert(0, _SourceFinder(NATIVE_MODULES, _PACKAGE_DIR))
    return _mode


def mode() -> Mode:
    """The mode ``activate()`` chose."""
    return activate()


def is_compiled(module: ModuleType) -> bool:
    """Whether a module was loaded from an extension module rather than its ``.py``."""
    file = getattr(module, "__file__", None) or ""
    return file.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
