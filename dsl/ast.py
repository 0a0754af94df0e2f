"""The typed AST of the `.rasp` language.

A closed AST with two kinds of node, as in tracr: sequence operations (`SOp`)
and selectors (`Selector`). A `Name` refers to an earlier definition of either
kind. Nodes are frozen dataclasses: equality is structural, never overloaded to
build new nodes (tracr's `==` builds a `Map`; we do not copy that).

Functions inside nodes (the `f` of `map` / `sequence_map`, a select predicate)
are data too: a `Lambda` over a small expression language, a lookup `Table`, or,
for select, a named `Comparison`. Semantics live outside the nodes (the
interpreter, the Z3 encoding, the tracr bridge are dispatch tables keyed by node
type).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Union

# A value an SOp can take at one position. None is tracr's "undefined"
# (the default of a categorical aggregate that selects nothing).
Value = Union[int, float, str, bool, None]


class Encoding(enum.Enum):
    CATEGORICAL = "categorical"
    NUMERICAL = "numerical"


CATEGORICAL = Encoding.CATEGORICAL
NUMERICAL = Encoding.NUMERICAL


@dataclass(frozen=True)
class Span:
    """Where a node came from in a `.rasp` file (1-based line and column)."""

    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None


def _span_field():
    # Positions are provenance, not meaning: excluded from ==, hash and repr.
    return field(default=None, compare=False, repr=False, hash=False)


# --------------------------------------------------------------------------
# The expression language of lambda bodies.
# --------------------------------------------------------------------------


class Expr:
    """A node of a lambda body."""

    @property
    def children(self) -> tuple[Expr, ...]:
        return ()


@dataclass(frozen=True)
class Const(Expr):
    value: Value


@dataclass(frozen=True)
class Var(Expr):
    name: str


BINARY_OPERATORS = ("+", "-", "*", "/", "//", "%", "**")
COMPARE_OPERATORS = ("==", "!=", "<", "<=", ">", ">=")
BOOL_OPERATORS = ("and", "or")
UNARY_OPERATORS = ("-", "not")
CALLABLE_BUILTINS = ("min", "max", "abs")


@dataclass(frozen=True)
class BinOp(Expr):
    op: str  # one of BINARY_OPERATORS
    left: Expr
    right: Expr

    @property
    def children(self):
        return (self.left, self.right)


@dataclass(frozen=True)
class Compare(Expr):
    op: str  # one of COMPARE_OPERATORS
    left: Expr
    right: Expr

    @property
    def children(self):
        return (self.left, self.right)


@dataclass(frozen=True)
class BoolOp(Expr):
    op: str  # "and" | "or"
    left: Expr
    right: Expr

    @property
    def children(self):
        return (self.left, self.right)


@dataclass(frozen=True)
class UnaryOp(Expr):
    op: str  # "-" | "not"
    operand: Expr

    @property
    def children(self):
        return (self.operand,)


@dataclass(frozen=True)
class IfExp(Expr):
    cond: Expr
    then: Expr
    orelse: Expr

    @property
    def children(self):
        return (self.cond, self.then, self.orelse)


@dataclass(frozen=True)
class Call(Expr):
    func: str  # one of CALLABLE_BUILTINS
    args: tuple[Expr, ...]

    @property
    def children(self):
        return self.args


# --------------------------------------------------------------------------
# Functions: what a map applies, what a select compares with.
# --------------------------------------------------------------------------


class Function:
    """A lambda or a table."""

    arity: int


@dataclass(frozen=True)
class Lambda(Function):
    params: tuple[str, ...]
    body: Expr

    @property
    def arity(self) -> int:
        return len(self.params)


def _table_sort_key(item):
    key = item[0]
    parts = key if isinstance(key, tuple) else (key,)
    return tuple((type(p).__name__, repr(p)) for p in parts)


@dataclass(frozen=True)
class Table(Function):
    """A finite function: `entries` maps an input (a tuple for two inputs) to an output.

    Entries are stored sorted, so two tables with the same mapping are equal
    whatever order they were written in.
    """

    entries: tuple[tuple[object, Value], ...]

    def __post_init__(self):
        keys = [k for k, _ in self.entries]
        if len(set(keys)) != len(keys):
            raise ValueError("table has a repeated key")
        object.__setattr__(self, "entries", tuple(sorted(self.entries, key=_table_sort_key)))

    @property
    def arity(self) -> int:
        if not self.entries:
            return 1
        key = self.entries[0][0]
        return len(key) if isinstance(key, tuple) else 1

    def as_dict(self) -> dict:
        return dict(self.entries)


COMPARISONS = ("==", "!=", "<", "<=", ">", ">=", "true", "false")


@dataclass(frozen=True)
class Comparison(Function):
    """A named select predicate, read as `key OP query` (tracr's convention)."""

    op: str  # one of COMPARISONS

    def __post_init__(self):
        if self.op not in COMPARISONS:
            raise ValueError(f"unknown comparison {self.op!r}")

    arity = 2


# --------------------------------------------------------------------------
# Sequence operations and selectors.
# --------------------------------------------------------------------------


class Node:
    """A program node: an SOp, a Selector or a Name that refers to one."""

    @property
    def children(self) -> tuple[Node, ...]:
        return ()


class SOp(Node):
    encoding: Encoding


class Selector(Node):
    pass


@dataclass(frozen=True)
class Name(Node):
    """A reference to an earlier definition (an SOp or a selector)."""

    id: str
    span: Span | None = _span_field()


@dataclass(frozen=True)
class Tokens(SOp):
    encoding: Encoding = CATEGORICAL
    span: Span | None = _span_field()


@dataclass(frozen=True)
class Indices(SOp):
    encoding: Encoding = CATEGORICAL
    span: Span | None = _span_field()


@dataclass(frozen=True)
class Full(SOp):
    value: Value
    encoding: Encoding = CATEGORICAL
    span: Span | None = _span_field()


@dataclass(frozen=True)
class Map(SOp):
    fn: Function  # Lambda of one parameter, or Table with scalar keys
    arg: Node
    encoding: Encoding = CATEGORICAL
    span: Span | None = _span_field()

    @property
    def children(self):
        return (self.arg,)


@dataclass(frozen=True)
class SequenceMap(SOp):
    fn: Function  # Lambda of two parameters, or Table with pair keys
    left: Node
    right: Node
    encoding: Encoding = CATEGORICAL
    span: Span | None = _span_field()

    @property
    def children(self):
        return (self.left, self.right)


@dataclass(frozen=True)
class Aggregate(SOp):
    selector: Node
    sop: Node
    default: Value = None
    encoding: Encoding = CATEGORICAL
    span: Span | None = _span_field()

    @property
    def children(self):
        return (self.selector, self.sop)


@dataclass(frozen=True)
class SelectorWidth(SOp):
    selector: Node
    encoding: Encoding = CATEGORICAL
    span: Span | None = _span_field()

    @property
    def children(self):
        return (self.selector,)


@dataclass(frozen=True)
class Select(Selector):
    keys: Node
    queries: Node
    predicate: Function  # Comparison, or a Lambda (key, query)
    span: Span | None = _span_field()

    @property
    def children(self):
        return (self.keys, self.queries)


@dataclass(frozen=True)
class SelectAnd(Selector):
    left: Node
    right: Node
    span: Span | None = _span_field()

    @property
    def children(self):
        return (self.left, self.right)


@dataclass(frozen=True)
class SelectOr(Selector):
    left: Node
    right: Node
    span: Span | None = _span_field()

    @property
    def children(self):
        return (self.left, self.right)


@dataclass(frozen=True)
class SelectNot(Selector):
    inner: Node
    span: Span | None = _span_field()

    @property
    def children(self):
        return (self.inner,)


SOP_TYPES = (Tokens, Indices, Full, Map, SequenceMap, Aggregate, SelectorWidth)
SELECTOR_TYPES = (Select, SelectAnd, SelectOr, SelectNot)
NODE_TYPES = SOP_TYPES + SELECTOR_TYPES + (Name,)


# --------------------------------------------------------------------------
# Programs.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Definition:
    name: str
    node: Node
    span: Span | None = _span_field()


@dataclass(frozen=True)
class Origin:
    """The file a program was parsed from, kept so later errors can show its lines."""

    filename: str
    text: str


@dataclass(frozen=True)
class Program:
    """Named definitions in order, then the returned SOp.

    `output` is usually a `Name`; it may be any SOp expression.
    """

    definitions: tuple[Definition, ...]
    output: Node
    origin: Origin | None = _span_field()

    def lookup(self) -> dict[str, Node]:
        return {d.name: d.node for d in self.definitions}


def rewrite(node: Node, fn) -> Node:
    """Rebuild `node` bottom up: `fn` gets each node after its children were rewritten."""
    children = {
        f.name: rewrite(getattr(node, f.name), fn)
        for f in dataclasses.fields(node)
        if isinstance(getattr(node, f.name), Node)
    }
    return fn(dataclasses.replace(node, **children) if children else node)


def rewrite_program(program: Program, fn) -> Program:
    """`rewrite` applied to every definition and the output."""
    definitions = tuple(
        dataclasses.replace(d, node=rewrite(d.node, fn)) for d in program.definitions
    )
    return Program(definitions, rewrite(program.output, fn), program.origin)
