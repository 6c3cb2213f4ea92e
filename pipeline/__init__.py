"""The pipeline: recording rules (KFL) applied to every stream record, matched streams out.

The pure part (``rules``, ``matcher``) is importable without Faust; the worker (``app``,
``agents``, ``consumer``, ``cli``) loads Faust only when a worker or ``watch`` runs.
"""

from pipeline.matcher import (
    Decision,
    Publish,
    SourcePos,
    StreamMemory,
    decide,
    earlier_message,
    earlier_publish,
    evaluate,
)
from pipeline.rules import (
    RECORDING_RULE,
    Rule,
    RuleProblem,
    RulesError,
    RuleSet,
    RuleSpec,
    build_ruleset,
    merge_specs,
    parse_rules_document,
    parse_rules_yaml,
    specs_from_env,
)

__all__ = [
    "RECORDING_RULE",
    "Decision",
    "Publish",
    "Rule",
    "RuleProblem",
    "RuleSet",
    "RuleSpec",
    "RulesError",
    "SourcePos",
    "StreamMemory",
    "build_ruleset",
    "decide",
    "earlier_message",
    "earlier_publish",
    "evaluate",
    "merge_specs",
    "parse_rules_document",
    "parse_rules_yaml",
    "specs_from_env",
]
