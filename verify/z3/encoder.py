"""The encoder's state for one program at one length, and equality between cells.

`Encoder.node` encodes a node once (by identity) through a dispatch table
keyed by node type (`verify.z3.program.ENCODERS`); the handlers get the
encoder and call back into it for their children.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import z3

from dsl import ast
from verify.z3.cells import (
    BOOL,
    CODE,
    FALSE,
    RAISES,
    REAL,
    Cell,
    EncodedSOp,
    Finite,
    Inputs,
    Matrix,
    Unsupported,
    if_chain,
    is_number,
    real_literal,
    simplify,
    typed,
)
from verify.z3.tables import FILLER, bool_tree, combine_tables, tree


class Encoder:
    """Encodes the nodes of one program over `inputs`, collecting the formulas on the way."""

    def __init__(
        self,
        program: ast.Program,
        inputs: Inputs,
        encoders: dict[type, Callable],
        *,
        single_valued: bool = False,
    ):
        self.encoders = encoders
        self.lookup = program.lookup()
        self.inputs = inputs
        self.length = inputs.length
        self.universe = inputs.universe
        self.undefined: list[z3.BoolRef] = []
        self.escapes: list[tuple[z3.BoolRef, str]] = []
        self.wants_single_valued = single_valued
        self.single_valued: list[z3.BoolRef] = []
        self._by_node: dict[int, EncodedSOp | Matrix] = {}
        self._matches: dict[tuple, z3.BoolRef] = {}
        self.by_name: dict[str, EncodedSOp | Matrix] = {}

    def node(self, node: ast.Node):
        # Keyed by identity, as the interpreter does: the program keeps its nodes alive.
        cached = self._by_node.get(id(node))
        if cached is None:
            self.inputs.check_time()
            handler = self.encoders.get(type(node))
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
        condition = simplify(condition)
        if not z3.is_false(condition):
            self.undefined.append(condition)

    def escape_when(self, condition: z3.BoolRef, reason: str) -> None:
        condition = simplify(condition)
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
        return combine_tables([c.finite for c in cells], len(self.inputs.vocab), function)

    def finite_cell(self, kind: str, finite: Finite) -> Cell:
        """A cell from its table; where an entry raises, the input is undefined."""
        filler = {REAL: z3.RealVal(0), CODE: z3.IntVal(0), BOOL: FALSE}[kind]

        def value_label(entry):
            return FILLER if entry is None or entry is RAISES else entry

        def value_leaf(label):
            return filler if label is FILLER else self.literal(kind, label)

        if any(entry is RAISES for entry in finite.table):
            self.undefined.append(bool_tree(self.inputs, finite, "raises", lambda e: e is RAISES))

        def build():
            value = tree(self.inputs, finite, kind, value_label, value_leaf)
            return value, bool_tree(self.inputs, finite, "none", lambda e: e is None)

        return Cell.lazy(build, finite)

    def matches(self, sop: EncodedSOp, cell: Cell, value) -> z3.BoolRef:
        """The cell holds `value` (None included)."""
        # Tables ask for the same (cell, value) test once per entry: build each term once.
        # The sop and the cell live as long as the encoder, so their ids are stable keys.
        key = (id(sop), id(cell), typed(value))
        term = self._matches.get(key)
        if term is None:
            term = self._matches[key] = self._match_term(sop, cell, value)
        return term

    def _match_term(self, sop: EncodedSOp, cell: Cell, value) -> z3.BoolRef:
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
            cells.append(Cell(simplify(if_chain(chain, z3.IntVal(0))), cell.none))
        return EncodedSOp(CODE, tuple(cells), sop.values, sop.may_be_none)


def cells_equal(a: EncodedSOp, i: int, b: EncodedSOp, j: int, inputs: Inputs) -> z3.BoolRef:
    """Python's `==` between `a` at i and `b` at j, None == None included."""
    ca, cb = a.cells[i], b.cells[j]
    if ca.finite is not None and cb.finite is not None:
        table = combine_tables([ca.finite, cb.finite], len(inputs.vocab), lambda x, y: x == y)
        if table is not None:
            return bool_tree(inputs, table, "true", lambda e: e is True)
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
