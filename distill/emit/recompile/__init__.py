"""Model -> program -> model: a distilled program lowered to what tracr compiles, compiled, and
compared with the model it was read from."""

from distill.emit.recompile.closed_loop import closed_loop_disagreements, disagreements
from distill.emit.recompile.lowering import lower_for_tracr
from distill.emit.recompile.tracr_compile import compile_program, recompile
from distill.emit.recompile.value_sets import value_sets

__all__ = [
    "closed_loop_disagreements",
    "compile_program",
    "disagreements",
    "lower_for_tracr",
    "recompile",
    "value_sets",
]
