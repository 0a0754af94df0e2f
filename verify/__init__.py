"""Checking programs: against a model on concrete inputs, against another program with Z3.

`check` compares a program with any callable oracle (exhaustive or sampled);
`equivalent` proves two programs equal for every input up to a length. Both
return a `Verdict`. `equivalent` is imported on first use, so `import verify`
does not load Z3.
"""

import importlib

# Imported eagerly: the function `check` shares its name with its module, and a
# lazy import would leave `verify.check` naming the module.
from verify.check import check
from verify.verdict import Counterexample, Verdict

_LAZY = {
    "equivalent": "verify.equivalence",
    "SINGLE_VALUED_AGGREGATES": "verify.equivalence",
}

__all__ = ["SINGLE_VALUED_AGGREGATES", "Counterexample", "Verdict", "check", "equivalent"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'verify' has no attribute {name!r}")
