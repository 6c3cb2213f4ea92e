"""Recording rules: where they come from, how they are compiled, and what a reload keeps.

A rule set is built from up to three sources, merged by rule name (a later source wins):
``RECORDING_KFL`` (one rule, named ``recording``), the rules file (YAML, named rules with the
sink's per-rule settings) and the latest rule set published on the control topic (so a fleet of
workers changes together). Each query is compiled once, here; the agent only calls the compiled
predicate. Nothing in this module touches Kafka, the clock, the environment or the file system:
callers pass text in, so reload logic is unit tested without a worker.

Failure policy, which the issue asks for and operators rely on:

* a rule whose KFL does not compile is reported (name, line, column, caret) and not loaded; the
  other rules run;
* on a reload, a rule that fails to compile keeps its previous compiled version if it had one,
  so a typo in a live edit never silently stops recording;
* a file that is not valid YAML, or not shaped like a rules file, is rejected whole
  (``RulesError``) and the caller keeps the previous set;
* no rules at all (unset ``RECORDING_KFL``, an empty file, an empty control message) means
  recording is off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamtap.schema import RuleSettings

__all__ = [
    "LIMIT_IGNORED",
    "RECORDING_RULE",
    "CompiledQuery",
    "Compiler",
    "Rule",
    "RuleProblem",
    "RuleSet",
    "RuleSpec",
    "RulesError",
    "build_ruleset",
    "merge_specs",
    "parse_rules_document",
    "parse_rules_yaml",
    "specs_from_env",
]

#: The name ``RECORDING_KFL`` is loaded under (Kubeshark had one unnamed rule).
RECORDING_RULE = "recording"

#: Why a recording rule's ``limit(n)`` is not applied. KFL's limit asks a consumer that reads a
#: finite stream to stop after n matches (replay queries, ``kfl eval``). A recording rule runs
#: without end, on several workers, and replays batches after a crash: a count kept per worker
#: would reset on restart, differ between workers and publish different streams on a replay,
#: breaking the byte-identical replay the sinks deduplicate on. The rule loads and records every
#: match; the warning says so (``pipeline --check``, the reload log line, ``/stats``).
LIMIT_IGNORED = (
    "limit() is ignored in recording rules (a recorder does not stop; a per-worker count would "
    "make restarts and replays publish different streams): every match is recorded"
)

Entry = dict[str, Any]


class RulesError(ValueError):
    """A rules document that cannot be used at all (bad YAML, wrong shape)."""


class CompiledQuery(Protocol):
    """What ``pipeline.kfl.compile`` returns."""

    warnings: Any
    limit: int | None

    def __call__(self, entry: Entry) -> bool: ...

    def redact(self, entry: Entry) -> Entry: ...


class Compiler(Protocol):
    """The KFL entry points a rule set needs; injected so tests and callers choose."""

    def compile(self, query: str) -> CompiledQuery: ...

    def compile_many(self, queries: Mapping[str, str]) -> Callable[[Entry], Iterable[str]]: ...

    error: type[Exception]


class _KFL:
    """The real compiler, imported on first use so this module loads without it."""

    @property
    def _mod(self) -> Any:
        import pipeline.kfl as kfl

        return kfl

    def compile(self, query: str) -> CompiledQuery:
        return self._mod.compile(query)

    def compile_many(self, queries: Mapping[str, str]) -> Callable[[Entry], Iterable[str]]:
        return self._mod.compile_many(dict(queries))

    @property
    def error(self) -> type[Exception]:
        return self._mod.KFLError


KFL: Compiler = _KFL()  # type: ignore[assignment]


class RuleSpec(BaseModel):
    """One rule as written by an operator (file, env or control message)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kfl: str
    retention_days: int | None = Field(default=None, ge=1)
    lock_mode: str | None = None
    legal_hold: bool = False
    prefix: str = ""

    def settings(self) -> RuleSettings:
        return RuleSettings(
            retention_days=self.retention_days,
            lock_mode=self.lock_mode,  # type: ignore[arg-type]  # validated by RuleSettings
            legal_hold=self.legal_hold,
            prefix=self.prefix,
        )


@dataclass(frozen=True)
class RuleProblem:
    """Why one rule was not (re)loaded; ``message`` is the compiler's text with its caret."""

    rule: str
    message: str
    line: int | None = None
    column: int | None = None
    kept_previous: bool = False

    def __str__(self) -> str:
        where = ""
        if self.line is not None and not self.message.startswith("line "):
            where = f" (line {self.line}, column {self.column})"
        kept = "; previous version kept" if self.kept_previous else "; not loaded"
        return f"rule {self.rule!r}{where}: {self.message}{kept}"


@dataclass(frozen=True)
class Rule:
    """A compiled rule: its spec (for the sink's settings and for reload diffs) and predicate."""

    name: str
    spec: RuleSpec
    query: CompiledQuery
    settings: RuleSettings
    #: false when the query has no ``redact()``: then entries are not copied for it
    redacts: bool = True

    @property
    def warnings(self) -> tuple[str, ...]:
        found = tuple(str(w) for w in (self.query.warnings or ()))
        if getattr(self.query, "limit", None) is not None:
            found += (LIMIT_IGNORED,)
        return found


