"""The vectorized interpreter: a whole batch of inputs at once, with tracr's semantics.

An SOp over a batch is an `SOpArray`: integer codes `[batch, pos]` into a table
of the distinct values the SOp takes, so a `map` applies its function once per
distinct value, never once per position. A selector is a `SelectorArray`, a
boolean `[batch, query, key]` matrix. Inputs of different lengths are padded to
the longest; `mask[b, i]` says position `i` exists in input `b`, and padding
never takes part in a result.

Semantics are exactly those of `tracr.rasp.rasp.evaluate`: map and
sequence_map give None on a None argument; comparisons raise on None; an
aggregate gives the default when nothing is selected, the selected value when
one is, and the mean when several are (all numbers; otherwise tracr raises).
Where tracr's evaluator would raise on an input, that input is *undefined*: its
reason is recorded in `failures` (input index -> message) and the input's other
values are meaningless. The interpreter is a dispatch table keyed by node type.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dsl import ast
from dsl.errors import EvaluationError
from dsl.functions import make_callable

NUMBER_TYPES = (int, bool, float)  # what tracr's aggregate accepts for a mean


@dataclass(frozen=True, eq=False)
class SOpArray:
    """An SOp's values over a batch."""

    codes: np.ndarray
    """[batch, pos] int: index into `table`; positions outside an input hold any valid code."""
    table: tuple
    """Each value at most once (1, 1.0 and True are distinct); never empty."""
    failures: Mapping[int, str]
    """Input index -> why tracr's evaluator raises on that input (here or in a child)."""

    def values(self) -> np.ndarray:
        """[batch, pos] object array of the values (padding positions included)."""
        return _object_array(self.table)[self.codes]

    @classmethod
    def from_values(cls, values: np.ndarray, failures: Mapping[int, str]) -> SOpArray:
        """The SOpArray holding `values` ([batch, pos] object array), e.g. for an override."""
        codes, table = _encode(values.reshape(-1).tolist())
        return cls(codes.reshape(values.shape), table, failures)


@dataclass(frozen=True, eq=False)
class SelectorArray:
    """A selector's matrix over a batch."""

    matrix: np.ndarray
    """[batch, query, key] bool; False wherever the query or key position is padding."""
    failures: Mapping[int, str]
    """Input index -> why tracr's evaluator raises on that input."""


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Every definition of a program evaluated over one batch of inputs."""

    inputs: Sequence[Sequence]
    """The batch, as given."""
    lengths: np.ndarray
    """[batch] int: the length of each input."""
    mask: np.ndarray
    """[batch, pos] bool: position exists in the input."""
    definitions: dict[str, SOpArray | SelectorArray]
    """Definition name -> its values, for every definition (used by the output or not)."""
    output: SOpArray
    """The program's returned SOp; its failures are exactly the undefined inputs."""

    def outputs(self) -> list[list | None]:
        """The output sequence of each input, None where the program is undefined on it."""
        values = self.output.values()
        lengths = np.unique(self.lengths).tolist()
        if len(lengths) == 1:  # one length (as in dsl.domain's batches): one slice
            outputs = values[:, : lengths[0]].tolist()
        else:  # one slice per distinct length, not one per input
            outputs = [None] * len(self.inputs)
            for length in lengths:
                rows = np.flatnonzero(self.lengths == length)
                for b, row in zip(rows.tolist(), values[rows, :length].tolist()):
                    outputs[b] = row
        for b in self.output.failures:
            outputs[b] = None
        return outputs


def evaluate(program: ast.Program, inputs: Sequence[Sequence], *, undefined: str = "raise"):
    """The program's output on each input, with tracr's semantics.

    undefined="raise": an input on which tracr's evaluator raises makes this raise
    EvaluationError naming the input. undefined="mark": that input's output is None.
    """
    if undefined not in ("raise", "mark"):
        raise ValueError(f"undefined must be 'raise' or 'mark', got {undefined!r}")
    evaluation = evaluate_arrays(program, inputs)
    if undefined == "raise" and evaluation.output.failures:
        first = min(evaluation.output.failures)
        raise EvaluationError(
            f"the program is undefined on input {list(evaluation.inputs[first])!r}: "
            f"{evaluation.output.failures[first]}"
        )
    return evaluation.outputs()


