"""Read-out tables with a form found without a search: a comparison of two numbers
(`a if x < y else b`), a fallback between two aggregates, or the label of the largest of
three or more (ties to a fixed order).

A trained model's read-out is often which of two counts is larger (binary majority:
more 1s than 0s), a closed form one node past synthesis's default search for two
inputs; checking the six comparisons directly costs one pass over the table. With three
or more counts (majority) the table grows with every count reached, and no search over
expressions of three variables is cheap; the argmax is checked against every entry.
"""

from __future__ import annotations

import dataclasses
import operator

import numpy as np

import dsl
from distill.circuit.discovery import DEFAULT_LABEL
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
    return None if text is None else _lambda(text)


def _fallback_of(table: ast.Table) -> ast.Lambda | None:
    text = fallback_text(table.entries)
    return None if text is None else _lambda(text)


def _residue_of(table: ast.Table) -> ast.Lambda | None:
    text = residue_text(table.entries)
    return None if text is None else _lambda(text)


def _lambda(text: str) -> ast.Lambda:
    program = dsl.parse(f"f = sequence_map({text}, tokens, tokens)\nreturn f\n")
    return program.definitions[0].node.fn


def comparison_text(entries) -> str | None:
    """The comparison's lambda, as text, equal to the ((x, y), value) `entries`, or None."""
    entries = list(entries)
    outputs = _two_values_over_ints(entries)
    if outputs is None:
        return None
    (_, a), (_, b) = outputs
    for op, compare in _COMPARISONS.items():
        for then, other in ((a, b), (b, a)):
            if all(
                (then if compare(x, y) else other) == v
                and type(v) is type(then if compare(x, y) else other)
                for (x, y), v in entries
            ):
                return f"lambda x, y: {literal(then)} if x {op} y else {literal(other)}"
    return None


def _two_values_over_ints(entries: list) -> list | None:
    """The two (type, value) outputs of ((x, y), value) `entries` over pairs of ints, or
    None: what a two-way condition on two numbers can be written for."""
    outputs = list(dict.fromkeys((type(v), v) for _, v in entries))
    numbers = all(
        isinstance(k, tuple) and len(k) == 2 and all(type(p) is int for p in k) for k, _ in entries
    )
    return outputs if len(outputs) == 2 and numbers else None


def residue_text(entries) -> str | None:
    """`lambda x, y: a if x % m == r and y % n == s else b`, or `a if (x + y) % m == r
    else b` (also x - y), equal to the ((x, y), value) `entries` of two int variables and
    two values, with moduli up to MAX_MODULUS; None where none is. A parity read-out
    (tomita5: an even number of each token) is a table that grows with every count
    reached; as a residue it holds for any."""
    entries = list(entries)
    outputs = _two_values_over_ints(entries)
    if outputs is None:
        return None
    for then, other in (outputs, outputs[::-1]):
        chosen = {k for k, v in entries if (type(v), v) == then}
        text = _residue_condition(chosen, [k for k, _ in entries])
        if text is not None:
            return f"lambda x, y: {literal(then[1])} if {text} else {literal(other[1])}"
    return None


MAX_MODULUS = 4


def _residue_condition(chosen: set, keys: list) -> str | None:
    """A condition on (x, y) true exactly at the `chosen` keys among `keys`: one residue
    of each variable (a modulus of 1 leaves it out), else one residue of their sum or
    difference; the smallest moduli first."""
    moduli = range(1, MAX_MODULUS + 1)
    for m, n in sorted(((m, n) for m in moduli for n in moduli if m * n > 1), key=sum):
        residues = {(x % m, y % n) for x, y in chosen}
        if len(residues) == 1 and all(
            ((x % m, y % n) in residues) == ((x, y) in chosen) for x, y in keys
        ):
            ((r, q),) = residues
            parts = [f"x % {m} == {r}"] * (m > 1) + [f"y % {n} == {q}"] * (n > 1)
            return " and ".join(parts)
    for m in moduli[1:]:
        for sign, combine in (("+", lambda x, y: x + y), ("-", lambda x, y: x - y)):
            residues = {combine(x, y) % m for x, y in chosen}
            if len(residues) == 1 and all(
                (combine(x, y) % m in residues) == ((x, y) in chosen) for x, y in keys
            ):
                return f"(x {sign} y) % {m} == {residues.pop()}"
    return None


