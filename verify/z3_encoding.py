"""A `.rasp` program as Z3 terms, for one input length.

The input is one Z3 Int per position, the index of its token in the vocab.
Each SOp becomes one cell per position: a Z3 term for its value and a Z3 bool
for "the value is None" (tracr's undefined value, e.g. an aggregate's default);
a selector becomes a [query][key] matrix of cells holding Z3 bools. A value
term is one of two kinds, chosen per SOp from the values it can take:

- REAL: every value is a number (bools are 0/1, as Python's `True == 1`).
  Exact rationals, so means and arithmetic are exact. A float is read as the
  nearest fraction with denominator <= 10**6 (so the float 1/3 of a table
  matches the exact mean 1/3).
- CODE: some value is not a number. The term is an Int code from a `Universe`
  shared by both programs, one code per distinct value (Python equality: 1,
  1.0 and True share one).

Two layers make proofs fast:

1. Finite cells. A cell that depends on few input positions (its *support*)
   is computed concretely, as a table over every token assignment of its
   support, with the semantics of `dsl.evaluate`, and its Z3 term is built
   from the table as a canonical decision tree (positions ascending, tokens in
   vocab order, equal branches merged). Two programs computing the same
   function of the same positions get the *same* term, whatever their syntax
   (a lambda or a table, `<` or a flipped `>`), and Z3's hash-consing makes
   everything built on them equal too. Indices and constants have empty
   support, so a length-dependent computation is folded to constants.
2. Symbolic cells, where a support grows too large (typically after
   `selector_width` or `aggregate` over a whole row): maps apply a lambda as
   Z3 arithmetic where its body allows (numbers, arithmetic, comparisons,
   and/or/not, if-else, min/max/abs) and otherwise as a table over the values
   its arguments can take (as tracr's basis inference does); aggregates are
   the default on an empty selection, the selected value, the mean of several
   numbers (a chain over the count, so division stays by constants).

Besides the output cells, encoding collects three formulas over the input:
- `undefined`: tracr's evaluator (and `dsl.evaluate`) raises: a comparison
  with None, a lambda that raises, a table without the entry, an aggregate of
  several values that are not all numbers.
- `escapes`: the input reaches a value the encoding cannot represent exactly
  (a lambda tabulated over candidate values applied to a mean outside them;
  the possible means are listed exactly unless there are more than MAX_MEANS).
  The equivalence check excludes such inputs and answers unknown if one exists.
- `single_valued`: every categorical aggregate selects at most one distinct
  value (the precondition a compiled transformer needs).

The encoder is a dispatch table keyed by node type, like the interpreter.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import z3

from dsl import ast
from dsl.functions import make_callable

REAL = "real"
CODE = "code"
BOOL = "bool"  # selector cells

# A cell is computed concretely while its support has at most this many token assignments.
FINITE_LIMIT = 256
# A lambda or select predicate is tabulated over at most this many argument combinations.
TABULATION_LIMIT = 20_000
# Float constants are read as the nearest fraction with at most this denominator.
FLOAT_DENOMINATOR_LIMIT = 10**6
# A CODE aggregate of numbers lists its possible means while there are at most this many sums.
MAX_MEANS = 2_000
# `x ** n` is Z3 arithmetic for small constant integer exponents only.
MAX_POWER_EXPONENT = 8


class Unsupported(Exception):
    """The program uses something this encoding cannot express (the verdict is unknown)."""


class OutOfTime(Exception):
    """The time budget ran out while encoding (the verdict is unknown)."""


class _Raises:
    """A table entry where the evaluator raises (the input is undefined)."""

    def __repr__(self):
        return "RAISES"


RAISES = _Raises()


def is_number(value) -> bool:
    return isinstance(value, (int, float, bool))


def real_literal(value) -> z3.ArithRef:
    """A number as an exact Z3 rational."""
    if isinstance(value, bool):
        return z3.RealVal(int(value))
    if isinstance(value, int):
        return z3.RealVal(value)
    if not math.isfinite(value):
        raise Unsupported(f"the float {value!r} has no exact value")
    fraction = Fraction(value).limit_denominator(FLOAT_DENOMINATOR_LIMIT)
    return z3.Q(fraction.numerator, fraction.denominator)


class Universe:
    """Int codes for the values of CODE terms, shared by the programs compared."""

    def __init__(self):
        self._codes: dict = {}

    def code(self, value) -> int:
        if value is None:
            raise ValueError("None is a flag of a cell, never a code")
        try:
            return self._codes.setdefault(value, len(self._codes))
        except TypeError:
            raise Unsupported(f"the value {value!r} is not hashable") from None


@dataclass(frozen=True)
class Finite:
    """A cell as a table over every token assignment of the positions it depends on."""

    support: tuple[int, ...]
    """The input positions, ascending."""
    table: tuple
    """Entries in `itertools.product(range(len(vocab)), repeat=len(support))` order:
    a value, None, or RAISES."""


@dataclass(frozen=True)
class Cell:
    """One SOp value (or one selector entry) at one position."""

    value: z3.ExprRef
    """A Real, an Int code or a Bool (selectors); meaningless when `none` holds."""
    none: z3.BoolRef
    """The value is None."""
    finite: Finite | None = None
    """The cell's table when its support is small."""


@dataclass(frozen=True)
class EncodedSOp:
    """An SOp at every position of one length."""

    kind: str
    cells: tuple[Cell, ...]
    values: frozenset | None
    """The non-None values it can take; None when not finitely known."""
    may_be_none: bool = False
    exact: bool = True
    """`values` holds every value (else they are candidates: a mean may fall outside them)."""


Matrix = tuple[tuple[Cell, ...], ...]  # [query][key], Bool cells

FALSE = z3.BoolVal(False)
TRUE = z3.BoolVal(True)


