"""Closed forms for tables: the smallest lambda that agrees with a table on its keys.

Two goals share one search (synth.expressions):

- `closed_form(table)`: the outputs are real values; a lambda must give exactly
  them, floats to the last bit (the search itself compares floats to 9 decimals,
  so a lambda found there is confirmed bit for bit before it is returned).
- `relabeling_forms(table)`: the outputs are opaque labels whose meaning is free;
  a lambda fits when it separates the keys exactly as the labels do, and then
  it *defines* the labels (old label -> the lambda's value).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from dsl import ast
from dsl.functions import make_callable
from synth import vectors
from synth.budget import DEFAULT_BUDGET, Budget
from synth.errors import FUNCTION_ERRORS
from synth.expressions import enumerate_expressions, evaluate

# Parameter names of the lambdas a search writes, by arity.
PARAMS = {1: ("x",), 2: ("x", "y")}
SMALL_INTEGERS = (0, 1, 2)
MAX_SYMBOLIC_CONSTANTS = 8
# Candidates are evaluated on at most this many points of a table (see _sample).
MAX_SEARCH_POINTS = 256


@dataclass(frozen=True)
class Relabeling:
    """A lambda that defines a free table's labels, and the labels it gives."""

    fn: ast.Lambda
    new_labels: dict  # old label -> new value


def table_points(table: ast.Table, arity: int) -> tuple[list[tuple], list]:
    """The table's inputs as argument tuples, and its outputs, in entry order.

    `arity` comes from the node (a map's table has one argument even when its
    keys are tuples), never from the keys.
    """
    arguments = [key if arity > 1 else (key,) for key, _ in table.entries]
    return arguments, [value for _, value in table.entries]


def search_constants(arguments: Sequence[tuple], outputs: Sequence, extra: Sequence = ()) -> list:
    """The constants a search may use: small integers, `extra`, and a few symbols of the table."""
    constants = list(SMALL_INTEGERS)
    symbols: list = []
    for value in [*extra, *(v for args in arguments for v in args), *outputs]:
        if type(value) not in (int, float, str):
            continue  # booleans come from comparisons; tuples are no .rasp literal
        if isinstance(value, float) and not value.is_integer():
            continue
        if value not in symbols and not _contains(constants, value):
            symbols.append(value)
    return constants + _prefer_extra(symbols, extra)[:MAX_SYMBOLIC_CONSTANTS]


def _prefer_extra(symbols: list, extra: Sequence) -> list:
    return sorted(symbols, key=lambda v: (not _contains(extra, v), type(v).__name__))


def _contains(values: Sequence, value) -> bool:
    return any(_identical(v, value) for v in values)


def _identical(a, b) -> bool:
    """The same value of the same type; floats to the bit (0.0 is not -0.0)."""
    if type(a) is float and type(b) is float:
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return type(a) is type(b) and a == b


def closed_form(
    table: ast.Table,
    arity: int,
    *,
    budget: Budget = DEFAULT_BUDGET,
    extra_constants: Sequence = (),
    params: tuple[str, ...] | None = None,
) -> ast.Lambda | None:
    """The smallest lambda equal to `table` on every key, or None when none is within budget.

    Equal means the same values as the DSL computes them, floats to the last bit:
    `x + (x + y)` is not `2 * x + y` in floating point, and a lambda that rounds
    differently from the table would change the program's function.
    """
    arguments, outputs = table_points(table, arity)
    constants = search_constants(arguments, outputs, extra_constants)
    params = params or PARAMS[arity]
    for fn, values in _fitting(arguments, outputs, params, constants, budget, exact=True):
        if all(_identical(v, o) for v, o in zip(values, outputs)):
            return fn
    return None


def relabeling_forms(
    table: ast.Table,
    arity: int,
    *,
    budget: Budget = DEFAULT_BUDGET,
    extra_constants: Sequence = (),
) -> Iterator[Relabeling]:
    """Lambdas that separate the table's keys exactly as its (free) labels do, smallest first."""
    arguments, labels = table_points(table, arity)
    constants = search_constants(arguments, (), extra_constants)  # labels mean nothing
    for fn, values in _fitting(arguments, labels, PARAMS[arity], constants, budget, exact=False):
        yield Relabeling(fn, dict(zip(labels, values)))


