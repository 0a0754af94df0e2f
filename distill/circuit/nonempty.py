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
from dsl.functions import make_callable


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
    except Exception:  # noqa: BLE001 - a predicate undefined on some values (as tracr: any error)
        return False


class _NotLocal(Exception):
    """A part that reads other positions (beyond the length), or is undefined somewhere."""


class _Parts:
    """The program's position-local parts, tabulated as [length - 1][token][index]."""

    def __init__(self, program: ast.Program, vocab: list, max_len: int):
        self.program, self.vocab, self.max_len = program, vocab, max_len
        self.by_name = {d.name: d.node for d in program.definitions}
        self.tables: dict = {}
        self.functions: dict = {}
        self.selects_all: dict = {}

    def resolve(self, node):
        while isinstance(node, ast.Name):
            node = self.by_name.get(node.id)
        return node

    def tabulate(self, node, free=None) -> list | None:
        """`node`'s value at every (length, token, index), or None when it is not
        position-local or is undefined somewhere. With `free`, a selector width taken
        as given: then [length - 1][token][index][width], for widths 0..length."""
        key = (node.id if isinstance(node, ast.Name) else id(node), id(free))
        if key not in self.tables:
            try:
                self.tables[key] = [
                    [
                        [
                            self.value(node, t, i, length)
                            if free is None
                            else [
                                self.value(node, t, i, length, (free, w)) for w in range(length + 1)
                            ]
                            for i in range(length)
                        ]
                        for t in self.vocab
                    ]
                    for length in range(1, self.max_len + 1)
                ]
            except _NotLocal:
                self.tables[key] = None
        return self.tables[key]

    def value(self, node, token, index, length, free=None):
        """`node` at a position holding `token` at `index`, in an input of `length`;
        free: (a selector width, its value there)."""
        node = self.resolve(node)
        if isinstance(node, ast.Tokens):
            return token
        if isinstance(node, ast.Indices):
            return index
        if isinstance(node, ast.Full):
            return node.value
        if isinstance(node, (ast.Map, ast.SequenceMap)):
            args = [self.value(child, token, index, length, free) for child in node.children]
            if any(arg is None for arg in args):  # as the interpreter: None stays None
                return None
            try:  # as the interpreter: any error is undefined (not shown here)
                return self.function(node.fn)(*args)
            except Exception as error:  # noqa: BLE001
                raise _NotLocal from error
        if isinstance(node, ast.SelectorWidth):
            if free is not None and node is free[0]:
                return free[1]
            if self._selects_all(node):  # the length
                return length
        raise _NotLocal

    def query_width(self, node) -> ast.SelectorWidth | None:
        """The one selector width in `node`'s cone that is not the length, when its query
        side is position-local: at two positions with the same query value it selects
        the same keys, so it has the same width."""
        widths, stack = [], [node]
        while stack:
            current = self.resolve(stack.pop())
            if isinstance(current, ast.SelectorWidth) and not self._selects_all(current):
                widths.append(current)
            elif current is not None and not isinstance(current, ast.SelectorWidth):
                stack.extend(current.children)
        if len({id(w) for w in widths}) != 1:
            return None
        selector = self.resolve(widths[0].selector)
        if not isinstance(selector, ast.Select) or self.tabulate(selector.queries) is None:
            return None
        return widths[0]

    def function(self, fn: ast.Function):
        if id(fn) not in self.functions:
            self.functions[id(fn)] = make_callable(fn)
        return self.functions[id(fn)]

    def _selects_all(self, width: ast.SelectorWidth) -> bool:
        if id(width) not in self.selects_all:
            self.selects_all[id(width)] = False  # while it is asked (no cycles in a program)
            selector = self.resolve(width.selector)
            self.selects_all[id(width)] = isinstance(selector, ast.Select) and self._all(selector)
        return self.selects_all[id(width)]

    def _all(self, selector: ast.Select) -> bool:
        keys, queries = self.tabulate(selector.keys), self.tabulate(selector.queries)
        if keys is None or queries is None:
            return False
        test = self.function(selector.predicate)
        try:
            return all(
                bool(test(k, q))
                for length in range(1, self.max_len + 1)
                for k in _values(keys, length)
                for q in _values(queries, length)
            )
        except Exception:  # noqa: BLE001 - undefined somewhere: not shown to select all
            return False


def _values(table: list, length: int) -> set:
    return {v for row in table[length - 1] for v in row[:length]}


def _rows_filled(parts: _Parts, selector: ast.Select) -> bool:
    """Argument 1: position-local keys and queries, every row filled at every length."""
    keys, queries = parts.tabulate(selector.keys), parts.tabulate(selector.queries)
    if keys is None or queries is None:
        return False
    test, tested = parts.function(selector.predicate), {}

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
    values = parts.tabulate(aggregate.sop)
    free = None
    keys = parts.tabulate(inner.keys)
    if keys is None:  # a key that reads a width, e.g. sort_freq's count of my token
        free = parts.query_width(inner.keys)
        keys = None if free is None else parts.tabulate(inner.keys, free)
        queries = None if free is None else parts.tabulate(parts.resolve(free.selector).queries)
        if queries is None:
            return False
    if keys is None or values is None:
        return False
    every_key = {k for per_length in keys for row in per_length for k in _flat(row)}
    ranks = _ranks(inner.predicate, every_key)
    if ranks is None:
        return False
    # Equal keys with different values break the precondition only for a categorical
    # aggregate: a numerical one averages them.
    distinct_values_excuse = aggregate.encoding == ast.CATEGORICAL
    codes: dict = {}
    for length in range(2, parts.max_len + 1):
        # rank[token, index, width] (one width when no width is free)
        rank = np.array(
            [[[ranks[k] for k in _flat([cell])] for cell in row] for row in keys[length - 1]]
        )
        if free is not None:
            query = _coded(queries[length - 1], codes)
        value = _coded(values[length - 1], codes)
        widths = rank.shape[2]
        for i, j in itertools.combinations(range(length), 2):
            # [token at i, width at i, token at j, width at j]
            same = rank[:, i][:, :, None, None] == rank[:, j][None, None, :, :]
            if free is not None:
                # The same query value at both positions: the same width.
                shared = query[:, i][:, None] == query[:, j][None, :]  # [token i, token j]
                different = ~np.eye(widths, dtype=bool)[None, :, None, :]
                same &= ~(shared[:, None, :, None] & different)
            if not distinct_values_excuse:
                if same.any():
                    return False
                continue
            equal_values = value[:, i][:, None] == value[:, j][None, :]
            if (same & equal_values[:, None, :, None]).any():
                return False
    return True


def _flat(row) -> list:
    """A row's keys, whether or not each holds one per width."""
    return [k for cell in row for k in (cell if isinstance(cell, list) else [cell])]


def _coded(table: list, codes: dict) -> np.ndarray:
    """[token][index] values as integer codes, equal exactly when the values are the same
    (of the same type: 1, 1.0 and True are different values)."""
    return np.array([[codes.setdefault((type(v), v), len(codes)) for v in row] for row in table])


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