@dataclass(frozen=True)
class Inputs:
    """The symbolic input of one length: a token index per position."""

    vocab: tuple
    variables: tuple[z3.ArithRef, ...]
    universe: Universe
    deadline: float = math.inf
    trees: dict = field(default_factory=dict)
    """Decision trees built so far, shared by the programs compared."""
    _tests: dict = field(default_factory=dict)

    def check_time(self) -> None:
        if time.perf_counter() >= self.deadline:
            raise OutOfTime

    def is_token(self, position: int, index: int) -> z3.BoolRef:
        """The token at `position` is vocab[index]."""
        key = (position, index)
        if key not in self._tests:
            self._tests[key] = self.variables[position] == index
        return self._tests[key]

    @property
    def length(self) -> int:
        return len(self.variables)

    @property
    def constraint(self) -> z3.BoolRef:
        return z3.And([z3.And(0 <= x, x < len(self.vocab)) for x in self.variables])

    def tokens_from_model(self, model: z3.ModelRef) -> list:
        return [self.vocab[model.eval(x, model_completion=True).as_long()] for x in self.variables]


def symbolic_inputs(
    vocab: Sequence, length: int, universe: Universe, deadline: float = math.inf
) -> Inputs:
    """Token variables for one length; encoding raises OutOfTime past `deadline` (perf_counter)."""
    variables = tuple(z3.Int(f"token_{i}") for i in range(length))
    return Inputs(tuple(vocab), variables, universe, deadline)


@dataclass(frozen=True)
class EncodedProgram:
    """A program at one length: its output cells and the formulas collected on the way."""

    output: EncodedSOp
    undefined: z3.BoolRef
    escapes: tuple[tuple[z3.BoolRef, str], ...]
    single_valued: z3.BoolRef


def encode_program(
    program: ast.Program, inputs: Inputs, *, single_valued: bool = False
) -> EncodedProgram:
    """Encode `program`; `single_valued` also builds that precondition (else it is left true)."""
    encoder = _Encoder(program, inputs, single_valued)
    output = encoder.sop(program.output)
    return EncodedProgram(
        output=output,
        undefined=_simplify(z3.Or(encoder.undefined)) if encoder.undefined else FALSE,
        escapes=tuple(encoder.escapes),
        single_valued=_simplify(z3.And(encoder.single_valued)) if encoder.single_valued else TRUE,
    )


def outputs_equal(a: EncodedSOp, b: EncodedSOp, inputs: Inputs) -> z3.BoolRef:
    """Python's `==` between the two outputs at every position (None == None)."""
    return z3.And([_cells_equal(a, i, b, i, inputs) for i in range(inputs.length)])


def outputs_equal_where_valued(a: EncodedSOp, b: EncodedSOp, inputs: Inputs) -> z3.BoolRef:
    """`a` equals `b` at every position where `b` is not None (there `a` is free)."""
    cells = []
    for i in range(inputs.length):
        same = _cells_equal(a, i, b, i, inputs)
        cells.append(z3.Or(b.cells[i].none, same) if b.may_be_none else same)
    return z3.And(cells)


def _simplify(term):
    return z3.simplify(term)


# --------------------------------------------------------------------------
# Finite cells: tables over token assignments, and their canonical terms.
# --------------------------------------------------------------------------


def _combine(tables: Sequence[Finite], vocab_size: int, function: Callable) -> Finite | None:
    """The table of `function` applied entrywise (None when the support is too large).

    The result keeps only the positions it really depends on, so a constant
    (`select(tokens, tokens, true)`) has an empty support and folds away.
    """
    support = tuple(sorted(set().union(*(t.support for t in tables))))
    if vocab_size ** len(support) > FINITE_LIMIT:
        return None
    slot = {position: index for index, position in enumerate(support)}
    # digits[s, a]: the token index of support position s in assignment a
    assignments = list(itertools.product(range(vocab_size), repeat=len(support)))
    digits = np.array(assignments, dtype=np.int64).reshape(len(assignments), len(support)).T
    columns = []
    for t in tables:
        flat = np.zeros(digits.shape[1], dtype=np.int64)
        for position in t.support:
            flat = flat * vocab_size + digits[slot[position]]
        columns.append(_object_array(t.table)[flat])
    memo: dict = {}
    entries = []
    for args in zip(*columns) if columns else [()] * len(assignments):
        # Keyed by type too: 1, 1.0 and True are equal but not interchangeable arguments.
        key = (args, tuple(type(a) for a in args))
        if key not in memo:
            memo[key] = RAISES if any(a is RAISES for a in args) else _guarded(function, args)
        entries.append(memo[key])
    return _reduced(support, entries, vocab_size)


def _object_array(values: Sequence) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        array[index] = value
    return array


def _reduced(support: tuple[int, ...], entries: list, vocab_size: int) -> Finite:
    """Drop the positions a table does not depend on."""
    ids: dict = {}
    codes = np.array([ids.setdefault((type(e), e), len(ids)) for e in entries], dtype=np.int64)
    shape = (vocab_size,) * len(support)
    codes = codes.reshape(shape)
    values = _object_array(entries).reshape(shape)
    kept = list(support)
    for axis in range(len(support) - 1, -1, -1):
        first = codes.take([0], axis=axis)
        if (codes == first).all():
            codes = first  # the axis stays, with one entry: shapes keep lining up
            values = values.take([0], axis=axis)
            del kept[axis]
    return Finite(tuple(kept), tuple(values.reshape(-1).tolist()))


def _guarded(function: Callable, args: list):
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - whatever the evaluator would raise makes the input undefined
        return RAISES


