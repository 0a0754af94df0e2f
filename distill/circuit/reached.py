"""The table entries that inputs reach: what synthesis must match, the rest is free.

The table program is complete: every combination of the values a component
reads has an entry, read off the network, reachable by some input or not.
Synthesis is asked to match only the entries that sample inputs reach, so that
`length - indices - 1` can fit a table whose unreachable corners (an index past
the length) hold whatever the network computes there. The proof that the
readable program equals the complete table program on every input then decides;
an input it finds that tells them apart joins the samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from dsl import ast
from dsl.interpreter import Evaluation, evaluate_arrays


def restrict_to_reached(program: ast.Program, inputs: Sequence[Sequence]) -> ast.Program:
    """`program` with each table keeping only the entries that `inputs` reach."""
    evaluation = evaluate_arrays(program, inputs)

    def restrict(node):
        if isinstance(node, ast.Map) and isinstance(node.fn, ast.Table):
            keys = _values(evaluation, node.arg)[evaluation.mask]
            return dataclasses.replace(node, fn=_keep(node.fn, set(keys.tolist())))
        if isinstance(node, ast.SequenceMap) and isinstance(node.fn, ast.Table):
            mask = evaluation.mask
            left = _values(evaluation, node.left)[mask].tolist()
            right = _values(evaluation, node.right)[mask].tolist()
            return dataclasses.replace(node, fn=_keep(node.fn, set(zip(left, right))))
        if isinstance(node, ast.Select) and isinstance(node.predicate, ast.Table):
            keys = _values(evaluation, node.keys)  # [batch, pos]
            queries = _values(evaluation, node.queries)
            pairs = evaluation.mask[:, :, None] & evaluation.mask[:, None, :]  # [batch, q, k]
            batch, query, key = np.nonzero(pairs)
            seen = set(zip(keys[batch, key].tolist(), queries[batch, query].tolist()))
            return dataclasses.replace(node, predicate=_keep(node.predicate, seen))
        return node

    return ast.rewrite_program(program, restrict)


def _values(evaluation: Evaluation, node: ast.Node) -> np.ndarray:
    """[batch, pos] object array of an SOp's values."""
    if isinstance(node, ast.Name):
        return evaluation.definitions[node.id].values()
    shape = evaluation.mask.shape
    values = np.empty(shape, dtype=object)
    if isinstance(node, ast.Indices):
        for b in range(shape[0]):
            values[b, :] = list(range(shape[1]))
        return values
    if isinstance(node, ast.Tokens):
        for b, tokens in enumerate(evaluation.inputs):
            values[b, : len(tokens)] = list(tokens)
        return values
    raise ValueError(f"a table reads {type(node).__name__}; expected a name, tokens or indices")


def _keep(table: ast.Table, reached: set) -> ast.Table:
    # Keys compare as a table looks values up: by equality (0 and 0.0 are one key).
    return ast.Table(tuple((k, v) for k, v in table.entries if k in reached))
