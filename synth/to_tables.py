"""Lowering a program to table form: every function a table over the values it can meet.

The table program is what a distiller reads off a network, so tabulating a
known program gives synthesis a test input with a known answer, and gives the
distiller a reference. A function's table lists its value on every value (or
pair of values) its arguments can take (`value_sets`); where the function
raises, the entry is left out, so the table program is undefined exactly
where the source is.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping

from dsl import ast
from dsl.functions import make_callable
from dsl.means import aggregate_means
from synth.errors import FUNCTION_ERRORS
from synth.graph import LEAVES, flatten, inline_single_uses


def tabulate(program: ast.Program, *, vocab: Iterable, max_seq_len: int) -> ast.Program:
    """`program` with every map, sequence_map and select function replaced by its table."""
    flat = flatten(program)
    vocab = list(vocab)
    values = value_sets(flat, vocab, max_seq_len)
    return inline_single_uses(tabulate_over(flat, values, vocab=vocab, max_seq_len=max_seq_len))


def value_sets(program: ast.Program, vocab: Iterable, max_seq_len: int) -> dict[str, frozenset]:
    """Definition name -> every value it can take on the domain (a superset), for a flat program.

    Not `dsl.infer`'s sets: those are tracr's basis inference, which leaves out an
    aggregate's default and the means of several selected numbers (a table missing
    them would be undefined where the program is not), and `dsl.infer` rejects
    programs tracr's evaluator runs (a categorical aggregate of numbers). The sets
    are propagated here with those added, as the tracr bridge does.
    """
    vocab = list(vocab)
    sets: dict[str, frozenset] = {}
    leaves = {ast.Tokens: frozenset(vocab), ast.Indices: frozenset(range(max_seq_len))}

    def of(node: ast.Node) -> frozenset:
        if isinstance(node, ast.Name):
            return sets[node.id]
        if isinstance(node, ast.Full):
            return frozenset({node.value})
        return leaves[type(node)]

    for definition in program.definitions:
        node = definition.node
        if isinstance(node, ast.Map):
            arguments = [(x,) for x in of(node.arg)]
        elif isinstance(node, ast.SequenceMap):
            arguments = list(itertools.product(of(node.left), of(node.right)))
        elif isinstance(node, ast.Aggregate):
            source = of(node.sop)
            # tracr's evaluator averages selected numbers whatever the encoding.
            means = aggregate_means(source, max_seq_len)
            sets[definition.name] = frozenset({*source, node.default, *means})
            continue
        elif isinstance(node, ast.SelectorWidth):
            sets[definition.name] = frozenset(range(max_seq_len + 1))
            continue
        elif isinstance(node, (ast.Name, *LEAVES)):
            sets[definition.name] = of(node)
            continue
        else:
            continue  # a selector has no values
        sets[definition.name] = frozenset(_applied(node.fn, arguments))
    return sets


def _applied(fn: ast.Function, arguments: list[tuple]) -> set:
    """The values of `fn` on `arguments`; None passes through (as the interpreter does)."""
    function = make_callable(fn)
    values = set()
    for args in arguments:
        if any(arg is None for arg in args):
            values.add(None)
            continue
        try:
            values.add(function(*args))
        except FUNCTION_ERRORS:  # undefined there, as in tracr's evaluator
            continue
    return values


def tabulate_over(
    program: ast.Program, values: Mapping[str, frozenset], *, vocab: Iterable, max_seq_len: int
) -> ast.Program:
    """Tabulate a flat program given each definition's value set."""
    leaves = {ast.Tokens: frozenset(vocab), ast.Indices: frozenset(range(max_seq_len))}

    def values_of(node: ast.Node) -> list:
        if isinstance(node, ast.Name):
            node_values = values[node.id]
        elif isinstance(node, ast.Full):
            node_values = {node.value}
        else:
            node_values = leaves[type(node)]
        return sorted(node_values, key=_sort_key)

    definitions = []
    for definition in program.definitions:
        node = definition.node
        if isinstance(node, ast.Map) and not isinstance(node.fn, ast.Table):
            arguments = [(x,) for x in values_of(node.arg) if x is not None]
            node = dataclasses.replace(node, fn=_table(node.fn, arguments, unary=True))
        elif isinstance(node, ast.SequenceMap) and not isinstance(node.fn, ast.Table):
            arguments = [
                (x, y)
                for x, y in itertools.product(values_of(node.left), values_of(node.right))
                if x is not None and y is not None
            ]
            node = dataclasses.replace(node, fn=_table(node.fn, arguments, unary=False))
        elif isinstance(node, ast.Select) and not isinstance(node.predicate, ast.Table):
            # A predicate meets None too (an aggregate's default); a comparison raises on it.
            arguments = list(itertools.product(values_of(node.keys), values_of(node.queries)))
            table = _table(node.predicate, arguments, unary=False, as_bool=True)
            node = dataclasses.replace(node, predicate=table)
        definitions.append(dataclasses.replace(definition, node=node))
    return ast.Program(tuple(definitions), program.output, program.origin)


def _table(fn: ast.Function, arguments: list[tuple], *, unary: bool, as_bool: bool = False):
    function = make_callable(fn)
    entries = []
    for args in arguments:
        try:
            value = function(*args)
        except FUNCTION_ERRORS:  # left out: the program is undefined there
            continue
        entries.append((args[0] if unary else args, bool(value) if as_bool else value))
    return ast.Table(tuple(entries))


def _sort_key(value):
    return (type(value).__name__, repr(value))
