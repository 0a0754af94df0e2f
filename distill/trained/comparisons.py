"""Two-valued tables of two numbers that are a comparison: `a if x < y else b`.

A trained model's read-out is often which of two counts is larger (binary majority:
more 1s than 0s), a closed form one node past synthesis's default search for two
inputs; checking the six comparisons directly costs one pass over the table.
"""

from __future__ import annotations

import dataclasses
import operator

import dsl
from dsl import ast

_COMPARISONS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def comparison_of(table: ast.Table) -> ast.Lambda | None:
    """`lambda x, y: a if x OP y else b` equal to `table` on every entry, or None."""
    text = comparison_text(table.entries)
    if text is None:
        return None
    program = dsl.parse(f"f = sequence_map({text}, tokens, tokens)\nreturn f\n")
    return program.definitions[0].node.fn


def comparison_text(entries) -> str | None:
    """The comparison's lambda, as text, equal to the ((x, y), value) `entries`, or None."""
    entries = list(entries)
    outputs = list(dict.fromkeys((type(v), v) for _, v in entries))
    numbers = all(isinstance(k, tuple) and all(type(p) is int for p in k) for k, _ in entries)
    if len(outputs) != 2 or not numbers:
        return None
    (_, a), (_, b) = outputs
    for op, compare in _COMPARISONS.items():
        for then, other in ((a, b), (b, a)):
            if all(
                (then if compare(x, y) else other) == v
                and type(v) is type(then if compare(x, y) else other)
                for (x, y), v in entries
            ):
                return f"lambda x, y: {_literal(then)} if x {op} y else {_literal(other)}"
    return None


def comparisons_named(program: ast.Program) -> ast.Program:
    """`program` with each two-valued sequence-map table that is a comparison written as one."""

    def rewrite(node):
        if isinstance(node, ast.SequenceMap) and isinstance(node.fn, ast.Table):
            fn = comparison_of(node.fn)
            if fn is not None:
                return dataclasses.replace(node, fn=fn)
        return node

    return ast.rewrite_program(program, rewrite)


def _literal(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)
