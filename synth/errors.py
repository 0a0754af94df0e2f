"""Errors of `synth`: one root type, and what applying a DSL function may raise."""

from dsl.errors import DSLError


class SynthError(Exception):
    """Root of every error raised by `synth` (a program outside what a step accepts)."""


# Applying a function of the language to a value it does not accept raises one
# of these (a type mismatch, a division by zero, a missing table entry); the
# program is then undefined there, as tracr's evaluator is.
FUNCTION_ERRORS = (ArithmeticError, TypeError, ValueError, LookupError, DSLError)
