"""`map` and `sequence_map`: finite tables, else Z3 arithmetic or a table over the argument values."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from fractions import Fraction

import z3

from dsl import ast
from dsl.functions import make_callable
from verify.z3 import counting, limits
from verify.z3.arithmetic import Arithmetic, is_arithmetic, to_real
from verify.z3.cells import (
    FALSE,
    RAISES,
    REAL,
    Cell,
    EncodedSOp,
    Unsupported,
    conjunction,
    disjunction,
    fraction,
    if_chain,
    is_number,
    kind_of,
    rational,
    simplify,
)
from verify.z3.encoder import Encoder
from verify.z3.tables import entries, guarded, has_none


def encode_map(enc: Encoder, node: ast.Map) -> EncodedSOp:
    return _apply_function(enc, node.fn, [enc.sop(node.arg)])


def encode_sequence_map(enc: Encoder, node: ast.SequenceMap) -> EncodedSOp:
    return _apply_function(enc, node.fn, [enc.sop(node.left), enc.sop(node.right)])


def _apply_function(enc: Encoder, fn: ast.Function, args: list[EncodedSOp]) -> EncodedSOp:
    """map / sequence_map: None in any argument gives None without calling `fn` (tracr)."""
    function = make_callable(fn)

    def apply(*values):
        return None if any(v is None for v in values) else function(*values)

    tables = [enc.combine([a.cells[p] for a in args], apply) for p in range(enc.length)]
    seen = entries(tables)
    if all(t is not None for t in tables):
        kind = kind_of(seen)
        cells = tuple(enc.finite_cell(kind, t) for t in tables)
        return EncodedSOp(kind, cells, frozenset(seen), has_none(tables))
    # Where every argument's values are known, the function is tabulated over them, so a
    # lambda and a table computing the same map get the same (canonical) term.
    known = all(a.values is not None and a.exact for a in args)
    if isinstance(fn, ast.Table) and not known:
        symbolic = _table_lookup(fn, args)
    elif (
        not known
        and isinstance(fn, ast.Lambda)
        and all(a.kind == REAL for a in args)
        and is_arithmetic(fn)
    ):
        symbolic = _arithmetic_map(fn, args)
    else:
        symbolic = _tabulated_map(function, args)
    kind, values, may_be_none, exact, encode_position = symbolic
    cells = []
    for position, finite in enumerate(tables):
        if finite is not None:
            cells.append(enc.finite_cell(kind, finite))
        else:
            cells.append(encode_position(enc, position, _none_of(args, position)))
    values = None if values is None else values | seen
    return EncodedSOp(kind, tuple(cells), values, may_be_none or has_none(tables), exact)


def _none_of(args: list[EncodedSOp], position: int) -> z3.BoolRef:
    flags = [a.cells[position].none for a in args if a.may_be_none]
    return simplify(z3.Or(flags)) if flags else FALSE


def _table_lookup(fn: ast.Table, args: list[EncodedSOp]):
    entries = [(k if len(args) > 1 else (k,), v) for k, v in fn.entries]
    results = frozenset(v for _, v in entries if v is not None)
    kind = kind_of(results)
    may_be_none = any(a.may_be_none for a in args) or any(v is None for _, v in entries)

    def encode_position(enc: Encoder, position: int, none_in) -> Cell:
        cases = []
        for key, value in entries:
            hit = conjunction([enc.matches(a, a.cells[position], k) for a, k in zip(args, key)])
            cases.append((hit, value))
        hits = disjunction([hit for hit, _ in cases])
        enc.fail_when(z3.And(z3.Not(none_in), z3.Not(hits)))
        return _result_cell(enc, kind, cases, none_in)

    return kind, results, may_be_none, True, encode_position


def _result_cell(enc: Encoder, kind: str, cases, none_in: z3.BoolRef) -> Cell:
    """A cell holding the value of the first case whose condition holds."""
    grouped: dict = {}
    none_cases = []
    for condition, value in cases:
        if value is None:
            none_cases.append(condition)
        else:
            grouped.setdefault(value, []).append(condition)
    chain = [
        (disjunction(conditions), enc.literal(kind, value)) for value, conditions in grouped.items()
    ]
    otherwise = z3.RealVal(0) if kind == REAL else z3.IntVal(0)
    return Cell(simplify(if_chain(chain, otherwise)), simplify(disjunction([none_in, *none_cases])))


def _tabulated_map(function: Callable, args: list[EncodedSOp]):
    domains = [finite_values(a, "lambda") for a in args]
    check_table_size(domains, "lambda")
    outcomes = [(combo, guarded(function, combo)) for combo in itertools.product(*domains)]
    results = frozenset(r for _, r in outcomes if r is not RAISES and r is not None)
    kind = kind_of(results)
    may_be_none = any(a.may_be_none for a in args) or any(r is None for _, r in outcomes)
    affine = _affine_fit(outcomes) if all(a.kind == REAL for a in args) and kind == REAL else None
    # An affine map that never raises nor gives None is its term alone: no cases needed.
    total = affine is not None and all(r is not RAISES and r is not None for _, r in outcomes)

    def affine_cell(enc: Encoder, position: int, none: z3.BoolRef) -> Cell:
        *slopes, offset = affine
        cells = [arg.cells[position] for arg in args]
        # Over counted values, one normal form: `n - #{t_k >= t_q}` is `#{t_k < t_q}`.
        form = counting.affine(offset, list(zip(slopes, cells)))
        if form is not None:
            return Cell(counting.piecewise_term(enc.inputs, form), none, piecewise=form)
        terms = [rational(a) * cell.value for a, cell in zip(slopes, cells)]
        return Cell(simplify(rational(offset) + z3.Sum(terms)), none)

    def encode_position(enc: Encoder, position: int, none_in) -> Cell:
        if total:
            for arg, domain in zip(args, domains):
                escape_outside(enc, arg, domain, position, none_in, "lambda")
            return affine_cell(enc, position, none_in)
        cases, raises = [], []
        for combo, result in outcomes:
            hit = conjunction([enc.matches(a, a.cells[position], v) for a, v in zip(args, combo)])
            if result is RAISES:
                raises.append(hit)
            else:
                cases.append((hit, result))
        if raises:
            enc.fail_when(z3.And(z3.Not(none_in), disjunction(raises)))
        for arg, domain in zip(args, domains):
            escape_outside(enc, arg, domain, position, none_in, "lambda")
        cell = _result_cell(enc, kind, cases, none_in)
        return cell if affine is None else affine_cell(enc, position, cell.none)

    return kind, results, may_be_none, True, encode_position


def _affine_fit(outcomes: list[tuple[tuple, object]]) -> tuple[Fraction, ...] | None:
    """Slopes and offset of an affine function matching every numeric outcome, or None.

    A map that is affine over its arguments' values (`x + 1`, `length - indices - 1`,
    the identity table) becomes that arithmetic term: one canonical form for all of them.
    """
    points = [
        (tuple(fraction(x) for x in combo), fraction(result))
        for combo, result in outcomes
        if result is not RAISES and result is not None
    ]
    if not points or any(
        not is_number(r) for _, r in outcomes if r is not RAISES and r is not None
    ):
        return None
    base_x, base_y = points[0]
    slopes = []
    for axis in range(len(base_x)):
        # Another point differing from the base point on this axis only.
        other = next(
            (
                (x, y)
                for x, y in points
                if x[axis] != base_x[axis]
                and all(x[i] == base_x[i] for i in range(len(x)) if i != axis)
            ),
            None,
        )
        slopes.append(
            Fraction(0) if other is None else (other[1] - base_y) / (other[0][axis] - base_x[axis])
        )
    offset = base_y - sum(a * x for a, x in zip(slopes, base_x))
    if all(sum(a * xi for a, xi in zip(slopes, x)) + offset == y for x, y in points):
        return (*slopes, offset)
    return None


def finite_values(sop: EncodedSOp, what: str) -> list:
    if sop.values is None:
        raise Unsupported(
            f"a {what} applied to a numerical SOp whose values are not finitely known"
        )
    # A float is the exact number its cell holds: values that round to one number
    # (2/3 - 1 + 2 * (2/3 - 1) + ... off by 1e-16) are that number once, the float
    # nearest to it, so a tabulated function gives that number one outcome.
    exact = {_exact_float(v) if isinstance(v, float) else v for v in sop.values}
    return sorted(exact, key=lambda v: (type(v).__name__, repr(v)))


def _exact_float(value: float) -> float:
    return float(fraction(value)) if math.isfinite(value) else value


def check_table_size(domains: list[list], what: str) -> None:
    size = 1
    for domain in domains:
        size *= max(len(domain), 1)
    if size > limits.TABULATION_LIMIT:
        raise Unsupported(
            f"a {what} over {size:,} argument combinations (limit {limits.TABULATION_LIMIT:,})"
        )


def escape_outside(enc: Encoder, arg: EncodedSOp, domain, position, none_in, what) -> None:
    """An argument whose values are only candidates (a mean) may hold a value outside them."""
    if arg.exact:
        return
    cell = arg.cells[position]
    inside = disjunction([enc.matches(arg, cell, v) for v in domain])
    enc.escape_when(
        z3.And(z3.Not(none_in), z3.Not(inside)),
        f"a {what} applied to a mean outside the values it was tabulated over",
    )


def _arithmetic_map(fn: ast.Lambda, args: list[EncodedSOp]):
    values = _image(fn, args)
    exact = values is not None and all(a.exact for a in args)

    def encode_position(enc: Encoder, position: int, none_in) -> Cell:
        env = {name: a.cells[position].value for name, a in zip(fn.params, args)}
        translator = Arithmetic(env, path=z3.Not(none_in))
        term = to_real(translator.translate(fn.body))
        for condition in translator.undefined:
            enc.fail_when(condition)
        return Cell(simplify(term), none_in)

    return REAL, values, any(a.may_be_none for a in args), exact, encode_position


def _image(fn: ast.Lambda, args: list[EncodedSOp]) -> frozenset | None:
    """The values a lambda takes over its arguments' values, when those are finitely known."""
    if any(a.values is None for a in args):
        return None
    size = 1
    for a in args:
        size *= max(len(a.values), 1)
    if size > limits.TABULATION_LIMIT:
        return None
    function = make_callable(fn)
    image = set()
    for combo in itertools.product(*(a.values for a in args)):
        result = guarded(function, combo)
        if result is not RAISES:
            image.add(result)
    return frozenset(image)