def evaluate_arrays(
    program: ast.Program,
    inputs: Sequence[Sequence],
    overrides: Mapping[str, SOpArray | SelectorArray] | None = None,
) -> Evaluation:
    """Every definition and the output of `program` as arrays over the batch `inputs`.

    `overrides` gives some definitions their values instead (an intervention: what the
    program computes when that variable holds other values, e.g. those of other inputs);
    each must have the batch's shape."""
    evaluator = _Evaluator(program, inputs)
    for name, value in (overrides or {}).items():
        if name not in evaluator.lookup:
            raise EvaluationError(f"override of an undefined name {name!r}")
        shape = value.matrix.shape if isinstance(value, SelectorArray) else value.codes.shape
        if shape[0] != evaluator.batch or shape[1] < evaluator.width:
            raise EvaluationError(f"override of {name!r}: its shape does not fit the batch")
        if isinstance(value, SelectorArray):  # a selector already evaluated on this batch
            width = evaluator.width
            evaluator._by_name[name] = SelectorArray(
                value.matrix[:, :width, :width], value.failures
            )
            continue
        evaluator._by_name[name] = SOpArray(
            value.codes[:, : evaluator.width], value.table, value.failures
        )
    definitions = {d.name: evaluator.resolve(d.name) for d in program.definitions}
    output = evaluator.node(program.output)
    if not isinstance(output, SOpArray):
        raise EvaluationError("the program returns a selector; it must return an SOp")
    return Evaluation(evaluator.inputs, evaluator.lengths, evaluator.mask, definitions, output)


# --------------------------------------------------------------------------
# Value tables.
# --------------------------------------------------------------------------


def _identity(value) -> tuple:
    # 1, 1.0 and True are equal in Python but must stay distinct values here,
    # so that an output keeps the type tracr's evaluator gives it.
    return (type(value), value)


def _object_array(values: Sequence) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):  # one by one: a tuple value stays one element
        array[index] = value
    return array


def _encode(values: Sequence) -> tuple[np.ndarray, tuple]:
    """Codes into a table of the distinct values (first occurrence order)."""
    try:
        if len(set(map(type, values))) <= 1:
            # One type (the usual case): distinct values never compare equal, so plain
            # dict keys are exact, and the lookups run at C speed.
            index = {value: code for code, value in enumerate(dict.fromkeys(values))}
            codes = np.fromiter(map(index.__getitem__, values), dtype=np.int64, count=len(values))
            return codes, tuple(index)
        by_identity: dict = {}
        table: list = []
        codes = np.empty(len(values), dtype=np.int64)
        for position, value in enumerate(values):
            code = by_identity.setdefault(_identity(value), len(table))
            if code == len(table):
                table.append(value)
            codes[position] = code
        return codes, tuple(table)
    except TypeError:
        raise EvaluationError(f"a value is not hashable: {values!r:.200}") from None


def _used_codes(codes: np.ndarray, live: np.ndarray, table_size: int) -> list[int]:
    """The codes that occur at live positions, ascending."""
    occurring = codes.ravel() if live.all() else codes[live]
    return np.flatnonzero(np.bincount(occurring, minlength=table_size)).tolist()


def _merge_failures(*parts: Mapping[int, str]) -> dict[int, str]:
    merged: dict[int, str] = {}
    for part in parts:
        for index, reason in part.items():
            merged.setdefault(index, reason)
    return merged


def _failed_mask(failures: Mapping[int, str], batch: int) -> np.ndarray:
    failed = np.zeros(batch, dtype=bool)
    if failures:
        failed[list(failures)] = True
    return failed


# --------------------------------------------------------------------------
# The evaluator.
# --------------------------------------------------------------------------


