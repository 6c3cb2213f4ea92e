"""The compiled engine (``producers._native``, ``scripts/build_native.py``): the modules loaded
are the ones the mode says, a stale build never shadows edited source, and the mode that is
not the default still agrees with the corpus."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import producers
from producers import _native

ROOT = Path(producers.__file__).resolve().parents[1]
PURE_ASKED = os.environ.get("STREAMTAP_PURE", "") not in ("", "0")


def _build_exists() -> bool:
    return any((ROOT / "producers").glob("_native_stamp*.so"))


def test_loaded_modules_are_the_ones_the_mode_says() -> None:
    modules = [importlib.import_module(name) for name in _native.NATIVE_MODULES]
    compiled = [m.__name__ for m in modules if _native.is_compiled(m)]
    if _native.mode() == "compiled":
        assert len(compiled) == len(modules)
    else:
        assert compiled == []


def test_the_engine_loaded_is_the_one_asked_for() -> None:
    """``make test`` sets STREAMTAP_EXPECT_NATIVE (unless STREAMTAP_PURE=1), so the tests and
    the benchmarks run what ``make setup`` built, not a silent fallback; STREAMTAP_PURE=1, or
    no build at all, runs the pure Python engine."""
    engine = importlib.import_module("producers.engine")
    expected = os.environ.get("STREAMTAP_EXPECT_NATIVE") == "1" or _build_exists()
    if PURE_ASKED or not expected:
        assert _native.mode() == "pure"
        assert not _native.is_compiled(engine), engine.__file__
    else:
        assert _native.mode() == "compiled"
        assert _native.is_compiled(engine), engine.__file__


def _run_in_copy(
    tmp_path: Path, edit: bool = False, drop: str = ""
) -> subprocess.CompletedProcess[str]:
    """Import a copy of the package (with its build) in a fresh interpreter, optionally after
    editing one compiled module's source or dropping the extension modules matching ``drop``,
    and feed the engine a frame."""
    copy = tmp_path / "producers"
    shutil.copytree(ROOT / "producers", copy, ignore=shutil.ignore_patterns("__pycache__"))
    if edit:
        with (copy / "engine.py").open("a") as fh:
            fh.write("\n# edited after the build\n")
    for path in copy.glob(drop) if drop else ():
        path.unlink()
    code = (
        "import producers, producers.engine as e, producers._native as n\n"
        "from producers.decode.synth import udp_frame\n"
        f"assert producers.__file__.startswith({str(tmp_path)!r}), producers.__file__\n"
        "e.Engine('t').feed_all([udp_frame(1, '10.0.0.1', 5353, '10.0.0.2', 53, b'x')])\n"
        "print(n.mode(), e.__file__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "STREAMTAP_PURE"}
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + str(ROOT)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,  # not the checkout: ``-c`` puts the working directory first on sys.path
        capture_output=True,
        text=True,
        check=True,
    )


@pytest.mark.skipif(not _build_exists(), reason="no compiled build to go stale")
def test_an_unchanged_build_is_used(tmp_path: Path) -> None:
    out = _run_in_copy(tmp_path, edit=False)
    mode, file = out.stdout.split()
    assert mode == "compiled" and file.endswith(".so")
    assert "does not match its source" not in out.stderr


@pytest.mark.skipif(not _build_exists(), reason="no compiled build to go stale")
def test_a_stale_build_falls_back_to_the_source_loudly(tmp_path: Path) -> None:
    out = _run_in_copy(tmp_path, edit=True)
    mode, file = out.stdout.split()
    assert mode == "stale" and file.endswith("engine.py")
    assert "does not match its source (producers.engine)" in out.stderr


@pytest.mark.skipif(not _build_exists(), reason="no compiled build to go stale")
def test_a_partial_build_is_not_mixed_with_source(tmp_path: Path) -> None:
    out = _run_in_copy(tmp_path, drop="records.*.so")
    mode, file = out.stdout.split()
    assert mode == "stale" and file.endswith("engine.py")
    assert "does not match its source (producers.records)" in out.stderr


def test_stale_modules_compares_every_source() -> None:
    package = ROOT / "producers"
    sources = {
        m: _native.source_digest(_native.source_path(m, package)) for m in _native.NATIVE_MODULES
    }
    assert _native.stale_modules(sources, package) == []
    sources["producers.records"] = "0" * 64
    del sources["producers.names"]
    assert _native.stale_modules(sources, package) == ["producers.records", "producers.names"]


@pytest.mark.skipif(
    _native.mode() != "compiled", reason="the other mode would need a build (not cheap)"
)
def test_the_pure_engine_still_agrees_with_the_corpus() -> None:
    """The default here is compiled, so run the corpus agreement and the fast-path differential
    tests on the pure Python modules too (the reference the compiled ones are built from)."""
    env = dict(os.environ, STREAMTAP_PURE="1")
    env.pop("STREAMTAP_EXPECT_NATIVE", None)
    tests = ROOT / "tests" / "unit" / "producers"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(tests / "test_engine_corpus.py"),
            str(tests / "dissect" / "test_http1_fastpath.py"),
            str(tests / "test_native.py") + "::test_loaded_modules_are_the_ones_the_mode_says",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_make_rebuilds_when_any_compiled_source_changes() -> None:
    """``make native`` decides whether to rebuild from the Makefile's ``NATIVE_SRC`` list; a
    compiled module missing from it (as the pcap reader once was) leaves a stale build after an
    edit, which then loads as pure Python and fails the compiled test run."""
    root = Path(producers.__file__).resolve().parent.parent
    text = (root / "Makefile").read_text()
    start = text.index("NATIVE_SRC :=")
    block = text[start : text.index("\n\n", start)].split("\n#", 1)[0]
    words = block.replace("\\\n", " ").replace("$(wildcard", " ").replace(")", " ").split()[2:]
    listed: set[Path] = set()
    for word in words:
        listed.update((root / p).resolve() for p in root.glob(word))
    missing = [m for m in _native.NATIVE_MODULES if _native.source_path(m).resolve() not in listed]
    assert not missing, f"NATIVE_SRC in the Makefile does not list {missing}"
