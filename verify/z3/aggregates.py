"""`selector_width` and `aggregate`: finite tables per row, else counts and means over the row."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import z3

from dsl import ast
from verify.z3 import limits
from verify.z3.cells import (
    CODE,
    FALSE,
    RAISES,
    REAL,
    TRUE,
    Cell,
    EncodedSOp,
    fraction,
    if_chain,
    is_number,
    real_literal,
    simplify,
)
from verify.z3.counting import (
    count_selected,
    group_row,
    none_weight,
    number_weight,
    piecewise_term,
)
from verify.z3.encoder import Encoder, cells_equal
from verify.z3.tables import bool_tree, entries, has_none


def _live(row: Sequence[Cell]) -> list[int]:
    """Key positions that may be selected (a finite constant False never is)."""
    return [j for j, c in enumerate(row) if not _never(c)]


def _never(cell: Cell) -> bool:
    if cell.finite is not None:
        return not any(e is not RAISES and e for e in cell.finite.table)
    return z3.is_false(cell.value)


def _count(row: Sequence[Cell], live: list[int]) -> z3.ArithRef:
    if not live:
        return z3.IntVal(0)
    return z3.Sum([z3.If(row[j].value, z3.IntVal(1), z3.IntVal(0)) for j in live])


def _width(enc: Encoder, query: int, row: Sequence[Cell], live: list[int]) -> Cell:
    """How many keys the row selects (a Real cell), counted by token value where it can be."""
    grouping = group_row(enc.inputs, query, row, live)
    if grouping is None:
        return Cell(simplify(z3.ToReal(_count(row, live))), FALSE)
    counted = count_selected(enc.inputs, grouping)
    if not grouping.others:
        return Cell(piecewise_term(enc.inputs, counted), FALSE, piecewise=counted)
    others = z3.ToReal(_count(row, list(grouping.others)))
    return Cell(simplify(piecewise_term(enc.inputs, counted) + others), FALSE)


def encode_selector_width(enc: Encoder, node: ast.SelectorWidth) -> EncodedSOp:
    cells = []
    for query, row in enumerate(enc.selector(node.selector)):
        finite = enc.combine(row, lambda *selected: sum(selected))
        if finite is not None:
            cells.append(enc.finite_cell(REAL, finite))
        else:
            cells.append(_width(enc, query, row, _live(row)))
    return EncodedSOp(REAL, tuple(cells), frozenset(range(enc.length + 1)))


def _mean(selected: list, default):
    """tracr's `_mean`, with the interpreter's float sum for several numbers."""
    if not selected:
        return default
    if len(selected) == 1:
        return selected[0]
    if not all(is_number(v) for v in selected):
        return RAISES
    total = 0.0
    for v in selected:
        total += float(v)
    return total / len(selected)


def _one_value(selected: list) -> bool:
    return all(v == selected[0] for v in selected[1:])


def encode_aggregate(enc: Encoder, node: ast.Aggregate) -> EncodedSOp:
    matrix = enc.selector(node.selector)
    source = enc.sop(node.sop)
    default = node.default
    numeric = source.kind == REAL and (default is None or is_number(default))
    if not numeric:
        source = enc.as_code(source)
    if numeric:
        values, exact = None, False
        if source.values is not None:
            means = _possible_means(list(source.values), enc.length)
            values = source.values | _set_of(default) | (means or frozenset())
            exact = source.exact and means is not None
        kind, symbolic = REAL, _aggregate_numbers
    else:
        means = _possible_means([v for v in source.values if is_number(v)], enc.length)
        values, exact = source.values | _set_of(default) | (means or frozenset()), True
        kind = CODE

        def symbolic(enc, query, row, live, source, default):
            return _aggregate_codes(enc, query, row, live, source, default, means)

    categorical = node.encoding == ast.CATEGORICAL and enc.wants_single_valued
    cells, tables = [], []
    for query, row in enumerate(matrix):
        live = _live(row)
        gathered = [row[j] for j in live] + [source.cells[j] for j in live]
        finite = enc.combine(
            gathered, _on_selection(len(live), lambda chosen: _mean(chosen, default))
        )
        tables.append(finite)
        if finite is not None:
            cells.append(enc.finite_cell(kind, finite))
            if categorical:
                single = enc.combine(gathered, _on_selection(len(live), _one_value))
                # An undefined input (RAISES) is left to the undefinedness rule, not excluded here.
                enc.single_valued.append(
                    bool_tree(enc.inputs, single, "single", lambda e: e is not False)
                )
            continue
        cells.append(symbolic(enc, query, row, live, source, default))
        if categorical:
            enc.single_valued.append(_at_most_one_value(enc, row, live, source))
    if all(t is not None for t in tables):
        return EncodedSOp(kind, tuple(cells), entries(tables), has_none(tables))
    may_be_none = default is None or source.may_be_none
    if values is not None:
        values = values | entries(tables)
    return EncodedSOp(kind, tuple(cells), values, may_be_none, exact)


def _on_selection(count: int, function: Callable[[list], object]) -> Callable:
    """(selector entries..., source values...) of `count` keys -> function(the selected values)."""
    return lambda *entries: function([v for s, v in zip(entries[:count], entries[count:]) if s])


def _set_of(value) -> frozenset:
    return frozenset() if value is None else frozenset([value])


def _at_most_one_value(enc: Encoder, row, live, source: EncodedSOp) -> z3.BoolRef:
    constraints = [
        z3.Or(
            z3.Not(row[j].value),
            z3.Not(row[k].value),
            cells_equal(source, j, source, k, enc.inputs),
        )
        for j, k in itertools.combinations(live, 2)
    ]
    return simplify(z3.And(constraints)) if constraints else TRUE


def _selected_none(source: EncodedSOp, row, live) -> z3.BoolRef:
    if not source.may_be_none:
        return FALSE
    return z3.Or([z3.And(row[j].value, source.cells[j].none) for j in live])


def _aggregate_numbers(enc: Encoder, query, row, live, source: EncodedSOp, default) -> Cell:
    default_value = z3.RealVal(0) if default is None else real_literal(default)
    grouping = group_row(enc.inputs, query, row, live, source.cells)
    others = live if grouping is None else list(grouping.others)
    width = _count(row, others)
    terms = [z3.If(row[j].value, source.cells[j].value, z3.RealVal(0)) for j in others]
    selected_none = _selected_none(source, row, others)
    if grouping is not None:

        def counted(weight=None):
            return piecewise_term(enc.inputs, count_selected(enc.inputs, grouping, weight))

        width = width + counted()
        terms.append(counted(number_weight))
        if source.may_be_none:
            selected_none = z3.Or(selected_none, counted(none_weight) >= 1)
    width = simplify(width)
    total = z3.Sum(terms) if terms else z3.RealVal(0)
    # The mean as a chain over the possible counts: division by constants stays linear.
    means = [(width == n, total / n) for n in range(2, len(live) + 1)]
    value = z3.If(width == 0, default_value, z3.If(width == 1, total, if_chain(means, total)))
    enc.fail_when(z3.And(width >= 2, selected_none))
    none = z3.Or(z3.And(width == 0, z3.BoolVal(default is None)), z3.And(width == 1, selected_none))
    return Cell(simplify(value), simplify(none))


def _possible_means(numbers: list, length: int) -> frozenset | None:
    """Every mean of 2..length of the numbers (repeats allowed); None when there are too many."""
    if not numbers:
        return frozenset()
    values = {fraction(v) for v in numbers}
    sums, means = set(values), set()
    for count in range(2, length + 1):
        sums = {a + b for a in sums for b in values}
        if len(sums) > limits.MAX_MEANS:
            return None
        means |= {float(total / count) for total in sums}
    return frozenset(means)


def _aggregate_codes(enc: Encoder, query, row, live, source: EncodedSOp, default, means) -> Cell:
    """An aggregate whose values are not all numbers; `means`: the averages it may take."""
    numbers = [v for v in source.values if is_number(v)]
    default_code = z3.IntVal(0) if default is None else z3.IntVal(enc.universe.code(default))
    width = _width(enc, query, row, live).value
    single = if_chain([(row[j].value, source.cells[j].value) for j in live], z3.IntVal(0))
    is_selected_number = [
        z3.And(
            row[j].value,
            z3.Not(source.cells[j].none),
            z3.Or([source.cells[j].value == enc.universe.code(v) for v in numbers]),
        )
        for j in live
    ]
    not_all_numbers = z3.Or(
        [z3.And(row[j].value, z3.Not(n)) for j, n in zip(live, is_selected_number)]
    )
    enc.fail_when(z3.And(width >= 2, not_all_numbers))
    if numbers and means is None:
        enc.escape_when(
            z3.And(width >= 2, z3.Not(not_all_numbers)),
            "an aggregate averaging too many numbers of an SOp that also holds non-numbers",
        )
    mean_code = z3.IntVal(0)
    if numbers and means:
        total = z3.Sum(
            [
                z3.If(row[j].value, _numeric_value(enc, source.cells[j], numbers), z3.RealVal(0))
                for j in live
            ]
        )
        mean = if_chain([(width == n, total / n) for n in range(2, len(live) + 1)], total)
        mean_code = if_chain(
            [(mean == real_literal(m), z3.IntVal(enc.universe.code(m))) for m in sorted(means)],
            z3.IntVal(0),
        )
    value = z3.If(width == 0, default_code, z3.If(width == 1, single, mean_code))
    selected_none = _selected_none(source, row, live)
    none = z3.Or(z3.And(width == 0, z3.BoolVal(default is None)), z3.And(width == 1, selected_none))
    return Cell(simplify(value), simplify(none))


def _numeric_value(enc: Encoder, cell: Cell, numbers: list) -> z3.ArithRef:
    """The number a CODE cell holds (0 when it holds something else)."""
    cases = [(cell.value == enc.universe.code(v), real_literal(v)) for v in numbers]
    return if_chain(cases, z3.RealVal(0))
