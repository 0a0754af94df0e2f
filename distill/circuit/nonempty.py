"""Does an aggregate select a key at every query? Two arguments that need no search.

A value no input reaches needs no decoding margin in the certificate, and an
aggregate's default is reached exactly where its selector row is empty. Z3 can
ask that of the whole program, but at length 10 it often times out. Both
arguments here read the program's parts as functions of (token, index, length)
at one position, "position-local" (maps of tokens and indices, and the length:
the width of a selector that selects everything). The keys and queries one
input holds are then any choice of a token per position, so they are checked
exactly, per length, over tokens and positions: no search over inputs.

1. Position-local keys and queries (reverse's `select(indices, length - indices
   - 1, ==)`): the row at position i with token t is never empty when the query
   selects its own key, or some other position j selects it whatever j's token.

2. tracr's sort (`make_sort_unique`, and `make_sort` and `make_sort_freq`
   through it) ends with

       width = selector_width(select(key, key, <))      # how many keys rank below mine
       out = aggregate(select(width, indices, ==), value)

   At a length L the widths are a permutation of 0..L-1 exactly when no two
   positions hold keys of the same rank; then every query index selects one key.
   Two positions with keys of the same rank share a width w <= L - 2, so the
   query at index w selects both: where their values differ, the input breaks
   the precondition (a categorical aggregate selecting two distinct values) and
   is outside every claim. So the default is unreachable under the precondition
   when no two positions can hold keys of the same rank and the same value
   (Z3 meets the pigeonhole principle here and times out at length 10).
"""

from __future__ import annotations

import itertools

import numpy as np

from dsl import ast
from dsl.errors import DSLError
from dsl.functions import make_callable
from dsl.interpreter import evaluate


def never_selects_nothing(program: ast.Program, name: str, vocab, max_len: int) -> bool:
    """True when the aggregate `name` of `program` selects a key at every position of
    every input up to `max_len` where the precondition holds; False when neither
    argument of the module doc shows it (it may still hold)."""
    parts = _Parts(program, list(vocab), max_len)
    aggregate = parts.resolve(ast.Name(name))
    if not isinstance(aggregate, ast.Aggregate):
        return False
    selector = parts.resolve(aggregate.selector)
    if not isinstance(selector, ast.Select):
        return False
    try:
        return _rows_filled(parts, selector) or _ranks_distinct(parts, aggregate, selector)
    except (DSLError, TypeError, ValueError):  # a predicate undefined on some values
        return False


class _Parts:
    """The program's position-local parts, tabulated as [length - 1][token][index]."""

    def __init__(self, program: ast.Program, vocab: list, max_len: int):
        self.program, self.vocab, self.max_len = program, vocab, max_len
        self.by_name = {d.name: d.node for d in program.definitions}
        # Inputs of one repeated token: a position-local part's value at a position
        # depends on its token, its index and the length only.
        self.inputs = [[t] * length for length in range(1, max_len + 1) for t in vocab]
        self.tables: dict = {}

    def resolve(self, node):
        while isinstance(node, ast.Name):
            node = self.by_name.get(node.id)
        return node

    def tabulate(self, node) -> list | None:
        """`node`'s value at every (length, token, index), or None when it is not
        position-local or is undefined somewhere."""
        key = node.id if isinstance(node, ast.Name) else id(node)
        if key not in self.tables:
            self.tables[key] = self._evaluate(node) if self._local(node) else None
        return self.tables[key]

    def _local(self, node) -> bool:
        node = self.resolve(node)
        if isinstance(node, (ast.Tokens, ast.Indices, ast.Full)):
            return True
        if isinstance(node, (ast.Map, ast.SequenceMap)):
            return all(self._local(child) for child in node.children)
        if isinstance(node, ast.SelectorWidth):  # the length, when it selects everything
            selector = self.resolve(node.selector)
            return isinstance(selector, ast.Select) and self._selects_all(selector)
        return False

    def _selects_all(self, selector: ast.Select) -> bool:
        keys, queries = self.tabulate(selector.keys), self.tabulate(selector.queries)
        if keys is None or queries is None:
            return False
        test = make_callable(selector.predicate)
        try:
            return all(
                bool(test(k, q))
                for length in range(1, self.max_len + 1)
                for k in _values(keys, length)
                for q in _values(queries, length)
            )
        except (DSLError, TypeError, ValueError):
            return False

    def _evaluate(self, node) -> list | None:
        needed, stack = set(), [node]
        while stack:
            current = stack.pop()
            if isinstance(current, ast.Name):
                if current.id not in needed:
                    needed.add(current.id)
                    stack.append(self.by_name.get(current.id))
            elif current is not None:
                stack.extend(current.children)
        definitions = tuple(d for d in self.program.definitions if d.name in needed)
        try:
            outputs = evaluate(ast.Program(definitions, node), self.inputs, undefined="raise")
        except DSLError:
            return None
        count = len(self.vocab)
        return [outputs[i * count : (i + 1) * count] for i in range(self.max_len)]


