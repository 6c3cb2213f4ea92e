"""Hot reload: the worker's current rule set and how each source changes it.

``RuleSources`` keeps the three sources (``RECORDING_KFL``, the rules file, the control topic)
and the compiled ``RuleSet`` built from them. Every change builds a whole new ``RuleSet`` and then
replaces one reference, so the agent, which reads ``sources.current`` once per record, sees either
the old rules or the new ones, never a mix. A source that cannot be parsed leaves everything as it
was and the reason is recorded in the history (and logged by the caller).

``FileWatcher`` decides whether the rules file changed by polling its mtime, size and content
hash: no extra dependency, works on every file system (including bind mounts where inotify is
silent), and an editor's write-then-rename is seen as one change.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.rules import (
    KFL,
    Compiler,
    RulesError,
    RuleSet,
    RuleSpec,
    build_ruleset,
    merge_specs,
    parse_rules_document,
    parse_rules_yaml,
    specs_from_env,
)

__all__ = ["FileWatcher", "ReloadEvent", "RuleSources"]


@dataclass(frozen=True)
class ReloadEvent:
    """One attempt to change the rules, kept for ``/stats`` and logged as one line."""

    at: float
    source: str
    ok: bool
    fingerprint: str
    rules: tuple[str, ...]
    problems: tuple[str, ...] = ()
    #: rules that loaded with a warning (e.g. an ignored ``limit()``), "rule 'name': text"
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "source": self.source,
            "ok": self.ok,
            "fingerprint": self.fingerprint,
            "rules": list(self.rules),
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }

    def __str__(self) -> str:
        state = "loaded" if self.ok else "rejected"
        names = ", ".join(self.rules) or "none (recording off)"
        text = f"rules {state} from {self.source} [{self.fingerprint}]: {names}"
        if self.problems:
            text += " | " + " | ".join(p.replace("\n", " / ") for p in self.problems)
        if self.warnings:
            text += " | warning: " + " | warning: ".join(self.warnings)
        return text


@dataclass
class RuleSources:
    """The rule sources of one worker and the compiled set currently in force."""

    recording_kfl: str = ""
    compiler: Compiler = KFL
    history_size: int = 50
    env: dict[str, RuleSpec] = field(default_factory=dict)
    file: dict[str, RuleSpec] = field(default_factory=dict)
    control: dict[str, RuleSpec] = field(default_factory=dict)
    current: RuleSet = field(default_factory=RuleSet)
    history: deque[ReloadEvent] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.history = deque(self.history, maxlen=self.history_size)
        self.env = specs_from_env(self.recording_kfl)

    def start(self, now: float, file_text: str | None) -> ReloadEvent:
        """Initial load. A malformed file at startup loads the other sources and says so."""
        if file_text is not None:
            try:
                self.file = parse_rules_yaml(file_text)
            except RulesError as exc:
                return self._swap(now, "startup", extra_problem=str(exc))
        return self._swap(now, "startup")

    def reload_file(self, now: float, file_text: str | None) -> ReloadEvent:
        """The rules file changed (``None``: it was deleted, so its rules are gone)."""
        try:
            specs = parse_rules_yaml(file_text) if file_text is not None else {}
        except RulesError as exc:
            return self._reject(now, "rules file", str(exc))
        self.file = specs
        return self._swap(now, "rules file")

    def apply_control(self, now: float, document: Any) -> ReloadEvent:
        """A rule set published on the control topic replaces the previous control rules."""
        try:
            specs = parse_rules_document(document, "control message")
        except RulesError as exc:
            return self._reject(now, "control topic", str(exc))
        self.control = specs
        return self._swap(now, "control topic")

    def _reject(self, now: float, source: str, reason: str) -> ReloadEvent:
        event = ReloadEvent(
            at=now,
            source=source,
            ok=False,
            fingerprint=self.current.fingerprint,
            rules=tuple(sorted(self.current.rules)),
            problems=(reason + "; previous rules kept",),
        )
        self.history.append(event)
        return event

    def _swap(self, now: float, source: str, extra_problem: str | None = None) -> ReloadEvent:
        specs = merge_specs(self.env, self.file, self.control)
        new = build_ruleset(specs, previous=self.current, compiler=self.compiler)
        problems = tuple(str(p) for p in new.problems)
        if extra_problem:
            problems = (extra_problem, *problems)
        self.current = new  # the one assignment the agent can observe
        event = ReloadEvent(
            at=now,
            source=source,
            ok=not problems,
            fingerprint=new.fingerprint,
            rules=tuple(sorted(new.rules)),
            problems=problems,
            warnings=tuple(
                f"rule {name!r}: {warning}"
                for name, rule in sorted(new.rules.items())
                for warning in rule.warnings
            ),
        )
        self.history.append(event)
        return event

    def specs(self) -> Mapping[str, RuleSpec]:
        return merge_specs(self.env, self.file, self.control)


@dataclass
class FileWatcher:
    """Polls one file; ``poll()`` returns ``(changed, text_or_None)``."""

    path: Path
    read: Callable[[Path], bytes] = field(default=lambda p: p.read_bytes())
    _stamp: tuple[int, int] | None = None
    _digest: str | None = None
    _seen: bool = False

    def poll(self) -> tuple[bool, str | None]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            changed = self._seen and self._digest is not None
            self._stamp, self._digest, self._seen = None, None, True
            return changed, None
        stamp = (st.st_mtime_ns, st.st_size)
        if self._seen and stamp == self._stamp:
            return False, None
        try:
            data = self.read(self.path)
        except FileNotFoundError:
            return self.poll()
        digest = hashlib.sha256(data).hexdigest()
        changed = not self._seen or digest != self._digest
        self._stamp, self._digest, self._seen = stamp, digest, True
        return changed, data.decode("utf-8", errors="replace")

    def read_now(self) -> str | None:
        """Read the file for the initial load and remember its state."""
        _, text = self.poll()
        return text