def fallback_text(entries) -> str | None:
    """`lambda x, y: y if x == DEFAULT else x` (or with x and y swapped) equal to the
    ((x, y), value) `entries`, or None: one aggregate's value where it selects a key,
    another's where it selects none (what tracr's default is for)."""
    entries = list(entries)
    if not all(isinstance(k, tuple) and len(k) == 2 for k, _ in entries):
        return None
    for first, second, text in ((0, 1, "y if x == {d} else x"), (1, 0, "x if y == {d} else y")):
        defaults = [k for k, _ in entries if k[first] == DEFAULT_LABEL]
        if defaults and all(
            v == (k[second] if k[first] == DEFAULT_LABEL else k[first]) and v != DEFAULT_LABEL
            for k, v in entries
        ):
            return "lambda x, y: " + text.format(d=literal(DEFAULT_LABEL))
    return None


def comparisons_named(program: ast.Program) -> ast.Program:
    """`program` with each sequence-map table that is a comparison, a fallback between
    two aggregates, or a residue (parity), written as one."""

    def rewrite(node):
        if isinstance(node, ast.SequenceMap) and isinstance(node.fn, ast.Table):
            fn = comparison_of(node.fn) or _fallback_of(node.fn) or _residue_of(node.fn)
            if fn is not None:
                return dataclasses.replace(node, fn=fn)
        return node

    return ast.rewrite_program(program, rewrite)


def literal(value) -> str:
    """`value` as the language writes it (a number, a boolean, None, else a string)."""
    if value is None:
        return "None"
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, float):
        return repr(float(value))  # numpy's own repr names its type
    return repr(str(value))


def argmax_lines(target: str, names: list[str], table: dict) -> list[str] | None:
    """Definitions of `target` as "the label of the largest of `names`, ties to a fixed
    order", when `table` ((values of names) -> label) is exactly that, else None.

    A majority read-out over counts is this (the most frequent token): as a table it
    grows with every count the inputs reach; as a closed form it holds for any count.
    Each variable gets a score, value * k + its rank (k variables; the rank breaks ties),
    the largest score wins, and its rank names the label."""
    k = len(names)
    entries = list(table.items())
    labels = list(dict.fromkeys(v for _, v in entries))
    if k < 3 or len(labels) != k:  # two: a comparison reads better
        return None
    if not all(len(key) == k and all(type(x) is int for x in key) for key, _ in entries):
        return None
    label_of = _labels_of_variables(entries, k)
    if label_of is None or sorted(map(repr, label_of)) != sorted(map(repr, labels)):
        return None
    rank = _tie_ranks(entries, label_of)
    return None if rank is None else _argmax_definitions(target, names, label_of, rank)


def _tie_ranks(entries, label_of: list) -> dict | None:
    """A rank per variable (the higher wins a tie) under which every entry's label is
    its largest variable's, or None: each entry's label must be among its largest, and
    beats the others there; the ranks are an order of those wins (none may go round)."""
    k = len(label_of)
    variable_of = {repr(label): i for i, label in enumerate(label_of)}
    beats: dict[int, set] = {i: set() for i in range(k)}
    for key, value in entries:
        top = max(key)
        tied = [i for i in range(k) if key[i] == top]
        winner = variable_of.get(repr(value))
        if winner not in tied:
            return None
        beats[winner].update(i for i in tied if i != winner)
    order, placed = [], set()
    while len(order) < k:  # winners first: a variable no unplaced one beats
        free = [
            i
            for i in range(k)
            if i not in placed and not any(i in beats[j] for j in range(k) if j not in placed)
        ]
        if not free:
            return None  # a cycle: no order breaks these ties
        order.append(free[0])
        placed.add(free[0])
    return {variable: k - 1 - place for place, variable in enumerate(order)}


def _labels_of_variables(entries, k: int) -> list | None:
    """The label each variable stands for, read off the entries where it alone is the
    largest; None if a variable never is, or stands for two labels."""
    found: dict[int, object] = {}
    for key, value in entries:
        top = max(key)
        if key.count(top) == 1:
            i = key.index(top)
            if found.setdefault(i, value) != value:
                return None
    return [found[i] for i in range(k)] if len(found) == k else None


def _argmax_definitions(target: str, names: list[str], label_of: list, rank: dict) -> list[str]:
    k = len(names)
    lines = [
        f"{target}_score_{i} = map(lambda x: x * {k} + {rank[i]}, {name})"
        for i, name in enumerate(names)
    ]
    best = f"{target}_score_0"
    for i in range(1, k):
        lines.append(
            f"{target}_best_{i} = sequence_map(lambda x, y: max(x, y), {best}, {target}_score_{i})"
        )
        best = f"{target}_best_{i}"
    by_rank = sorted(range(k), key=lambda i: rank[i])
    choice = literal(label_of[by_rank[0]])
    for i in by_rank[1:]:
        otherwise = choice if " if " not in choice else f"({choice})"
        choice = f"{literal(label_of[i])} if s % {k} == {rank[i]} else {otherwise}"
    lines.append(f"{target} = map(lambda s: {choice}, {best})")
    return lines
