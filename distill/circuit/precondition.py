"""The domain on which a distilled program claims equality with its model.

A compiled categorical aggregate that selects several *different* values
averages their encodings and computes on with a mixture: the network is then
outside what any program of the language describes (and its source program
is undefined there, or means something else). The distilled program claims
equality on inputs where every categorical aggregate selects at most one
distinct value, and the report also states agreement on the whole domain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dsl import ast
from dsl.interpreter import evaluate_arrays

PRECONDITION = "every categorical aggregate selects at most one distinct value"


def precondition_holds(program: ast.Program, inputs: Sequence[Sequence]) -> list[bool]:
    """Per input: does every named categorical aggregate of `program` select <= 1 distinct value?

    Where `program` is undefined (a table without the entry an input needs) the
    answer is True: such inputs stay in the claimed domain and get checked.
    """
    aggregates = [
        d
        for d in program.definitions
        if isinstance(d.node, ast.Aggregate) and d.node.encoding == ast.CATEGORICAL
    ]
    if not aggregates:  # nothing to evaluate: it holds everywhere
        return [True] * len(inputs)
    evaluation = evaluate_arrays(program, inputs)
    holds = np.ones(len(inputs), dtype=bool)
    undefined = np.zeros(len(inputs), dtype=bool)
    undefined[list(evaluation.output.failures)] = True
    for definition in aggregates:
        node = definition.node
        if not isinstance(node.selector, ast.Name):
            raise ValueError(f"{definition.name}: the precondition needs a named selector")
        matrix = evaluation.definitions[node.selector.id].matrix  # [batch, query, key]
        codes = _codes(evaluation, node.sop)[:, None, :]  # [batch, 1, key]
        lowest = np.where(matrix, codes, np.iinfo(np.int64).max).min(axis=2)
        highest = np.where(matrix, codes, -1).max(axis=2)
        several = matrix.any(axis=2) & (lowest != highest)
        holds &= ~several.any(axis=1)
    return (holds | undefined).tolist()


def _codes(evaluation, node: ast.Node) -> np.ndarray:
    """[batch, pos] integer codes of an aggregated SOp (equal codes, equal values)."""
    if isinstance(node, ast.Name):
        return evaluation.definitions[node.id].codes
    width = evaluation.mask.shape[1]
    if isinstance(node, ast.Indices):
        return np.broadcast_to(np.arange(width), evaluation.mask.shape)
    if isinstance(node, ast.Tokens):
        code_of: dict = {}
        codes = np.zeros(evaluation.mask.shape, dtype=np.int64)
        for b, tokens in enumerate(evaluation.inputs):
            codes[b, : len(tokens)] = [code_of.setdefault(t, len(code_of)) for t in tokens]
        return codes
    raise ValueError(f"the precondition needs a named or primitive SOp, got {type(node).__name__}")


def restricts(program: ast.Program) -> bool:
    """Whether `precondition_holds` can be False on some input: only a categorical aggregate can."""
    return any(
        isinstance(d.node, ast.Aggregate) and d.node.encoding == ast.CATEGORICAL
        for d in program.definitions
    )