def _tree(inputs: Inputs, finite: Finite, tag: str, label: Callable, leaf: Callable) -> z3.ExprRef:
    """The canonical decision tree of a table: positions ascending, tokens in vocab order.

    `label` maps an entry to what the leaf shows (e.g. "is None"), `leaf` a
    label to its Z3 term. Equal tables give the same term object, memoized on
    the inputs so both programs share it; equal branches merge.
    """
    labels = tuple(label(e) for e in finite.table)
    key = (tag, finite.support, labels)
    cached = inputs.trees.get(key)
    if cached is not None:
        return cached
    size = len(inputs.vocab)

    def build(depth: int, table: tuple):
        if depth == len(finite.support):
            return leaf(table[0])
        step = len(table) // size
        parts = [table[v * step : (v + 1) * step] for v in range(size)]
        if all(part == parts[0] for part in parts):
            return build(depth + 1, parts[0])
        position = finite.support[depth]
        result = build(depth + 1, parts[-1])
        for v in range(size - 2, -1, -1):
            result = _ite(inputs.is_token(position, v), build(depth + 1, parts[v]), result)
        return result

    tree = inputs.trees[key] = build(0, labels)
    return tree


def _ite(condition: z3.BoolRef, then: z3.ExprRef, orelse: z3.ExprRef) -> z3.ExprRef:
    """z3.If without its argument coercion (the hot spot of building trees): same sorts only."""
    context = condition.ctx
    term = z3.Z3_mk_ite(context.ref(), condition.as_ast(), then.as_ast(), orelse.as_ast())
    return z3.z3._to_expr_ref(term, context)


def _bool_tree(inputs: Inputs, finite: Finite, tag: str, holds: Callable) -> z3.BoolRef:
    return _tree(inputs, finite, tag, holds, z3.BoolVal)


_FILLER = object()  # the value leaf of a None or RAISES entry (its flags say which)


# --------------------------------------------------------------------------
# The encoder.
# --------------------------------------------------------------------------


class _Encoder:
    def __init__(self, program: ast.Program, inputs: Inputs, single_valued: bool):
        self.lookup = program.lookup()
        self.inputs = inputs
        self.length = inputs.length
        self.universe = inputs.universe
        self.undefined: list[z3.BoolRef] = []
        self.escapes: list[tuple[z3.BoolRef, str]] = []
        self.wants_single_valued = single_valued
        self.single_valued: list[z3.BoolRef] = []
        self._by_node: dict[int, EncodedSOp | Matrix] = {}
        self._by_name: dict[str, EncodedSOp | Matrix] = {}

    def node(self, node: ast.Node):
        # Keyed by identity, as the interpreter does: the program keeps its nodes alive.
        cached = self._by_node.get(id(node))
        if cached is None:
            self.inputs.check_time()
            handler = ENCODERS.get(type(node))
            if handler is None:
                raise Unsupported(f"cannot encode {type(node).__name__} node")
            cached = self._by_node[id(node)] = handler(self, node)
        return cached

    def sop(self, node: ast.Node) -> EncodedSOp:
        value = self.node(node)
        if not isinstance(value, EncodedSOp):
            raise Unsupported(f"expected an SOp, got a selector: {node!r}")
        return value

    def selector(self, node: ast.Node) -> Matrix:
        value = self.node(node)
        if isinstance(value, EncodedSOp):
            raise Unsupported(f"expected a selector, got an SOp: {node!r}")
        return value

    def fail_when(self, condition: z3.BoolRef) -> None:
        condition = _simplify(condition)
        if not z3.is_false(condition):
            self.undefined.append(condition)

    def escape_when(self, condition: z3.BoolRef, reason: str) -> None:
        condition = _simplify(condition)
        if not z3.is_false(condition):
            self.escapes.append((condition, reason))

    def literal(self, kind: str, value) -> z3.ExprRef:
        if kind == BOOL:
            return z3.BoolVal(bool(value))
        if kind == REAL:
            if not is_number(value):
                raise Unsupported(f"a non-number {value!r} in a numeric SOp")
            return real_literal(value)
        return z3.IntVal(self.universe.code(value))

    def combine(self, cells: Sequence[Cell], function: Callable) -> Finite | None:
        if any(c.finite is None for c in cells):
            return None
        return _combine([c.finite for c in cells], len(self.inputs.vocab), function)

    def finite_cell(self, kind: str, finite: Finite) -> Cell:
        """A cell from its table; where an entry raises, the input is undefined."""
        filler = {REAL: z3.RealVal(0), CODE: z3.IntVal(0), BOOL: FALSE}[kind]

        def value_label(entry):
            return _FILLER if entry is None or entry is RAISES else entry

        def value_leaf(label):
            return filler if label is _FILLER else self.literal(kind, label)

        if any(entry is RAISES for entry in finite.table):
            self.undefined.append(_bool_tree(self.inputs, finite, "raises", lambda e: e is RAISES))
        value = _tree(self.inputs, finite, kind, value_label, value_leaf)
        none = _bool_tree(self.inputs, finite, "none", lambda e: e is None)
        return Cell(value, none, finite)

    def matches(self, sop: EncodedSOp, cell: Cell, value) -> z3.BoolRef:
        """The cell holds `value` (None included)."""
        if value is None:
            return cell.none
        if sop.kind == REAL:
            if not is_number(value):
                return FALSE
            same = cell.value == real_literal(value)
        else:
            same = cell.value == self.universe.code(value)
        return z3.And(z3.Not(cell.none), same) if sop.may_be_none else same

    def as_code(self, sop: EncodedSOp) -> EncodedSOp:
        """A REAL SOp with finitely many values as CODE cells."""
        if sop.kind == CODE:
            return sop
        if sop.values is None:
            raise Unsupported("a numerical SOp with unbounded values mixed with non-numbers")
        cells = []
        for cell in sop.cells:
            if cell.finite is not None:
                cells.append(self.finite_cell(CODE, cell.finite))
                continue
            chain = [
                (self.matches(sop, cell, v), z3.IntVal(self.universe.code(v))) for v in sop.values
            ]
            if not sop.exact:
                self.escape_when(
                    z3.And(z3.Not(cell.none), z3.Not(z3.Or([m for m, _ in chain]))),
                    "a mean of numbers stored beside non-numbers",
                )
            cells.append(Cell(_simplify(_if_chain(chain, z3.IntVal(0))), cell.none))
        return EncodedSOp(CODE, tuple(cells), sop.values, sop.may_be_none)