class _Evaluator:
    def __init__(self, program: ast.Program, inputs: Sequence[Sequence]):
        self.program = program
        self.lookup = program.lookup()
        self.inputs = inputs
        self.batch = len(inputs)
        self.lengths = np.array(list(map(len, inputs)), dtype=np.int64).reshape(self.batch)
        self.width = int(self.lengths.max()) if self.batch else 0
        self.mask = np.arange(self.width)[None, :] < self.lengths[:, None]  # [batch, pos]
        self.padded = not self.mask.all()  # False: masking can be skipped
        self._by_name: dict[str, SOpArray | SelectorArray] = {}
        self._in_progress: set[str] = set()
        self._by_node: dict[int, SOpArray | SelectorArray] = {}

    @functools.cached_property
    def pair_mask(self) -> np.ndarray:
        """[batch, query, key] bool: both positions exist."""
        return self.mask[:, :, None] & self.mask[:, None, :]

    def resolve(self, name: str):
        if name in self._by_name:
            return self._by_name[name]
        if name not in self.lookup:
            raise EvaluationError(f"undefined name {name!r}")
        if name in self._in_progress:
            raise EvaluationError(f"definition {name!r} refers to itself")
        self._in_progress.add(name)
        value = self.node(self.lookup[name])
        self._in_progress.discard(name)
        self._by_name[name] = value
        return value

    def node(self, node: ast.Node):
        # Keyed by identity: the program keeps its nodes alive, and hashing deep
        # frozen dataclasses structurally on every visit would be quadratic.
        cached = self._by_node.get(id(node))
        if cached is None:
            handler = EVALUATORS.get(type(node))
            if handler is None:
                raise EvaluationError(f"cannot evaluate {type(node).__name__} node {node!r}")
            cached = self._by_node[id(node)] = handler(self, node)
        return cached

    def sop(self, node: ast.Node) -> SOpArray:
        value = self.node(node)
        if not isinstance(value, SOpArray):
            raise EvaluationError(f"expected an SOp, got a selector: {node!r}")
        return value

    def selector(self, node: ast.Node) -> SelectorArray:
        value = self.node(node)
        if not isinstance(value, SelectorArray):
            raise EvaluationError(f"expected a selector, got an SOp: {node!r}")
        return value

    def live(self, failures: Mapping[int, str]) -> np.ndarray:
        """[batch, pos] bool: positions of inputs still defined."""
        if not failures:
            return self.mask
        return self.mask & ~_failed_mask(failures, self.batch)[:, None]

    def fail_where(self, present: np.ndarray, reasons: dict[int, str], reason: str) -> None:
        """Record `reason` for each input b with present[b] (first reason wins)."""
        for b in np.flatnonzero(present):
            reasons.setdefault(int(b), reason)

    def apply_per_code(
        self, codes: np.ndarray, table_size: int, live: np.ndarray, apply: Callable[[int], object]
    ) -> tuple[np.ndarray, tuple, dict[int, str]]:
        """Apply `apply` once per distinct live code; re-encode; failures where it raised."""
        used = _used_codes(codes, live, table_size)
        results: list = []
        raised: list[tuple[int, str]] = []
        for code in used:
            try:
                results.append(apply(code))
            except Exception as error:  # noqa: BLE001 - tracr lets any exception escape
                results.append(None)
                raised.append((code, f"{type(error).__name__}: {error}"))
        result_codes, table = _encode(results)
        remap = np.zeros(max(table_size, 1), dtype=np.int64)
        remap[used] = result_codes
        failures: dict[int, str] = {}
        for code, reason in raised:
            self.fail_where(((codes == code) & live).any(axis=1), failures, reason)
        return remap[codes], table or (None,), failures


def _eval_name(ev: _Evaluator, node: ast.Name):
    return ev.resolve(node.id)


def _eval_tokens(ev: _Evaluator, node: ast.Tokens) -> SOpArray:
    flat = list(itertools.chain.from_iterable(ev.inputs))
    flat_codes, table = _encode(flat)
    if ev.padded:
        codes = np.zeros((ev.batch, ev.width), dtype=np.int64)
        codes[ev.mask] = flat_codes
    else:
        codes = flat_codes.reshape(ev.batch, ev.width)
    return SOpArray(codes, table or (None,), {})


def _eval_indices(ev: _Evaluator, node: ast.Indices) -> SOpArray:
    codes = np.broadcast_to(np.arange(ev.width, dtype=np.int64), (ev.batch, ev.width))
    return SOpArray(codes, tuple(range(ev.width)) or (None,), {})