def _fitting(arguments, outputs, params, constants, budget: Budget, *, exact: bool):
    """Lambdas fitting (arguments -> outputs) exactly, or up to renaming the outputs.

    Candidates are enumerated on a sample of the points (all of a small table);
    each one fitting the sample is evaluated on every point, then confirmed by
    the DSL's own semantics.
    """
    if not arguments:
        return
    everywhere = {
        name: vectors.make_vector([args[i] for args in arguments]) for i, name in enumerate(params)
    }
    target = _goal(vectors.make_vector(outputs), exact)
    sample = np.array(_sample(outputs), dtype=np.int64)
    sampled_outputs = vectors.make_vector([outputs[p] for p in sample])
    fits_sample = _exact_test(sampled_outputs) if exact else _partition_test(sampled_outputs)

    candidates = enumerate_expressions(
        {name: values[sample] for name, values in everywhere.items()},
        constants,
        max_size=budget.max_size(len(params)),
        max_candidates=budget.max_candidates,
        answer=fits_sample,
    )
    for candidate in candidates:
        if candidate.constant and not exact or not fits_sample(candidate.values):
            continue
        values = (
            evaluate(candidate.expr, everywhere) if len(sample) < len(outputs) else candidate.values
        )
        if values is None or _goal(values, exact) != target:
            continue
        fn = ast.Lambda(tuple(params), candidate.expr)
        exact_values = _values(fn, arguments)
        if exact_values is None or _goal(vectors.make_vector(exact_values), exact) != target:
            continue
        if not exact and any(value is None for value in exact_values):
            continue  # None is an aggregate's default, never a label
        yield fn, exact_values


def _exact_test(outputs: np.ndarray):
    target = vectors.behaviour_key(outputs)
    return lambda values: vectors.behaviour_key(values) == target


def _partition_test(labels: np.ndarray):
    """A fast test that values group the points as `labels` do (called on every candidate)."""
    signature = np.frombuffer(vectors.partition_signature(labels), dtype=np.int64)
    first = np.unique(signature, return_index=True)[1]  # a representative point per label
    representative = first[signature]

    def same_partition(values: np.ndarray) -> bool:
        if vectors.kind(values) == "o":
            return vectors.partition_signature(values) == signature.tobytes()
        if vectors.kind(values) == "f":
            values = np.round(values, vectors.DECIMALS) + 0.0
        if not np.array_equal(values, values[representative]):
            return False
        return len(np.unique(values[first])) == len(first)

    return same_partition


def _goal(vector: np.ndarray, exact: bool):
    return vectors.behaviour_key(vector) if exact else vectors.partition_signature(vector)


def _sample(outputs: Sequence) -> list[int]:
    """The points a search starts on: all, or a fixed subset of a large table.

    The subset holds a few points of every output value (rare outputs are what
    tell candidates apart), then random ones.
    """
    if len(outputs) <= MAX_SEARCH_POINTS:
        return list(range(len(outputs)))
    by_output: dict = {}
    for position, value in enumerate(outputs):
        by_output.setdefault((type(value).__name__, repr(value)), []).append(position)
    per_output = max(1, MAX_SEARCH_POINTS // (2 * len(by_output)))
    chosen = {p for positions in by_output.values() for p in positions[:per_output]}
    rest = [p for p in range(len(outputs)) if p not in chosen]
    room = max(0, MAX_SEARCH_POINTS - len(chosen))
    chosen.update(random.Random(0).sample(rest, min(room, len(rest))))
    return sorted(chosen)


def _values(fn: ast.Function, arguments: Sequence[tuple]) -> list | None:
    """`fn` on every argument tuple by the DSL's own semantics; None where it raises."""
    function = make_callable(fn)
    try:
        return [function(*args) for args in arguments]
    except FUNCTION_ERRORS:
        return None


def agrees(fn: ast.Function, arguments: Sequence[tuple], outputs: Sequence) -> bool:
    """`fn` (run by the DSL's own semantics) gives `outputs` on `arguments`."""
    values = _values(fn, arguments)
    if values is None:
        return False
    return vectors.behaviour_key(vectors.make_vector(values)) == vectors.behaviour_key(
        vectors.make_vector(outputs)
    )
