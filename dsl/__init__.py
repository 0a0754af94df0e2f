"""The `.rasp` language: parse, check, print, evaluate, and bridge to tracr."""

from dsl.ast import CATEGORICAL, NUMERICAL, Encoding, Program
from dsl.errors import DSLError, EvaluationError, ParseError, TypeCheckError
from dsl.interpreter import evaluate
from dsl.parser import parse
from dsl.printer import to_source
from dsl.python_emitter import to_python
from dsl.tracr_bridge import from_tracr, to_tracr
from dsl.types import infer

__all__ = [
    "CATEGORICAL",
    "NUMERICAL",
    "DSLError",
    "Encoding",
    "EvaluationError",
    "ParseError",
    "Program",
    "TypeCheckError",
    "evaluate",
    "from_tracr",
    "infer",
    "parse",
    "to_python",
    "to_source",
    "to_tracr",
]
