"""Synthesis: from a table program read off a network to the simplest readable program.

    result = synth.readable(table_program, vocab=..., max_seq_len=..., free=names)
    result.program, result.relabelings, result.named_selectors

`tabulate` lowers any program to table form and `scramble` hides the values of
categorical definitions (what a distiller sees); together they make test
inputs with known answers. Imported on first use.
"""

import importlib

_LAZY = {
    "readable": "synth.pipeline",
    "SynthResult": "synth.pipeline",
    "Budget": "synth.budget",
    "tabulate": "synth.to_tables",
    "scramble": "synth.opaque",
    "scrambleable": "synth.opaque",
    "operation_count": "synth.metrics",
    "named_selector_scores": "synth.metrics",
    "SynthError": "synth.errors",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synth' has no attribute {name!r}")