def _if_chain(cases: list[tuple[z3.BoolRef, z3.ExprRef]], otherwise: z3.ExprRef) -> z3.ExprRef:
    result = otherwise
    for condition, value in reversed(cases):
        result = z3.If(condition, value, result)
    return result


def _kind_of(values) -> str:
    return REAL if values is None or all(is_number(v) for v in values) else CODE


def _cells_equal(a: EncodedSOp, i: int, b: EncodedSOp, j: int, inputs: Inputs) -> z3.BoolRef:
    """Python's `==` between `a` at i and `b` at j, None == None included."""
    ca, cb = a.cells[i], b.cells[j]
    if ca.finite is not None and cb.finite is not None:
        table = _combine([ca.finite, cb.finite], len(inputs.vocab), lambda x, y: x == y)
        if table is not None:
            return _bool_tree(inputs, table, "true", lambda e: e is True)
    if a.kind == b.kind:
        same = ca.value == cb.value
    elif a.kind == REAL:
        same = _real_equals_code(ca.value, cb.value, b.values, inputs.universe)
    else:
        same = _real_equals_code(cb.value, ca.value, a.values, inputs.universe)
    if not (a.may_be_none or b.may_be_none):
        return same
    return z3.Or(z3.And(ca.none, cb.none), z3.And(z3.Not(ca.none), z3.Not(cb.none), same))


def _real_equals_code(real, code, code_values, universe) -> z3.BoolRef:
    numbers = [v for v in code_values or () if is_number(v)]
    return z3.Or([z3.And(code == universe.code(v), real == real_literal(v)) for v in numbers])


# ---- primitives -----------------------------------------------------------


def _encode_name(enc: _Encoder, node: ast.Name):
    if node.id not in enc._by_name:
        if node.id not in enc.lookup:
            raise Unsupported(f"undefined name {node.id!r}")
        enc._by_name[node.id] = enc.node(enc.lookup[node.id])
    return enc._by_name[node.id]


def _encode_tokens(enc: _Encoder, node: ast.Tokens) -> EncodedSOp:
    vocab = enc.inputs.vocab
    kind = _kind_of(vocab)
    cells = tuple(enc.finite_cell(kind, Finite((i,), vocab)) for i in range(enc.length))
    return EncodedSOp(kind, cells, frozenset(vocab))


def _encode_indices(enc: _Encoder, node: ast.Indices) -> EncodedSOp:
    cells = tuple(enc.finite_cell(REAL, Finite((), (i,))) for i in range(enc.length))
    return EncodedSOp(REAL, cells, frozenset(range(enc.length)))


def _encode_full(enc: _Encoder, node: ast.Full) -> EncodedSOp:
    values = frozenset() if node.value is None else frozenset([node.value])
    kind = _kind_of(values)
    cells = tuple(enc.finite_cell(kind, Finite((), (node.value,))) for _ in range(enc.length))
    return EncodedSOp(kind, cells, values, may_be_none=node.value is None)


# ---- maps -----------------------------------------------------------------


def _encode_map(enc: _Encoder, node: ast.Map) -> EncodedSOp:
    return _apply_function(enc, node.fn, [enc.sop(node.arg)])


def _encode_sequence_map(enc: _Encoder, node: ast.SequenceMap) -> EncodedSOp:
    return _apply_function(enc, node.fn, [enc.sop(node.left), enc.sop(node.right)])


