"""The `.rasp` language: parse, check, print, evaluate, and bridge to tracr.

Public names are imported on first use, so `import dsl` stays cheap (the tracr
bridge pulls in jax) and each submodule can be used on its own.
"""

import importlib

from dsl.ast import CATEGORICAL, NUMERICAL, Encoding, Program
from dsl.errors import DSLError, EvaluationError, ParseError, TypeCheckError

_LAZY = {
    "evaluate": "dsl.interpreter",
    "parse": "dsl.parser",
    "to_source": "dsl.printer",
    "to_python": "dsl.python_emitter",
    "from_tracr": "dsl.tracr_bridge",
    "to_tracr": "dsl.tracr_bridge",
    "infer": "dsl.types",
}

__all__ = [
    "CATEGORICAL",
    "NUMERICAL",
    "DSLError",
    "Encoding",
    "EvaluationError",
    "ParseError",
    "Program",
    "TypeCheckError",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dsl' has no attribute {name!r}")
