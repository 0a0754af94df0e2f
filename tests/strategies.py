"""Hypothesis strategies for random well-typed `.rasp` programs and their inputs.

    from strategies import programs, inputs   # pytest puts tests/ on sys.path

    @given(programs(vocab=("a", "b", 1), max_seq_len=4), st.data())
    def test_x(program, data):
        tokens = data.draw(inputs(("a", "b", 1), 4))

`programs(vocab, max_seq_len, compilable=False)` draws a chain of 4..8 steps,
each step building on the previous result, so every program has depth >= 4
and no unused definition. Across draws it uses every node kind: tokens,
indices, full, map and sequence_map with lambdas and tables, categorical and
numerical aggregates (with defaults), selector_width, select with every
comparison and with lambda predicates, selector &, | and ~, and both
encodings. Programs are defined on most inputs: maps are only drawn where
they succeed on every value their argument can take; categorical aggregates
mostly use selectors that pick one position; numerical aggregates average 0/1
values. `compilable=True` keeps to the fragment tracr compiles (no full, a
plain select under each aggregate, tracr's default values, categorical
sequence maps or numerical linear ones).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from dsl import ast
from dsl.functions import make_callable

NUMBER_TYPES = (int, float, bool)
MAX_VALUES = 12  # larger value sets make tables unreadable and checks slow
MIN_STEPS, MAX_STEPS = 4, 8


@dataclass(frozen=True)
class _SOp:
    ref: ast.Node  # a Name, or tokens / indices themselves
    encoding: ast.Encoding
    values: frozenset  # every value it can take (None included where it can be None)


def inputs(vocab, max_seq_len: int, *, min_len: int = 1):
    """One input: a list of 1..max_seq_len tokens from vocab."""
    return st.lists(st.sampled_from(list(vocab)), min_size=min_len, max_size=max_seq_len)


def batches(vocab, max_seq_len: int, *, max_size: int = 20):
    """A batch of inputs (at least one)."""
    return st.lists(inputs(vocab, max_seq_len), min_size=1, max_size=max_size)


@st.composite
def programs(draw, vocab=("a", "b", "c"), max_seq_len: int = 4, *, compilable: bool = False):
    """A random well-typed program over `vocab` (see the module docstring)."""
    builder = _Builder(draw, tuple(vocab), max_seq_len, compilable)
    current = builder.start()
    for _ in range(draw(st.integers(MIN_STEPS, MAX_STEPS))):
        current = builder.step(current)
    return ast.Program(tuple(builder.definitions), current.ref)


class _Builder:
    def __init__(self, draw, vocab: tuple, max_seq_len: int, compilable: bool):
        self.draw = draw
        self.vocab = vocab
        self.n = max_seq_len
        self.compilable = compilable
        self.definitions: list[ast.Definition] = []
        self.pool: list[_SOp] = [
            _SOp(ast.Tokens(), ast.CATEGORICAL, frozenset(vocab)),
            _SOp(ast.Indices(), ast.CATEGORICAL, frozenset(range(max_seq_len))),
        ]

    # ---- bookkeeping ------------------------------------------------------

    def define(self, node: ast.Node, prefix: str) -> ast.Name:
        name = f"{prefix}{len(self.definitions)}"
        self.definitions.append(ast.Definition(name, node))
        return ast.Name(name)

    def add(self, node: ast.SOp, values, prefix="v") -> _SOp:
        sop = _SOp(self.define(node, prefix), node.encoding, frozenset(values))
        self.pool.append(sop)
        return sop

    def categorical_pool(self, *, without_none=True) -> list[_SOp]:
        return [
            s
            for s in self.pool
            if s.encoding == ast.CATEGORICAL and not (without_none and None in s.values)
        ]

    def constant(self, values: frozenset):
        """A constant of the same kind as the values (so comparisons with it are defined)."""
        kinds = sorted({type(v).__name__ for v in values if v is not None}) or ["int"]
        kind = self.draw(st.sampled_from(kinds))
        if kind == "str":
            return self.draw(st.sampled_from(sorted(v for v in values if isinstance(v, str))))
        if kind == "bool":
            return self.draw(st.booleans())
        return self.draw(st.integers(0, 3))

    # ---- steps --------------------------------------------------------------

    def start(self) -> _SOp:
        """The first definition: a map of tokens or indices (or a full)."""
        kinds = ["map", "map"] if self.compilable else ["map", "map", "full"]
        if self.draw(st.sampled_from(kinds)) == "full":
            value = self.draw(st.sampled_from([0, 1, 2, *self.vocab]))
            return self.add(ast.Full(value), {value}, "c")
        if self.compilable:  # tracr compiles only programs that read the tokens
            return self.map(self.pool[0])
        return self.map(self.draw(st.sampled_from(self.pool)))

    def step(self, current: _SOp) -> _SOp:
        """One more definition that uses `current` (so the chain gets deeper)."""
        kinds = ["map", "sequence_map", "aggregate", "numerical_aggregate", "selector_width"]
        if current.encoding == ast.NUMERICAL or None in current.values:
            kinds = ["map", "map", "sequence_map"]
        kind = self.draw(st.sampled_from(kinds))
        return getattr(self, kind)(current)

    def map(self, arg: _SOp) -> _SOp:
        candidates = self.unary_functions(arg.values)
        fn, values = self.draw(st.sampled_from(candidates))
        numbers = all(isinstance(v, NUMBER_TYPES) for v in values - {None})
        encoding = ast.CATEGORICAL
        if numbers and self.draw(st.integers(0, 3)) == 0:
            encoding = ast.NUMERICAL
        if None in arg.values:
            values = set(values) | {None}
        return self.add(ast.Map(fn, arg.ref, encoding=encoding), values)

    def unary_functions(self, values: frozenset) -> list[tuple[ast.Function, set]]:
        """Lambdas and tables defined on every value, with their output values."""
        x = ast.Var("x")
        c = ast.Const(self.constant(values))
        bodies = [
            ast.Compare(self.draw(st.sampled_from(ast.COMPARE_OPERATORS)), x, c),
            ast.BinOp(self.draw(st.sampled_from(("+", "-", "*", "%"))), x, ast.Const(2)),
            ast.IfExp(ast.Compare("==", x, c), ast.Const(1), ast.Const(0)),
            ast.UnaryOp("not", x),
            ast.Call("min", (x, ast.Const(2))),
            ast.Call("abs", (ast.BinOp("-", x, ast.Const(1)),)),
            ast.BoolOp("or", ast.Compare("==", x, c), ast.Compare("!=", x, c)),
            ast.UnaryOp("-", x),
            ast.BinOp("//", x, ast.Const(2)),
        ]
        found = []
        for body in bodies:
            fn = ast.Lambda(("x",), body)
            outputs = _outputs(fn, [(v,) for v in values if v is not None])
            if outputs is not None and len(outputs) <= MAX_VALUES:
                found.append((fn, outputs))
        keys = sorted((v for v in values if v is not None), key=repr)
        if keys and _table_keys_distinct(keys):
            outputs = self.draw(
                st.lists(
                    st.sampled_from([0, 1, 2, "a", "b", True]),
                    min_size=len(keys),
                    max_size=len(keys),
                )
            )
            if _same_kind(outputs):
                found.append((ast.Table(tuple(zip(keys, outputs))), set(outputs)))
        return found

    def sequence_map(self, left: _SOp) -> _SOp:
        if left.encoding == ast.NUMERICAL:
            numerical = [s for s in self.pool if s.encoding == ast.NUMERICAL and s.ref != left.ref]
            if self.compilable and not numerical:
                return self.map(left)
            if numerical:
                right = self.draw(st.sampled_from(numerical))
                return self.linear(left, right)
        right = self.draw(st.sampled_from(self.categorical_pool(without_none=False)))
        if self.compilable and right.encoding != left.encoding:
            return self.map(left)
        if self.draw(st.booleans()):
            left, right = right, left
        candidates = self.binary_functions(left.values, right.values)
        if not candidates:
            return self.map(left if left.encoding == ast.CATEGORICAL else right)
        fn, values = self.draw(st.sampled_from(candidates))
        if None in left.values or None in right.values:
            values = set(values) | {None}
        return self.add(ast.SequenceMap(fn, left.ref, right.ref), values)

    def linear(self, left: _SOp, right: _SOp) -> _SOp:
        x, y = ast.Var("x"), ast.Var("y")
        body = self.draw(
            st.sampled_from(
                [
                    ast.BinOp("+", x, y),
                    ast.BinOp("-", x, y),
                    ast.BinOp("+", ast.BinOp("*", ast.Const(2), x), y),
                ]
            )
        )
        fn = ast.Lambda(("x", "y"), body)
        pairs = [
            (a, b) for a in left.values for b in right.values if a is not None and b is not None
        ]
        values = _outputs(fn, pairs) or set()
        node = ast.SequenceMap(fn, left.ref, right.ref, encoding=ast.NUMERICAL)
        return self.add(node, values | ({None} if None in left.values | right.values else set()))

    def binary_functions(self, left: frozenset, right: frozenset) -> list:
        x, y = ast.Var("x"), ast.Var("y")
        bodies = [
            ast.BinOp("+", x, y),
            ast.BinOp("-", x, y),
            ast.Compare("==", x, y),
            ast.Compare("<", x, y),
            ast.BoolOp("and", x, y),
            ast.IfExp(ast.Compare("==", x, y), ast.Const(1), ast.Const(0)),
            ast.Call("max", (x, y)),
        ]
        pairs = [(a, b) for a in left for b in right if a is not None and b is not None]
        found = []
        for body in bodies:
            fn = ast.Lambda(("x", "y"), body)
            outputs = _outputs(fn, pairs)
            if outputs is not None and len(outputs) <= MAX_VALUES:
                found.append((fn, outputs))
        if pairs and len(pairs) <= 36:
            outputs = self.draw(
                st.lists(st.sampled_from([0, 1, 2]), min_size=len(pairs), max_size=len(pairs))
            )
            found.append((ast.Table(tuple(zip(pairs, outputs))), set(outputs)))
        return found

    # ---- selectors ------------------------------------------------------------

    def select(self, keys: _SOp, queries: _SOp) -> ast.Node:
        """A select on two categorical SOps with a predicate defined on their values."""
        predicates = [ast.Comparison(op) for op in ast.COMPARISONS]
        k, q = ast.Var("k"), ast.Var("q")
        predicates += [
            ast.Lambda(("k", "q"), ast.Compare("==", q, ast.BinOp("+", k, ast.Const(1)))),
            ast.Lambda(
                ("k", "q"),
                ast.BoolOp("or", ast.Compare("==", k, q), ast.Compare("<", k, ast.Const(1))),
            ),
        ]
        pairs = [(a, b) for a in keys.values for b in queries.values]
        usable = [p for p in predicates if _outputs(p, pairs) is not None]
        predicate = self.draw(st.sampled_from(usable))
        return self.define(ast.Select(keys.ref, queries.ref, predicate), "s")

    def any_selector(self, current: _SOp) -> ast.Node:
        """A selector on `current` and another categorical SOp, maybe combined with &, | or ~."""
        other = self.draw(st.sampled_from(self.categorical_pool()))
        keys, queries = (current, other) if self.draw(st.booleans()) else (other, current)
        selector = self.select(keys, queries)
        if self.compilable:
            return selector
        combine = self.draw(st.sampled_from(["none", "none", "and", "or", "not"]))
        if combine == "not":
            return self.define(ast.SelectNot(selector), "s")
        if combine in ("and", "or"):
            second = self.select(*self.draw(st.permutations([current, other])))
            node_type = ast.SelectAnd if combine == "and" else ast.SelectOr
            return self.define(node_type(selector, second), "s")
        return selector

    def one_position_selector(self) -> ast.Node:
        """A select that picks at most one position per query: mostly defined aggregates."""
        indices = self.pool[1]
        x, k, q = ast.Var("x"), ast.Var("k"), ast.Var("q")
        shift = self.draw(st.integers(-1, 1))
        if self.draw(st.booleans()):
            moved = ast.Map(ast.Lambda(("x",), ast.BinOp("+", x, ast.Const(shift))), indices.ref)
            moved_values = {i + shift for i in range(self.n)}
            queries = _SOp(self.define(moved, "q"), ast.CATEGORICAL, frozenset(moved_values))
            return self.define(ast.Select(indices.ref, queries.ref, ast.Comparison("==")), "s")
        predicate = ast.Lambda(
            ("k", "q"), ast.Compare("==", q, ast.BinOp("+", k, ast.Const(shift)))
        )
        return self.define(ast.Select(indices.ref, indices.ref, predicate), "s")

    # ---- aggregates and widths -------------------------------------------------

    def aggregate(self, current: _SOp) -> _SOp:
        if self.draw(st.integers(0, 3)) == 0:
            selector = self.any_selector(current)
        else:
            selector = self.one_position_selector()
        default = None
        if not self.compilable:
            default = self.draw(st.sampled_from([None, None, 0, "a"]))
        node = ast.Aggregate(selector, current.ref, default=default)
        return self.add(node, set(current.values) | {default})

    def numerical_aggregate(self, current: _SOp) -> _SOp:
        c = ast.Const(self.constant(current.values))
        indicator = ast.Lambda(
            ("x",), ast.IfExp(ast.Compare("==", ast.Var("x"), c), ast.Const(1), ast.Const(0))
        )
        bits = self.add(ast.Map(indicator, current.ref, encoding=ast.NUMERICAL), {0, 1})
        selector = self.any_selector(current)
        node = ast.Aggregate(selector, bits.ref, default=0, encoding=ast.NUMERICAL)
        means = {k / m for m in range(1, self.n + 1) for k in range(m + 1)}
        return self.add(node, means)

    def selector_width(self, current: _SOp) -> _SOp:
        encoding = ast.NUMERICAL if self.draw(st.integers(0, 4)) == 0 else ast.CATEGORICAL
        if self.compilable:
            encoding = ast.CATEGORICAL
        node = ast.SelectorWidth(self.any_selector(current), encoding=encoding)
        return self.add(node, range(self.n + 1), "w")


def _outputs(fn: ast.Function, arguments: list[tuple]) -> set | None:
    """The values fn gives on the arguments, or None if it fails on one of them."""
    call = make_callable(fn)
    results = set()
    for args in arguments:
        try:
            results.add(call(*args))
        except Exception:  # noqa: BLE001 - any failure rules the function out
            return None
    return results


def _table_keys_distinct(keys: list) -> bool:
    # 1, 1.0 and True are one dict key: a table over them would lose entries.
    return len(set(keys)) == len(keys)


def _same_kind(values: list) -> bool:
    return len({isinstance(v, str) for v in values}) == 1