def _apply_function(enc: _Encoder, fn: ast.Function, args: list[EncodedSOp]) -> EncodedSOp:
    """map / sequence_map: None in any argument gives None without calling `fn` (tracr)."""
    function = make_callable(fn)

    def apply(*values):
        return None if any(v is None for v in values) else function(*values)

    tables = [enc.combine([a.cells[p] for a in args], apply) for p in range(enc.length)]
    seen = _entries(tables)
    if all(t is not None for t in tables):
        kind = _kind_of(seen)
        cells = tuple(enc.finite_cell(kind, t) for t in tables)
        return EncodedSOp(kind, cells, frozenset(seen), _has_none(tables))
    # Where every argument's values are known, the function is tabulated over them, so a
    # lambda and a table computing the same map get the same (canonical) term.
    known = all(a.values is not None and a.exact for a in args)
    if isinstance(fn, ast.Table) and not known:
        symbolic = _table_lookup(fn, args)
    elif (
        not known
        and isinstance(fn, ast.Lambda)
        and all(a.kind == REAL for a in args)
        and _is_arithmetic(fn)
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
    return EncodedSOp(kind, tuple(cells), values, may_be_none or _has_none(tables), exact)


def _entries(tables: Sequence[Finite | None]) -> frozenset:
    """The values finite tables hold (None and RAISES left out)."""
    return frozenset(
        e for t in tables if t is not None for e in t.table if e is not None and e is not RAISES
    )


def _has_none(tables: Sequence[Finite | None]) -> bool:
    return any(e is None for t in tables if t is not None for e in t.table)


def _none_of(args: list[EncodedSOp], position: int) -> z3.BoolRef:
    flags = [a.cells[position].none for a in args if a.may_be_none]
    return _simplify(z3.Or(flags)) if flags else FALSE


def _table_lookup(fn: ast.Table, args: list[EncodedSOp]):
    entries = [(k if len(args) > 1 else (k,), v) for k, v in fn.entries]
    results = frozenset(v for _, v in entries if v is not None)
    kind = _kind_of(results)
    may_be_none = any(a.may_be_none for a in args) or any(v is None for _, v in entries)

    def encode_position(enc: _Encoder, position: int, none_in) -> Cell:
        cases = []
        for key, value in entries:
            hit = z3.And([enc.matches(a, a.cells[position], k) for a, k in zip(args, key)])
            cases.append((hit, value))
        hits = z3.Or([hit for hit, _ in cases]) if cases else FALSE
        enc.fail_when(z3.And(z3.Not(none_in), z3.Not(hits)))
        return _result_cell(enc, kind, cases, none_in)

    return kind, results, may_be_none, True, encode_position


def _result_cell(enc: _Encoder, kind: str, cases, none_in: z3.BoolRef) -> Cell:
    """A cell holding the value of the first case whose condition holds."""
    grouped: dict = {}
    none_cases = []
    for condition, value in cases:
        if value is None:
            none_cases.append(condition)
        else:
            grouped.setdefault(value, []).append(condition)
    chain = [(z3.Or(conditions), enc.literal(kind, value)) for value, conditions in grouped.items()]
    otherwise = z3.RealVal(0) if kind == REAL else z3.IntVal(0)
    return Cell(_simplify(_if_chain(chain, otherwise)), _simplify(z3.Or([none_in, *none_cases])))


def _tabulated_map(function: Callable, args: list[EncodedSOp]):
    domains = [_finite_values(a, "lambda") for a in args]
    _check_table_size(domains, "lambda")
    outcomes = [(combo, _guarded(function, combo)) for combo in itertools.product(*domains)]
    results = frozenset(r for _, r in outcomes if r is not RAISES and r is not None)
    kind = _kind_of(results)
    may_be_none = any(a.may_be_none for a in args) or any(r is None for _, r in outcomes)
    affine = _affine_fit(outcomes) if all(a.kind == REAL for a in args) and kind == REAL else None

    def encode_position(enc: _Encoder, position: int, none_in) -> Cell:
        cases, raises = [], []
        for combo, result in outcomes:
            hit = z3.And([enc.matches(a, a.cells[position], v) for a, v in zip(args, combo)])
            if result is RAISES:
                raises.append(hit)
            else:
                cases.append((hit, result))
        if raises:
            enc.fail_when(z3.And(z3.Not(none_in), z3.Or(raises)))
        for arg, domain in zip(args, domains):
            _escape_outside(enc, arg, domain, position, none_in, "lambda")
        cell = _result_cell(enc, kind, cases, none_in)
        if affine is None:
            return cell
        *slopes, offset = affine
        term = _q(offset) + z3.Sum(
            [_q(a) * arg.cells[position].value for a, arg in zip(slopes, args)]
        )
        return Cell(_simplify(term), cell.none)

    return kind, results, may_be_none, True, encode_position


def _fraction(value) -> Fraction:
    if isinstance(value, float):
        return Fraction(value).limit_denominator(FLOAT_DENOMINATOR_LIMIT)
    return Fraction(int(value))


def _q(value: Fraction) -> z3.ArithRef:
    return z3.Q(value.numerator, value.denominator)


def _affine_fit(outcomes: list[tuple[tuple, object]]) -> tuple[Fraction, ...] | None:
    """Slopes and offset of an affine function matching every numeric outcome, or None.

    A map that is affine over its arguments' values (`x + 1`, `length - indices - 1`,
    the identity table) becomes that arithmetic term: one canonical form for all of them.
    """
    points = [
        (tuple(_fraction(x) for x in combo), _fraction(result))
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


def _finite_values(sop: EncodedSOp, what: str) -> list:
    if sop.values is None:
        raise Unsupported(
            f"a {what} applied to a numerical SOp whose values are not finitely known"
        )
    return sorted(sop.values, key=lambda v: (type(v).__name__, repr(v)))


def _check_table_size(domains: list[list], what: str) -> None:
    size = 1
    for domain in domains:
        size *= max(len(domain), 1)
    if size > TABULATION_LIMIT:
        raise Unsupported(
            f"a {what} over {size:,} argument combinations (limit {TABULATION_LIMIT:,})"
        )


def _escape_outside(enc: _Encoder, arg: EncodedSOp, domain, position, none_in, what) -> None:
    """An argument whose values are only candidates (a mean) may hold a value outside them."""
    if arg.exact:
        return
    cell = arg.cells[position]
    inside = z3.Or([enc.matches(arg, cell, v) for v in domain]) if domain else FALSE
    enc.escape_when(
        z3.And(z3.Not(none_in), z3.Not(inside)),
        f"a {what} applied to a mean outside the values it was tabulated over",
    )


def _arithmetic_map(fn: ast.Lambda, args: list[EncodedSOp]):
    values = _image(fn, args)
    exact = values is not None and all(a.exact for a in args)

    def encode_position(enc: _Encoder, position: int, none_in) -> Cell:
        env = {name: a.cells[position].value for name, a in zip(fn.params, args)}
        translator = _Arithmetic(env, path=z3.Not(none_in))
        term = _to_real(translator.translate(fn.body))
        for condition in translator.undefined:
            enc.fail_when(condition)
        return Cell(_simplify(term), none_in)

    return REAL, values, any(a.may_be_none for a in args), exact, encode_position


def _image(fn: ast.Lambda, args: list[EncodedSOp]) -> frozenset | None:
    """The values a lambda takes over its arguments' values, when those are finitely known."""
    if any(a.values is None for a in args):
        return None
    size = 1
    for a in args:
        size *= max(len(a.values), 1)
    if size > TABULATION_LIMIT:
        return None
    function = make_callable(fn)
    image = set()
    for combo in itertools.product(*(a.values for a in args)):
        result = _guarded(function, combo)
        if result is not RAISES:
            image.add(result)
    return frozenset(image)


# ---- lambda bodies as Z3 arithmetic -----------------------------------------


class _NotArithmetic(Exception):
    """The lambda body needs a non-number (a string, None): tabulate it instead."""


def _to_real(term):
    return z3.If(term, z3.RealVal(1), z3.RealVal(0)) if z3.is_bool(term) else term


def _truthy(term):
    return term if z3.is_bool(term) else term != 0


def _is_arithmetic(fn: ast.Lambda) -> bool:
    probe = _Arithmetic({name: z3.Real(f"probe_{name}") for name in fn.params}, TRUE)
    try:
        probe.translate(fn.body)
    except _NotArithmetic:
        return False
    return True


class _Arithmetic:
    """Translates a lambda body over REAL arguments; collects where Python would raise."""

    def __init__(self, env: dict, path: z3.BoolRef):
        self.env = env
        self.path = path  # the body is evaluated only where this holds (short circuits)
        self.undefined: list[z3.BoolRef] = []

    def translate(self, expr: ast.Expr, path: z3.BoolRef | None = None):
        saved = self.path
        if path is not None:
            self.path = z3.And(saved, path)
        try:
            handler = _ARITHMETIC.get(type(expr))
            if handler is None:
                raise _NotArithmetic
            return handler(self, expr)
        finally:
            self.path = saved

    def raise_when(self, condition):
        self.undefined.append(z3.And(self.path, condition))


def _arith_const(tr: _Arithmetic, expr: ast.Const):
    if isinstance(expr.value, bool):
        return z3.BoolVal(expr.value)
    if is_number(expr.value):
        return real_literal(expr.value)
    raise _NotArithmetic


def _arith_var(tr: _Arithmetic, expr: ast.Var):
    if expr.name not in tr.env:
        raise _NotArithmetic
    return tr.env[expr.name]


def _floor(x):
    return z3.ToReal(z3.ToInt(x))


def _arith_binop(tr: _Arithmetic, expr: ast.BinOp):
    left = _to_real(tr.translate(expr.left))
    if expr.op == "**":
        exponent = expr.right
        if not (isinstance(exponent, ast.Const) and type(exponent.value) is int):
            raise _NotArithmetic
        if not 0 <= exponent.value <= MAX_POWER_EXPONENT:
            raise _NotArithmetic
        result = z3.RealVal(1)
        for _ in range(exponent.value):
            result = result * left
        return result
    right = _to_real(tr.translate(expr.right))
    if expr.op == "+":
        return left + right
    if expr.op == "-":
        return left - right
    if expr.op == "*":
        return left * right
    if expr.op in ("/", "//", "%"):
        tr.raise_when(right == 0)  # ZeroDivisionError
        quotient = left / right
        if expr.op == "/":
            return quotient
        if expr.op == "//":
            return _floor(quotient)
        return left - right * _floor(quotient)
    raise _NotArithmetic


_Z3_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _arith_compare(tr: _Arithmetic, expr: ast.Compare):
    left, right = tr.translate(expr.left), tr.translate(expr.right)
    if z3.is_bool(left) and z3.is_bool(right) and expr.op in ("==", "!="):
        return _Z3_COMPARE[expr.op](left, right)
    return _Z3_COMPARE[expr.op](_to_real(left), _to_real(right))


def _unify(a, b):
    """Two branches as one sort: bools become 0/1 unless both are bools."""
    if z3.is_bool(a) and z3.is_bool(b):
        return a, b
    return _to_real(a), _to_real(b)


def _arith_boolop(tr: _Arithmetic, expr: ast.BoolOp):
    # Python returns an operand: `a and b` is a when a is falsy, else b.
    left = tr.translate(expr.left)
    left_true = _truthy(left)
    right = tr.translate(expr.right, path=left_true if expr.op == "and" else z3.Not(left_true))
    left, right = _unify(left, right)
    if expr.op == "and":
        return z3.If(left_true, right, left)
    return z3.If(left_true, left, right)


def _arith_unaryop(tr: _Arithmetic, expr: ast.UnaryOp):
    operand = tr.translate(expr.operand)
    if expr.op == "not":
        return z3.Not(_truthy(operand))
    return -_to_real(operand)


def _arith_ifexp(tr: _Arithmetic, expr: ast.IfExp):
    condition = _truthy(tr.translate(expr.cond))
    then = tr.translate(expr.then, path=condition)
    orelse = tr.translate(expr.orelse, path=z3.Not(condition))
    then, orelse = _unify(then, orelse)
    return z3.If(condition, then, orelse)


def _arith_call(tr: _Arithmetic, expr: ast.Call):
    args = [_to_real(tr.translate(a)) for a in expr.args]
    if expr.func == "abs" and len(args) == 1:
        return z3.If(args[0] < 0, -args[0], args[0])
    if expr.func in ("min", "max") and len(args) >= 2:
        better = (lambda x, y: x < y) if expr.func == "min" else (lambda x, y: x > y)
        result = args[0]
        for other in args[1:]:
            result = z3.If(better(other, result), other, result)
        return result
    raise _NotArithmetic


_ARITHMETIC = {
    ast.Const: _arith_const,
    ast.Var: _arith_var,
    ast.BinOp: _arith_binop,
    ast.Compare: _arith_compare,
    ast.BoolOp: _arith_boolop,
    ast.UnaryOp: _arith_unaryop,
    ast.IfExp: _arith_ifexp,
    ast.Call: _arith_call,
}


# ---- selectors ------------------------------------------------------------


def _encode_select(enc: _Encoder, node: ast.Select) -> Matrix:
    keys, queries = enc.sop(node.keys), enc.sop(node.queries)
    function = make_callable(node.predicate)
    symbolic = None  # built on first need: most selects are finite everywhere

    def entry(k: int, q: int) -> Cell:
        nonlocal symbolic
        enc.inputs.check_time()
        finite = enc.combine(
            [keys.cells[k], queries.cells[q]], lambda kv, qv: bool(function(kv, qv))
        )
        if finite is not None:
            return enc.finite_cell(BOOL, finite)
        if symbolic is None:
            symbolic = _symbolic_predicate(enc, node.predicate, function, keys, queries)
        return Cell(_simplify(symbolic(k, q)), FALSE)

    return tuple(tuple(entry(k, q) for k in range(enc.length)) for q in range(enc.length))


def _symbolic_predicate(enc: _Encoder, predicate: ast.Function, function, keys, queries):
    if isinstance(predicate, ast.Comparison):
        # tracr's Comparison raises on a None key or query, whatever the comparison.
        for sop in (keys, queries):
            if sop.may_be_none:
                enc.fail_when(z3.Or([c.none for c in sop.cells]))
        if predicate.op in ("true", "false"):
            return lambda k, q: z3.BoolVal(predicate.op == "true")
        if predicate.op in ("==", "!=") or keys.kind == queries.kind == REAL:
            return _compare_values(enc, predicate.op, keys, queries)
        return _tabulated_predicate(enc, function, keys, queries, with_none=False)
    if (
        isinstance(predicate, ast.Lambda)
        and keys.kind == queries.kind == REAL
        and not (keys.may_be_none or queries.may_be_none)
        and _is_arithmetic(predicate)
    ):
        return _arithmetic_predicate(enc, predicate, keys, queries)
    return _tabulated_predicate(enc, function, keys, queries, with_none=True)


def _compare_values(enc: _Encoder, op: str, keys: EncodedSOp, queries: EncodedSOp):
    """`key OP query` on values that are never None here (None made the input undefined)."""
    if op in ("==", "!="):
        # Compare values only: a None made the input undefined already.
        plain_keys = EncodedSOp(keys.kind, keys.cells, keys.values)
        plain_queries = EncodedSOp(queries.kind, queries.cells, queries.values)

        def equal(k, q):
            same = _cells_equal(plain_keys, k, plain_queries, q, enc.inputs)
            return same if op == "==" else z3.Not(same)

        return equal
    compare = _Z3_COMPARE[op]
    return lambda k, q: compare(keys.cells[k].value, queries.cells[q].value)


def _arithmetic_predicate(enc: _Encoder, fn: ast.Lambda, keys, queries):
    def predicate(k, q):
        env = {fn.params[0]: keys.cells[k].value, fn.params[1]: queries.cells[q].value}
        translator = _Arithmetic(env, TRUE)
        truth = _truthy(translator.translate(fn.body))
        for condition in translator.undefined:
            enc.fail_when(condition)
        return truth

    return predicate


def _tabulated_predicate(enc: _Encoder, function, keys, queries, with_none: bool):
    """A predicate of (key, query) as a table over their values (None included, as tracr calls it)."""
    key_values = _finite_values(keys, "select predicate")
    query_values = _finite_values(queries, "select predicate")
    _check_table_size([key_values, query_values], "select predicate")
    for sop, domain in ((keys, key_values), (queries, query_values)):
        for position, cell in enumerate(sop.cells):
            _escape_outside(enc, sop, domain, position, cell.none, "select predicate")
    if with_none:
        key_values = key_values + ([None] if keys.may_be_none else [])
        query_values = query_values + ([None] if queries.may_be_none else [])
    true_pairs, raising_pairs = [], []
    for kv, qv in itertools.product(key_values, query_values):
        outcome = _guarded(lambda a, b: bool(function(a, b)), [kv, qv])
        if outcome is RAISES:
            raising_pairs.append((kv, qv))
        elif outcome:
            true_pairs.append((kv, qv))

    def pairs_hold(pairs, k, q):
        key_cell, query_cell = keys.cells[k], queries.cells[q]
        return z3.Or(
            [
                z3.And(enc.matches(keys, key_cell, kv), enc.matches(queries, query_cell, qv))
                for kv, qv in pairs
            ]
        )

    def predicate(k, q):
        if raising_pairs:
            enc.fail_when(pairs_hold(raising_pairs, k, q))
        return pairs_hold(true_pairs, k, q) if true_pairs else FALSE

    return predicate


def _encode_select_and(enc: _Encoder, node: ast.SelectAnd) -> Matrix:
    return _elementwise(
        enc, lambda a, b: a and b, z3.And, enc.selector(node.left), enc.selector(node.right)
    )


def _encode_select_or(enc: _Encoder, node: ast.SelectOr) -> Matrix:
    return _elementwise(
        enc, lambda a, b: a or b, z3.Or, enc.selector(node.left), enc.selector(node.right)
    )


def _encode_select_not(enc: _Encoder, node: ast.SelectNot) -> Matrix:
    inner = enc.selector(node.inner)
    return _elementwise(enc, lambda a: not a, z3.Not, inner)


def _elementwise(
    enc: _Encoder, concrete: Callable, symbolic: Callable, *matrices: Matrix
) -> Matrix:
    def entry(cells: tuple[Cell, ...]) -> Cell:
        enc.inputs.check_time()
        finite = enc.combine(cells, concrete)
        if finite is not None:
            return enc.finite_cell(BOOL, finite)
        return Cell(_simplify(symbolic(*(c.value for c in cells))), FALSE)

    return tuple(tuple(entry(cells) for cells in zip(*rows)) for rows in zip(*matrices))


# ---- selector_width and aggregate ----------------------------------------------


def _live(row: Sequence[Cell]) -> list[int]:
    """Key positions that may be selected (a finite constant False never is)."""
    return [j for j, c in enumerate(row) if not z3.is_false(c.value)]


def _count(row: Sequence[Cell], live: list[int]) -> z3.ArithRef:
    if not live:
        return z3.IntVal(0)
    return z3.Sum([z3.If(row[j].value, z3.IntVal(1), z3.IntVal(0)) for j in live])


def _encode_selector_width(enc: _Encoder, node: ast.SelectorWidth) -> EncodedSOp:
    cells = []
    for row in enc.selector(node.selector):
        finite = enc.combine(row, lambda *selected: sum(selected))
        if finite is not None:
            cells.append(enc.finite_cell(REAL, finite))
        else:
            cells.append(Cell(_simplify(z3.ToReal(_count(row, _live(row)))), FALSE))
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


def _encode_aggregate(enc: _Encoder, node: ast.Aggregate) -> EncodedSOp:
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

        def symbolic(enc, row, live, source, default):
            return _aggregate_codes(enc, row, live, source, default, means)

    categorical = node.encoding == ast.CATEGORICAL and enc.wants_single_valued
    cells, tables = [], []
    for row in matrix:
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
                    _bool_tree(enc.inputs, single, "single", lambda e: e is not False)
                )
            continue
        cells.append(symbolic(enc, row, live, source, default))
        if categorical:
            enc.single_valued.append(_at_most_one_value(enc, row, live, source))
    if all(t is not None for t in tables):
        return EncodedSOp(kind, tuple(cells), _entries(tables), _has_none(tables))
    may_be_none = default is None or source.may_be_none
    if values is not None:
        values = values | _entries(tables)
    return EncodedSOp(kind, tuple(cells), values, may_be_none, exact)


def _on_selection(count: int, function: Callable[[list], object]) -> Callable:
    """(selector entries..., source values...) of `count` keys -> function(the selected values)."""
    return lambda *entries: function([v for s, v in zip(entries[:count], entries[count:]) if s])


def _set_of(value) -> frozenset:
    return frozenset() if value is None else frozenset([value])


def _at_most_one_value(enc: _Encoder, row, live, source: EncodedSOp) -> z3.BoolRef:
    constraints = [
        z3.Or(
            z3.Not(row[j].value),
            z3.Not(row[k].value),
            _cells_equal(source, j, source, k, enc.inputs),
        )
        for j, k in itertools.combinations(live, 2)
    ]
    return _simplify(z3.And(constraints)) if constraints else TRUE


def _selected_none(source: EncodedSOp, row, live) -> z3.BoolRef:
    if not source.may_be_none:
        return FALSE
    return z3.Or([z3.And(row[j].value, source.cells[j].none) for j in live])


def _aggregate_numbers(enc: _Encoder, row, live, source: EncodedSOp, default) -> Cell:
    default_value = z3.RealVal(0) if default is None else real_literal(default)
    width = _simplify(_count(row, live))
    terms = [z3.If(row[j].value, source.cells[j].value, z3.RealVal(0)) for j in live]
    total = z3.Sum(terms) if terms else z3.RealVal(0)
    # The mean as a chain over the possible counts: division by constants stays linear.
    means = [(width == n, total / n) for n in range(2, len(live) + 1)]
    value = z3.If(width == 0, default_value, z3.If(width == 1, total, _if_chain(means, total)))
    selected_none = _selected_none(source, row, live)
    enc.fail_when(z3.And(width >= 2, selected_none))
    none = z3.Or(z3.And(width == 0, z3.BoolVal(default is None)), z3.And(width == 1, selected_none))
    return Cell(_simplify(value), _simplify(none))


def _possible_means(numbers: list, length: int) -> frozenset | None:
    """Every mean of 2..length of the numbers (repeats allowed); None when there are too many."""
    if not numbers:
        return frozenset()
    values = {_fraction(v) for v in numbers}
    sums, means = set(values), set()
    for count in range(2, length + 1):
        sums = {a + b for a in sums for b in values}
        if len(sums) > MAX_MEANS:
            return None
        means |= {float(total / count) for total in sums}
    return frozenset(means)


def _aggregate_codes(enc: _Encoder, row, live, source: EncodedSOp, default, means) -> Cell:
    """An aggregate whose values are not all numbers; `means`: the averages it may take."""
    numbers = [v for v in source.values if is_number(v)]
    default_code = z3.IntVal(0) if default is None else z3.IntVal(enc.universe.code(default))
    width = _simplify(_count(row, live))
    single = _if_chain([(row[j].value, source.cells[j].value) for j in live], z3.IntVal(0))
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
        mean = _if_chain([(width == n, total / n) for n in range(2, len(live) + 1)], total)
        mean_code = _if_chain(
            [(mean == real_literal(m), z3.IntVal(enc.universe.code(m))) for m in sorted(means)],
            z3.IntVal(0),
        )
    value = z3.If(width == 0, default_code, z3.If(width == 1, single, mean_code))
    selected_none = _selected_none(source, row, live)
    none = z3.Or(z3.And(width == 0, z3.BoolVal(default is None)), z3.And(width == 1, selected_none))
    return Cell(_simplify(value), _simplify(none))


def _numeric_value(enc: _Encoder, cell: Cell, numbers: list) -> z3.ArithRef:
    """The number a CODE cell holds (0 when it holds something else)."""
    cases = [(cell.value == enc.universe.code(v), real_literal(v)) for v in numbers]
    return _if_chain(cases, z3.RealVal(0))


ENCODERS: dict[type, Callable] = {
    ast.Name: _encode_name,
    ast.Tokens: _encode_tokens,
    ast.Indices: _encode_indices,
    ast.Full: _encode_full,
    ast.Map: _encode_map,
    ast.SequenceMap: _encode_sequence_map,
    ast.Aggregate: _encode_aggregate,
    ast.SelectorWidth: _encode_selector_width,
    ast.Select: _encode_select,
    ast.SelectAnd: _encode_select_and,
    ast.SelectOr: _encode_select_or,
    ast.SelectNot: _encode_select_not,
}
