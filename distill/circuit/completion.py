"""Completing the tables of a distilled program over its value sets.

Tables read off a network hold only the input combinations the traces saw;
the others are don't-cares. A written program must type-check (`dsl.infer`
rejects a table without an entry for a value its input can take), so the
missing entries get a value: False for a selector, the table's most common
output for a map. The completed program is what gets verified against the
model, so a wrong guess on a reachable input is caught there, never hidden.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter

import dsl
from dsl import ast
from dsl.errors import TypeCheckError
from dsl.types import _Inference  # the inference without its final raise: value sets so far

MAX_PASSES = 50


def complete_tables(program: ast.Program, vocab, max_seq_len: int) -> ast.Program:
    """`program` with every table total over the value sets of its inputs."""
    for _ in range(MAX_PASSES):
        inference = _Inference(program, frozenset(vocab), max_seq_len)
        try:
            inference.run()
            return program
        except TypeCheckError:
            pass
        completed = _complete_once(program, inference.nodes)
        if completed == program:
            return program  # other problems: let the caller's type check report them
        program = completed
    return program


def type_checks(program: ast.Program, vocab, max_seq_len: int) -> bool:
    """Whether `program` type-checks over the domain (every table total, no function failing)."""
    try:
        dsl.infer(program, vocab, max_seq_len)
    except TypeCheckError:
        return False
    return True


def _complete_once(program: ast.Program, infos: dict) -> ast.Program:
    def value_set(node):
        info = infos.get(node)
        return None if info is None else info.value_set

    def complete(node):
        if isinstance(node, ast.Map) and isinstance(node.fn, ast.Table):
            keys = value_set(node.arg)
            if keys is not None:
                return dataclasses.replace(node, fn=_filled(node.fn, keys, None))
        elif isinstance(node, ast.SequenceMap) and isinstance(node.fn, ast.Table):
            left, right = value_set(node.left), value_set(node.right)
            if left is not None and right is not None:
                pairs = itertools.product(left, right)
                return dataclasses.replace(node, fn=_filled(node.fn, pairs, None))
        elif isinstance(node, ast.Select) and isinstance(node.predicate, ast.Table):
            keys, queries = value_set(node.keys), value_set(node.queries)
            if keys is not None and queries is not None:
                pairs = itertools.product(keys, queries)
                return dataclasses.replace(node, predicate=_filled(node.predicate, pairs, False))
        return node

    return ast.rewrite_program(program, complete)


def _filled(table: ast.Table, keys, fill) -> ast.Table:
    entries = dict(table.entries)
    if fill is None:
        fill = Counter(map(_hashable, entries.values())).most_common(1)[0][0][1] if entries else 0
    missing = [
        k
        for k in keys
        if k not in entries and not any(a is None for a in (k if isinstance(k, tuple) else (k,)))
    ]
    if not missing:
        return table
    return ast.Table(tuple(entries.items()) + tuple((k, fill) for k in missing))


def _hashable(value):
    return (type(value).__name__, repr(value)), value
