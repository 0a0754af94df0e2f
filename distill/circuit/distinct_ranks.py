"""Does every query of the sort idiom's aggregate select a key? Decided by counting.

tracr's sort (`make_sort_unique`, and `make_sort` and `make_sort_freq` through
it) ends with

    width = selector_width(select(key, key, <))      # how many keys rank below mine
    out = aggregate(select(width, indices, ==), value)

At a length L the widths are a permutation of 0..L-1 exactly when no two
positions hold keys of the same rank; then every query index selects one key
and `out` never takes its default. Two positions with keys of the same rank
share a width w <= L - 2, so the query at index w selects both: where their
values differ, the input breaks the precondition (a categorical aggregate
selecting two distinct values) and is outside every claim.

So the default is unreachable under the precondition when, at every length,
no two positions can hold keys of the same rank and the same value. When `key`
and `value` are functions of (token, index, length) at their position, the
keys and values one input can hold are every choice of a token per position,
so the pairs are checked exactly, over vocab^2 x L^2 per length: no search
over inputs, where Z3 meets the pigeonhole principle and times out at length 10.
"""

from __future__ import annotations

import itertools

import numpy as np

from dsl import ast
from dsl.errors import DSLError
from dsl.functions import make_callable
from dsl.interpreter import evaluate

POSITION_LOCAL = (ast.Tokens, ast.Indices, ast.Full, ast.Map, ast.SequenceMap, ast.Name)


def every_query_selects(program: ast.Program, name: str, vocab, max_len: int) -> bool:
    """True when the aggregate `name` of `program` selects a key at every position of
    every input up to `max_len` where the precondition holds (module doc); False when
    that is not shown this way (it may still hold)."""
    by_name = {d.name: d.node for d in program.definitions}

    def resolve(node):
        while isinstance(node, ast.Name):
            node = by_name.get(node.id)
        return node

    aggregate = resolve(ast.Name(name))
    outer = resolve(getattr(aggregate, "selector", None))
    if not isinstance(aggregate, ast.Aggregate) or not isinstance(outer, ast.Select):
        return False
    # The key side may be maps of the width (a table network's MLP relabelling it).
    width, relabel = resolve(outer.keys), []
    while isinstance(width, ast.Map):
        relabel.append(make_callable(width.fn))
        width = resolve(width.arg)
    if not isinstance(resolve(outer.queries), ast.Indices) or not isinstance(
        width, ast.SelectorWidth
    ):
        return False
    inner = resolve(width.selector)
    if not isinstance(inner, ast.Select) or resolve(inner.keys) != resolve(inner.queries):
        return False
    if not _is_equality(outer.predicate, relabel[::-1], max_len):
        return False
    local = _position_local(program, by_name, [inner.keys, aggregate.sop], vocab, max_len)
    if local is None:
        return False
    keys, values = local  # [lengths][tokens][indices]
    ranks = _ranks(inner.predicate, {k for per_length in keys for row in per_length for k in row})
    if ranks is None:
        return False
    # Equal keys with different values break the precondition only for a categorical
    # aggregate: a numerical one averages them.
    distinct_values_excuse = aggregate.encoding == ast.CATEGORICAL
    for length in range(2, max_len + 1):
        rank = np.array([[ranks[k] for k in row[:length]] for row in keys[length - 1]])
        value = values[length - 1]
        for i, j in itertools.combinations(range(length), 2):
            same_rank = rank[:, i][:, None] == rank[:, j][None, :]  # [token at i, token at j]
            if not same_rank.any():
                continue
            if not distinct_values_excuse:
                return False
            for a, b in zip(*np.nonzero(same_rank)):
                if _same(value[a][i], value[b][j]):
                    return False
    return True


def _is_equality(predicate: ast.Function, relabel: list, max_len: int) -> bool:
    """Does `predicate(relabelled width, index)` hold exactly when width == index, on
    widths 0..max_len and indices 0..max_len - 1? (`relabel`: maps applied in turn.)"""

    def key(width):
        for function in relabel:
            width = function(width)
        return width

    try:
        test = make_callable(predicate)
        return all(
            bool(test(key(w), q)) == (w == q) for w in range(max_len + 1) for q in range(max_len)
        )
    except (DSLError, TypeError, ValueError):
        return False


def _position_local(program, by_name, nodes: list, vocab, max_len: int) -> list | None:
    """Each node's value as [length - 1][token][index], or None when a node reads more
    than its own position (a selector) or is undefined somewhere.

    A position-local node's value at a position depends on its token, its index and the
    length only, so inputs of one repeated token cover every case."""
    needed, stack = set(), list(nodes)
    while stack:
        node = stack.pop()
        if not isinstance(node, POSITION_LOCAL):
            return None
        if isinstance(node, ast.Name):
            if node.id not in needed:
                needed.add(node.id)
                stack.append(by_name.get(node.id))
        else:
            stack.extend(node.children)
    definitions = tuple(d for d in program.definitions if d.name in needed)
    inputs = [[token] * length for length in range(1, max_len + 1) for token in vocab]
    tables = []
    for node in nodes:
        try:
            outputs = evaluate(ast.Program(definitions, node), inputs, undefined="raise")
        except DSLError:
            return None
        tables.append([outputs[i * len(vocab) : (i + 1) * len(vocab)] for i in range(max_len)])
    return tables


def _ranks(predicate: ast.Function, keys: set) -> dict | None:
    """rank(key) with predicate(k, q) == (rank(k) < rank(q)) on every pair of `keys`, or
    None when the predicate is not a strict order by rank (a strict weak order)."""
    try:
        test = make_callable(predicate)
        below = {q: sum(bool(test(k, q)) for k in keys) for q in keys}
        if all(bool(test(k, q)) == (below[k] < below[q]) for k in keys for q in keys):
            return below
    except (DSLError, TypeError, ValueError):
        pass
    return None


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b