def _values(table: list, length: int) -> set:
    return {v for row in table[length - 1] for v in row[:length]}


def _rows_filled(parts: _Parts, selector: ast.Select) -> bool:
    """Argument 1: position-local keys and queries, every row filled at every length."""
    keys, queries = parts.tabulate(selector.keys), parts.tabulate(selector.queries)
    if keys is None or queries is None:
        return False
    test, tested = make_callable(selector.predicate), {}

    def selects(k, q) -> bool:
        pair = (type(k), k, type(q), q)
        if pair not in tested:
            tested[pair] = bool(test(k, q))
        return tested[pair]

    tokens = range(len(parts.vocab))
    for length in range(1, parts.max_len + 1):
        key, query = keys[length - 1], queries[length - 1]
        # The positions that select query value q whatever their token.
        always = {
            q: {j for j in range(length) if all(selects(key[t][j], q) for t in tokens)}
            for q in _values(queries, length)
        }
        for t in tokens:
            for i in range(length):
                q = query[t][i]
                if not (selects(key[t][i], q) or always[q] - {i}):
                    return False
    return True


def _ranks_distinct(parts: _Parts, aggregate: ast.Aggregate, outer: ast.Select) -> bool:
    """Argument 2: the sort idiom, keys of distinct ranks wherever values are equal."""
    # The key side may be maps of the width (a table network's MLP relabelling it).
    width, relabel = parts.resolve(outer.keys), []
    while isinstance(width, ast.Map):
        relabel.append(make_callable(width.fn))
        width = parts.resolve(width.arg)
    if not isinstance(parts.resolve(outer.queries), ast.Indices) or not isinstance(
        width, ast.SelectorWidth
    ):
        return False
    inner = parts.resolve(width.selector)
    if not isinstance(inner, ast.Select):
        return False
    if parts.resolve(inner.keys) != parts.resolve(inner.queries):
        return False
    if not _is_equality(outer.predicate, relabel[::-1], parts.max_len):
        return False
    keys, values = parts.tabulate(inner.keys), parts.tabulate(aggregate.sop)
    if keys is None or values is None:
        return False
    ranks = _ranks(inner.predicate, {k for per_length in keys for row in per_length for k in row})
    if ranks is None:
        return False
    # Equal keys with different values break the precondition only for a categorical
    # aggregate: a numerical one averages them.
    distinct_values_excuse = aggregate.encoding == ast.CATEGORICAL
    for length in range(2, parts.max_len + 1):
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

    test = make_callable(predicate)
    return all(
        bool(test(key(w), q)) == (w == q) for w in range(max_len + 1) for q in range(max_len)
    )


def _ranks(predicate: ast.Function, keys: set) -> dict | None:
    """rank(key) with predicate(k, q) == (rank(k) < rank(q)) on every pair of `keys`, or
    None when the predicate is not a strict order by rank (a strict weak order)."""
    test = make_callable(predicate)
    below = {q: sum(bool(test(k, q)) for k in keys) for q in keys}
    if all(bool(test(k, q)) == (below[k] < below[q]) for k in keys for q in keys):
        return below
    return None


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b