def _eval_full(ev: _Evaluator, node: ast.Full) -> SOpArray:
    return SOpArray(np.zeros((ev.batch, ev.width), dtype=np.int64), (node.value,), {})


def _eval_map(ev: _Evaluator, node: ast.Map) -> SOpArray:
    arg = ev.sop(node.arg)
    function = make_callable(node.fn)

    def apply(code):
        value = arg.table[code]
        return None if value is None else function(value)

    live = ev.live(arg.failures)
    codes, table, raised = ev.apply_per_code(arg.codes, len(arg.table), live, apply)
    reason = f"map {_describe(node.fn)}: "
    own = {b: reason + why for b, why in raised.items()}
    return SOpArray(codes, table, _merge_failures(arg.failures, own))


def _eval_sequence_map(ev: _Evaluator, node: ast.SequenceMap) -> SOpArray:
    left, right = ev.sop(node.left), ev.sop(node.right)
    function = make_callable(node.fn)
    width = len(right.table)
    pair_codes = left.codes * width + right.codes

    def apply(code):
        x, y = left.table[code // width], right.table[code % width]
        return None if x is None or y is None else function(x, y)

    failures = _merge_failures(left.failures, right.failures)
    live = ev.live(failures)
    codes, table, raised = ev.apply_per_code(pair_codes, len(left.table) * width, live, apply)
    reason = f"sequence_map {_describe(node.fn)}: "
    own = {b: reason + why for b, why in raised.items()}
    return SOpArray(codes, table, _merge_failures(failures, own))


def _eval_select(ev: _Evaluator, node: ast.Select) -> SelectorArray:
    keys, queries = ev.sop(node.keys), ev.sop(node.queries)
    predicate = make_callable(node.predicate)
    failures = _merge_failures(keys.failures, queries.failures)
    live = ev.live(failures)
    selects = np.zeros((len(keys.table), len(queries.table)), dtype=bool)
    reasons: dict[tuple[int, int], str] = {}
    used_queries = _used_codes(queries.codes, live, len(queries.table))
    for k in _used_codes(keys.codes, live, len(keys.table)):
        for q in used_queries:
            try:
                selects[k, q] = bool(predicate(keys.table[k], queries.table[q]))
            except Exception as error:  # noqa: BLE001 - as tracr: any exception is undefined
                reasons[k, q] = f"{type(error).__name__}: {error}"
    own: dict[int, str] = {}
    if reasons:
        # tracr compares every key with every query of an input: it raises on input b
        # when b holds a failing key value and a failing query value at any positions.
        key_present = _presence(keys.codes, live, len(keys.table))
        query_present = _presence(queries.codes, live, len(queries.table))
        for (k, q), reason in reasons.items():
            both = key_present[:, k] & query_present[:, q]
            ev.fail_where(both, own, f"select {_describe(node.predicate)}: {reason}")
    # matrix[b, q, k] = selects[key code at k, query code at q], as one flat take
    flat_index = keys.codes[:, None, :] * selects.shape[1] + queries.codes[:, :, None]
    matrix = np.take(selects.ravel(), flat_index)
    if ev.padded:
        matrix &= ev.pair_mask
    return SelectorArray(matrix, _merge_failures(failures, own))


def _presence(codes: np.ndarray, live: np.ndarray, table_size: int) -> np.ndarray:
    present = np.zeros((codes.shape[0], table_size), dtype=bool)
    rows = np.broadcast_to(np.arange(codes.shape[0])[:, None], codes.shape)
    present[rows[live], codes[live]] = True
    return present


def _eval_select_and(ev: _Evaluator, node: ast.SelectAnd) -> SelectorArray:
    left, right = ev.selector(node.left), ev.selector(node.right)
    return SelectorArray(left.matrix & right.matrix, _merge_failures(left.failures, right.failures))


def _eval_select_or(ev: _Evaluator, node: ast.SelectOr) -> SelectorArray:
    left, right = ev.selector(node.left), ev.selector(node.right)
    return SelectorArray(left.matrix | right.matrix, _merge_failures(left.failures, right.failures))


def _eval_select_not(ev: _Evaluator, node: ast.SelectNot) -> SelectorArray:
    inner = ev.selector(node.inner)
    matrix = ~inner.matrix
    if ev.padded:
        matrix &= ev.pair_mask
    return SelectorArray(matrix, dict(inner.failures))


def _eval_selector_width(ev: _Evaluator, node: ast.SelectorWidth) -> SOpArray:
    selector = ev.selector(node.selector)
    widths = _row_counts(selector.matrix)
    return SOpArray(widths, tuple(range(ev.width + 1)), dict(selector.failures))


def _eval_aggregate(ev: _Evaluator, node: ast.Aggregate) -> SOpArray:
    selector, source = ev.selector(node.selector), ev.sop(node.sop)
    failures = _merge_failures(selector.failures, source.failures)
    matrix = selector.matrix  # [batch, query, key]
    count = _row_counts(matrix)  # [batch, query]
    single = _single_selected(matrix, source.codes)  # [batch, query], where count == 1
    default_code = len(source.table)
    codes = np.where(count == 1, single, default_code)
    table = source.table + (node.default,)
    own: dict[int, str] = {}

    several = count >= 2
    if several.any():
        is_number = np.array([isinstance(v, NUMBER_TYPES) for v in source.table], dtype=bool)
        if not is_number.all():
            selects_non_number = (matrix & ~is_number[source.codes][:, None, :]).any(axis=2)
            bad = (several & selects_non_number).any(axis=1) & ~_failed_mask(failures, ev.batch)
            ev.fail_where(bad, own, "aggregate selects several values that are not all numbers")
        # tracr sums the selected values left to right: do the same, for the same floats.
        numbers = np.array([_as_float(v) if ok else 0.0 for v, ok in zip(source.table, is_number)])
        position_values = numbers[source.codes]  # [batch, key]
        total = np.zeros(count.shape, dtype=np.float64)
        for key in range(ev.width):
            total += np.where(matrix[:, :, key], position_values[:, None, key], 0.0)
        means, mean_codes = np.unique(total[several] / count[several], return_inverse=True)
        codes[several] = len(table) + mean_codes
        table += tuple(means.tolist())
    if ev.padded:
        codes[~ev.mask] = 0
    return _compact(codes, table, _merge_failures(failures, own))


def _row_counts(matrix: np.ndarray) -> np.ndarray:
    """[batch, query] how many keys each query selects."""
    # A loop over the (short) key axis beats numpy's reduction over a short last axis.
    counts = np.zeros(matrix.shape[:2], dtype=np.int64)
    for key in range(matrix.shape[2]):
        counts += matrix[:, :, key]
    return counts


def _single_selected(matrix: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """[batch, query] the code at the selected key (meaningful where exactly one is selected)."""
    single = np.zeros(matrix.shape[:2], dtype=np.int64)
    for key in range(matrix.shape[2]):
        single += matrix[:, :, key] * codes[:, None, key]
    return single


def _as_float(value) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond float range: tracr's mean would overflow too
        return float("inf") if value > 0 else float("-inf")


def _compact(codes: np.ndarray, table: tuple, failures: dict[int, str]) -> SOpArray:
    """Drop repeated and unused table entries."""
    used = _used_codes(codes, np.ones(codes.shape, dtype=bool), len(table))
    new_codes, new_table = _encode([table[c] for c in used])
    remap = np.zeros(len(table), dtype=np.int64)
    remap[used] = new_codes
    return SOpArray(remap[codes], new_table or (None,), failures)


def _describe(fn: ast.Function) -> str:
    if isinstance(fn, ast.Comparison):
        return fn.op
    if isinstance(fn, ast.Table):
        return "table"
    return "lambda"


EVALUATORS: dict[type, Callable] = {
    ast.Name: _eval_name,
    ast.Tokens: _eval_tokens,
    ast.Indices: _eval_indices,
    ast.Full: _eval_full,
    ast.Map: _eval_map,
    ast.SequenceMap: _eval_sequence_map,
    ast.Aggregate: _eval_aggregate,
    ast.SelectorWidth: _eval_selector_width,
    ast.Select: _eval_select,
    ast.SelectAnd: _eval_select_and,
    ast.SelectOr: _eval_select_or,
    ast.SelectNot: _eval_select_not,
}
