"""KFL, the filter language of recording rules, replays and the dashboard.

``compile(text)`` parses with lark once and returns a ``Query`` made of plain closures;
``compile_many({name: text})`` evaluates a whole rule set per entry with shared work.
"""

from pipeline.kfl.errors import KFLError
from pipeline.kfl.many import RuleSet, compile_many
from pipeline.kfl.query import Query, compile

__all__ = ["KFLError", "Query", "RuleSet", "compile", "compile_many"]