@dataclass(frozen=True)
class RuleSet:
    """An immutable, compiled set of rules; swapping one reference swaps every rule at once."""

    rules: Mapping[str, Rule] = field(default_factory=dict)
    problems: tuple[RuleProblem, ...] = ()
    _matcher: Callable[[Entry], Iterable[str]] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.rules)

    @property
    def fingerprint(self) -> str:
        """Identifies the loaded rules (reload history, /stats, control messages)."""
        doc = {name: rule.spec.model_dump() for name, rule in sorted(self.rules.items())}
        return hashlib.blake2b(orjson.dumps(doc), digest_size=6).hexdigest()

    def match(self, entry: Entry) -> frozenset[str]:
        """Names of the rules this entry satisfies; never raises (KFL predicates never do)."""
        if self._matcher is not None:
            return frozenset(self._matcher(entry))
        return frozenset(name for name, rule in self.rules.items() if rule.query(entry))

    def redact(self, entry: Entry, names: Iterable[str]) -> Entry:
        """Apply the redactions of every named rule, so no rule's secret leaks via another."""
        for name in sorted(names):
            rule = self.rules.get(name)
            if rule is not None and rule.redacts:
                redacted = rule.query.redact(entry)
                if redacted is not None:
                    entry = redacted
        return entry

    def describe(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "rules": {name: rule.spec.kfl for name, rule in sorted(self.rules.items())},
            "problems": [str(p) for p in self.problems],
        }


def specs_from_env(recording_kfl: str) -> dict[str, RuleSpec]:
    """Kubeshark semantics: a blank ``RECORDING_KFL`` means no rule, i.e. recording off."""
    if not recording_kfl.strip():
        return {}
    return {RECORDING_RULE: RuleSpec(kfl=recording_kfl)}


def parse_rules_document(doc: Any, source: str = "rules") -> dict[str, RuleSpec]:
    """Validate a decoded rules document: ``{"rules": {name: {kfl: ..., ...}}}``.

    A rule may also be given as a bare string (its KFL). ``None``/empty means no rules.
    """
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise RulesError(f"{source}: expected a mapping with a 'rules' key")
    unknown = set(doc) - {"rules"}
    if unknown:
        raise RulesError(f"{source}: unknown top-level key(s) {sorted(unknown)}; expected 'rules'")
    rules = doc.get("rules") or {}
    if not isinstance(rules, dict):
        raise RulesError(f"{source}: 'rules' must map rule names to rules")
    specs: dict[str, RuleSpec] = {}
    for name, body in rules.items():
        if not isinstance(name, str) or not name.strip():
            raise RulesError(f"{source}: rule names must be non-empty strings, got {name!r}")
        if isinstance(body, str):
            body = {"kfl": body}
        if not isinstance(body, dict):
            raise RulesError(f"{source}: rule {name!r} must be a mapping with a 'kfl' key")
        try:
            spec = RuleSpec.model_validate(body)
            spec.settings()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'rule'}: {e['msg']}" for e in exc.errors()
            )
            raise RulesError(f"{source}: rule {name!r}: {problems}") from None
        specs[name] = spec
    return specs


def parse_rules_yaml(text: str, source: str = "rules file") -> dict[str, RuleSpec]:
    """Parse a rules file; raises ``RulesError`` (caller keeps its previous rules)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{source} is not valid YAML: {exc}") from None
    return parse_rules_document(doc, source)


def merge_specs(*sources: Mapping[str, RuleSpec]) -> dict[str, RuleSpec]:
    """Later sources override earlier ones rule by rule (env, then file, then control)."""
    merged: dict[str, RuleSpec] = {}
    for source in sources:
        merged.update(source)
    return merged


def build_ruleset(
    specs: Mapping[str, RuleSpec],
    previous: RuleSet | None = None,
    compiler: Compiler = KFL,
) -> RuleSet:
    """Compile every rule; report the broken ones; keep a broken rule's previous version.

    Rules with a blank query are skipped: an emptied rule turns that rule off.
    """
    rules: dict[str, Rule] = {}
    problems: list[RuleProblem] = []
    for name, spec in sorted(specs.items()):
        if not spec.kfl.strip():
            continue
        old = previous.rules.get(name) if previous is not None else None
        if old is not None and old.spec == spec:
            rules[name] = old  # unchanged: no recompile, same predicate object
            continue
        try:
            query = compiler.compile(spec.kfl)
        except compiler.error as exc:
            kept = old is not None
            problems.append(
                RuleProblem(
                    rule=name,
                    message=str(exc),
                    line=getattr(exc, "line", None),
                    column=getattr(exc, "column", None),
                    kept_previous=kept,
                )
            )
            if old is not None:
                rules[name] = old
            continue
        rules[name] = Rule(
            name=name,
            spec=spec,
            query=query,
            settings=spec.settings(),
            redacts=bool(getattr(query, "redactions", True)),
        )
    matcher = None
    if len(rules) > 1:
        try:
            matcher = compiler.compile_many({name: r.spec.kfl for name, r in rules.items()})
        except compiler.error:
            matcher = None  # each rule compiled alone above; evaluate them one by one
    return RuleSet(rules=rules, problems=tuple(problems), _matcher=matcher)
