"""Program against program, part by part: equal by case analysis over the values each part reads.

A readable program distilled from a table program keeps its shape: a table
named as a comparison, a map given a closed form, labels renamed, map chains
merged. Proving such a pair equal needs no search over inputs. Every SOp of
the reference program `q` is, at each position, a function of q's *sources*
there: tokens, indices, constants, and each aggregate and selector_width (the
only operations that read other positions). Each source has a finite value set
that covers every input up to max_seq_len (tokens: the vocab; indices
0..n-1; a width 0..n; an aggregate: its SOp's values and its default, and
every mean of up to n of them where it averages). Walking p from its output,
each of p's SOps is written as a function of q's sources, tabulated on the
product of their value sets:

- tokens, indices and constants are sources of both programs;
- a map or sequence_map composes the tables of what it reads;
- a selector_width of p is a width of q whose selector is the same matrix on
  every input: both predicates give the same answer for every combination of
  the sources their query side reads with the sources their key side reads;
- an aggregate of p is h(an aggregate of q) with the same matrix, when p's
  values are h(q's values) for a function h that keeps numbers numbers. With
  a single selected value (what the precondition guarantees for q's
  categorical aggregates) any such h carries over; a mean needs h(x) = c*x.

Then the two outputs are compared on the product of their sources' value sets.
Each check runs over a superset of the combinations inputs reach, so agreement
everywhere proves the programs equal on every input up to max_seq_len, with
numbers as exact rationals (as the Z3 encoding has them). A disagreement may
sit on a combination no input reaches, so it only means "not proved this
way": the answer is then a reason, and the caller goes on to Z3.

Undefinedness is matched too: any function that raises on a combination (a
division by zero, a missing table entry, a comparison with None) ends the
attempt, and an aggregate that can raise (several selected values that are
not numbers) must raise in both programs alike.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from dsl import ast
from dsl.functions import make_callable
from verify.z3.cells import fraction

# The largest product of source value sets one part is tabulated on; past it the
# attempt gives up (Z3 may still decide).
MAX_COMBINATIONS = 200_000
# The most values one averaging aggregate may take (every mean of up to n values).
MAX_MEANS = 50_000


class NotByParts(Exception):
    """This pair cannot be proved equal part by part; the message says where."""


class TooManyCombinations(NotByParts):
    """A part reads more combinations of source values than MAX_COMBINATIONS."""


class _Raises:
    """A function raised on this combination (the input is undefined)."""

    def __repr__(self) -> str:
        return "<raises>"


RAISES = _Raises()


def exact(value):
    """A value with numbers as exact rationals (1, 1.0 and True are one number, as in Z3)."""
    if isinstance(value, (bool, int, float)):
        return fraction(value)
    if isinstance(value, tuple):
        return tuple(exact(v) for v in value)
    return value


def is_number(value) -> bool:
    return isinstance(value, Fraction)


@dataclass
class Tabulated:
    """An SOp at one position as a function of q's sources there."""

    basis: tuple[str, ...]
    """Source names, in order."""
    table: dict[tuple, object]
    """Every combination of the sources' values -> the SOp's value (exact), or RAISES."""
    label: str = ""
    """The SOp's name in its program."""

    def image(self) -> set:
        return set(self.table.values())


@dataclass
class _Source:
    """A source's value set; whether it can make an input undefined (an aggregate of
    labels), and whether some aggregate of p was matched to it then."""

    values: list
    may_raise: bool = False
    matched: bool = False


class _Sources(dict):
    """Source name -> _Source, and the time by which the proof must be done."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def check_time(self) -> None:
        if time.perf_counter() >= self.deadline:
            raise NotByParts("out of time")


@dataclass
class _Selector:
    """A selector as leaves (query SOp, key SOp, predicate) and how they combine."""

    leaves: list[tuple[Tabulated, Tabulated, Callable]]
    combine: Callable[[list], bool]


@dataclass
class _Program:
    program: ast.Program
    lookup: dict = field(init=False)
    names: dict = field(init=False)  # id of a definition's node -> its name
    cache: dict = field(default_factory=dict)

    def __post_init__(self):
        self.lookup = self.program.lookup()
        self.names = {id(d.node): d.name for d in self.program.definitions}

    def resolve(self, node: ast.Node) -> tuple[ast.Node, str]:
        """The node a name refers to, and a name for it (its definition, else its place)."""
        label = ""
        while isinstance(node, ast.Name):
            if node.id not in self.lookup:
                raise NotByParts(f"undefined name {node.id!r}")
            label = node.id
            node = self.lookup[node.id]
        return node, label or self.names.get(id(node)) or f"<{type(node).__name__} {id(node)}>"


def prove_by_parts(
    p: ast.Program,
    q: ast.Program,
    vocab: Sequence,
    max_seq_len: int,
    *,
    single_valued: bool,
    deadline: float = math.inf,
) -> None:
    """Return when p equals q on every input up to max_seq_len; else raise NotByParts
    (also when time.perf_counter() passes `deadline` first).

    `single_valued`: the claim is restricted to inputs where every categorical
    aggregate selects at most one distinct value (then q's may be relabelled freely).
    """
    _Proof(p, q, vocab, max_seq_len, single_valued, deadline).run()


class _Proof:
    def __init__(self, p, q, vocab, max_seq_len, single_valued, deadline):
        self.p, self.q = _Program(p), _Program(q)
        self.n = max_seq_len
        self.single_valued = single_valued
        self.sources = _Sources(deadline)
        self.sources["tokens"] = _Source([exact(v) for v in vocab])
        self.sources["indices"] = _Source([exact(i) for i in range(max_seq_len)])
        self.callables: dict[int, Callable] = {}
        self.q_cone: set[str] = set()  # what q's output depends on

    def run(self) -> None:
        reference = self.tabulate_q(self.q.program.output)
        # Everything q's output depends on must be defined wherever its parts are.
        self.check_q_cone(self.q.program.output)
        candidate = self.tabulate_p(self.p.program.output)
        try:
            pairs = _joint(self.sources, candidate, reference)
        except TooManyCombinations:
            candidate = self.rebase_p(candidate, prefer=reference.label)
            pairs = _joint(self.sources, candidate, self.cut_q(reference))
        for values, (left, right) in pairs.items():
            if left != right:
                raise NotByParts(
                    f"the outputs differ where {_show(values)}: {left!r} against {right!r}"
                )
        unmatched = [
            name
            for name, source in self.sources.items()
            if name in self.q_cone and source.may_raise and not source.matched
        ]
        if unmatched:
            raise NotByParts(f"{unmatched[0]} can be undefined and has no counterpart")

    # ---- q: the reference program ------------------------------------------------

    def tabulate_q(self, node: ast.Node) -> Tabulated:
        node, label = self.q.resolve(node)
        if label in self.q.cache:
            return self.q.cache[label]
        if isinstance(node, (ast.Aggregate, ast.SelectorWidth)):
            self.add_q_source(node, label)
            result = _identity(label, self.sources[label].values)
        else:
            result = self.elementwise(node, self.tabulate_q, self.cut_q)
        result.label = label
        self.q.cache[label] = result
        return result

    def add_q_source(self, node, label: str) -> None:
        if label in self.sources:
            return
        if isinstance(node, ast.SelectorWidth):
            self.sources[label] = _Source([exact(w) for w in range(self.n + 1)])
            return
        values = self.tabulate_q(node.sop).image()
        if RAISES in values:
            raise NotByParts(f"{label}: the values it averages can be undefined")
        averages = not (self.single_valued and node.encoding == ast.CATEGORICAL)
        taken = set(values) | {exact(node.default)}
        if averages and len(values) > 1:
            taken |= _means([v for v in values if is_number(v)], self.n, self.sources)
        may_raise = any(not is_number(v) for v in values)
        self.sources[label] = _Source(sorted(taken, key=_order), may_raise)

    def check_q_cone(self, node: ast.Node) -> None:
        """Every part of q the output depends on is defined on every combination."""
        node, label = self.q.resolve(node)
        if label in self.q_cone:
            return
        self.q_cone.add(label)
        if isinstance(node, ast.Select):
            self.selector(self.q, node, self.tabulate_q).check_defined(self.sources, label)
        elif not isinstance(node, (ast.SelectAnd, ast.SelectOr, ast.SelectNot)):
            if RAISES in self.tabulate_q(node).image():
                raise NotByParts(f"{label} is undefined on some combination of its values")
        for child in node.children:
            self.check_q_cone(child)

    # ---- p: the program proved equal to q ----------------------------------------

    def tabulate_p(self, node: ast.Node) -> Tabulated:
        node, label = self.p.resolve(node)
        if label in self.p.cache:
            return self.p.cache[label]
        if isinstance(node, ast.SelectorWidth):
            result = self.match_width(node, label)
        elif isinstance(node, ast.Aggregate):
            result = self.match_aggregate(node, label)
        else:
            result = self.elementwise(node, self.tabulate_p, self.rebase_p)
        result.label = label
        if RAISES in result.image():
            raise NotByParts(f"{label} is undefined on some combination of its values")
        self.p.cache[label] = result
        return result

    def q_candidates(self, kind: type, label: str) -> list[tuple[str, ast.Node]]:
        """q's sources of this kind (named or inline), the one with p's name first."""
        found: dict[str, ast.Node] = {}

        def visit(node: ast.Node) -> None:
            if isinstance(node, kind):
                found.setdefault(self.q.resolve(node)[1], node)
            for child in node.children:
                if not isinstance(child, ast.Name):
                    visit(child)

        for definition in self.q.program.definitions:
            visit(definition.node)
        if not isinstance(self.q.program.output, ast.Name):
            visit(self.q.program.output)
        return sorted(found.items(), key=lambda item: item[0] != label)

    def match_width(self, node: ast.SelectorWidth, label: str) -> Tabulated:
        mine = self.selector(self.p, node.selector, self.tabulate_p)
        for name, other in self.q_candidates(ast.SelectorWidth, label):
            try:
                theirs = self.selector(self.q, other.selector, self.tabulate_q)
            except NotByParts:
                continue
            if mine.same_matrix(theirs, self.sources):
                self.tabulate_q(other)
                return _identity(name, self.sources[name].values)
        raise NotByParts(f"{label}: no selector_width of the other program has the same selector")

    def match_aggregate(self, node: ast.Aggregate, label: str) -> Tabulated:
        mine = self.selector(self.p, node.selector, self.tabulate_p)
        values = self.tabulate_p(node.sop)
        reasons = []
        for name, other in self.q_candidates(ast.Aggregate, label):
            try:
                relabel = self.match_one_aggregate(mine, values, node.default, name, other)
            except NotByParts as error:
                reasons.append(str(error))
                continue
            if relabel is not None:
                return Tabulated((name,), {(v,): relabel(v) for v in self.sources[name].values})
        why = f" ({reasons[0]})" if reasons else ""
        raise NotByParts(f"{label}: no aggregate of the other program matches it{why}")

    def match_one_aggregate(self, mine, values: Tabulated, default, name: str, other):
        """h with p's aggregate = h(q's aggregate `other`, called `name`); None when the
        selectors differ."""
        theirs = self.selector(self.q, other.selector, self.tabulate_q)
        if not mine.same_matrix(theirs, self.sources):
            return None
        self.tabulate_q(other)
        may_raise = any(not is_number(v) for v in values.image())
        if may_raise and name not in self.q_cone:
            raise NotByParts(f"it can be undefined where {name} is not")
        relabel = self.value_map(values, default, other, name)
        self.sources[name].matched |= may_raise
        return relabel

    def value_map(self, mine: Tabulated, default, other: ast.Aggregate, name: str) -> Callable:
        """h with p's aggregate = h(q's aggregate `name`), or NotByParts."""
        theirs = self.tabulate_q(other.sop)
        pairs: dict = {}
        for _, (value, their_value) in _joint(self.sources, mine, theirs).items():
            if pairs.setdefault(their_value, value) != value:
                raise NotByParts(f"the values of {name} do not determine the averaged values")
            if is_number(value) != is_number(their_value):
                raise NotByParts(f"a number and a label are averaged alike in {name}")
        default, their_default = exact(default), exact(other.default)
        if self.single_valued and other.encoding == ast.CATEGORICAL:
            # One selected value (or several equal ones, whose mean is that value).
            if pairs.setdefault(their_default, default) != default:
                raise NotByParts(f"the default of {name} differs")
            return pairs.__getitem__
        # A mean of several values: only a scaling commutes with it.
        if not all(is_number(t) and is_number(v) for t, v in pairs.items()):
            raise NotByParts(f"{name} averages values that are not numbers")
        scale = next((v / t for t, v in pairs.items() if t != 0), Fraction(1))
        if any(v != scale * t for t, v in pairs.items()):
            raise NotByParts(f"the averaged values are not a multiple of those of {name}")
        if not is_number(their_default):  # None or a label: never a mean
            return lambda value: scale * value if is_number(value) else default
        if not is_number(default) or default != scale * their_default:
            raise NotByParts(f"the default of {name} differs")
        return lambda value: scale * value

    # ---- shared -----------------------------------------------------------------

    def elementwise(self, node: ast.Node, tabulate, cut) -> Tabulated:
        if isinstance(node, ast.Tokens):
            return _identity("tokens", self.sources["tokens"].values)
        if isinstance(node, ast.Indices):
            return _identity("indices", self.sources["indices"].values)
        if isinstance(node, ast.Full):
            return Tabulated((), {(): exact(node.value)})
        if isinstance(node, ast.Map):
            return self.combine([tabulate(node.arg)], self.function(node.fn), cut)
        if isinstance(node, ast.SequenceMap):
            parts = [tabulate(node.left), tabulate(node.right)]
            return self.combine(parts, self.function(node.fn), cut)
        raise NotByParts(f"{type(node).__name__} is not an SOp")

    def combine(self, parts: list[Tabulated], function: Callable, cut) -> Tabulated:
        """The SOp computing function(*parts) elementwise (None in gives None out, as tracr).

        Parts that together read too many combinations are cut: each becomes a
        source of its own, its values taken as independent of the others (a superset
        of what inputs reach, so still sound)."""
        memo: dict[tuple, object] = {}

        def apply(args):
            if args not in memo:
                memo[args] = _apply(function, args)
            return memo[args]

        try:
            basis, rows = _combinations(self.sources, parts)
        except TooManyCombinations:
            basis, rows = _combinations(self.sources, [cut(part) for part in parts])
        return Tabulated(basis, {key: apply(args) for key, args in rows})

    def cut_q(self, part: Tabulated) -> Tabulated:
        """A part of q as a source of its own (values: what it can take)."""
        if len(part.basis) <= 1:
            return part
        if part.label not in self.sources:
            self.sources[part.label] = _Source(sorted(part.image(), key=_order))
        return _identity(part.label, self.sources[part.label].values, part.label)

    def rebase_p(self, part: Tabulated, prefer: str = "") -> Tabulated:
        """A part of p as a function of one part of q that determines it (cut to a source)."""
        if len(part.basis) <= 1:
            return part
        within = set(part.basis)
        candidates = sorted(
            (t for t in self.q.cache.values() if len(t.basis) > 1 and set(t.basis) <= within),
            key=lambda t: (t.label != (prefer or part.label), len(t.image())),
        )
        for theirs in candidates:
            relabel: dict = {}
            _, rows = _combinations(self.sources, [theirs, part])
            if all(relabel.setdefault(t, v) == v for _, (t, v) in rows):
                source = self.cut_q(theirs)
                return Tabulated(source.basis, {(t,): relabel[t] for t in relabel}, part.label)
        raise NotByParts(f"{part.label} reads too many combinations and nothing of q determines it")

    def function(self, fn: ast.Function) -> Callable:
        if id(fn) not in self.callables:
            self.callables[id(fn)] = _exact_callable(fn)
        return self.callables[id(fn)]

    def selector(self, side: _Program, node: ast.Node, tabulate) -> _SelectorCheck:
        node, label = side.resolve(node)
        if isinstance(node, ast.Select):
            leaf = (tabulate(node.queries), tabulate(node.keys), self.function(node.predicate))
            return _SelectorCheck(_Selector([leaf], lambda bits: bits[0]), label)
        if isinstance(node, ast.SelectNot):
            inner = self.selector(side, node.inner, tabulate).selector
            return _SelectorCheck(
                _Selector(inner.leaves, lambda bits: not inner.combine(bits)), label
            )
        if isinstance(node, (ast.SelectAnd, ast.SelectOr)):
            left = self.selector(side, node.left, tabulate).selector
            right = self.selector(side, node.right, tabulate).selector
            split = len(left.leaves)
            both = all if isinstance(node, ast.SelectAnd) else any
            return _SelectorCheck(
                _Selector(
                    left.leaves + right.leaves,
                    lambda bits: both((left.combine(bits[:split]), right.combine(bits[split:]))),
                ),
                label,
            )
        raise NotByParts(f"{label} is not a selector")


@dataclass
class _SelectorCheck:
    selector: _Selector
    label: str

    def rows(self, sources, side: int) -> list[tuple]:
        """Distinct value tuples of the leaves' query (side 0) or key (side 1) SOps."""
        parts = [leaf[side] for leaf in self.selector.leaves]
        _, rows = _combinations(sources, parts)
        return sorted({args for _, args in rows}, key=_order)

    def entries(self, query_values, key_values):
        bits = []
        for (_, _, predicate), q, k in zip(self.selector.leaves, query_values, key_values):
            result = _apply(predicate, (k, q), none_gives_none=False)
            if result is RAISES:
                return RAISES
            bits.append(bool(result))
        return self.selector.combine(bits)

    def check_defined(self, sources, label: str) -> None:
        key_rows = self.rows(sources, 1)
        for q in self.rows(sources, 0):
            for k in key_rows:
                if self.entries(q, k) is RAISES:
                    raise NotByParts(f"{label} is undefined on query {q!r}, key {k!r}")

    def same_matrix(self, other: _SelectorCheck, sources) -> bool:
        """Both selectors select the same keys on every input: on every joint combination
        of the sources the query sides read with those the key sides read."""
        count = len(self.selector.leaves)
        joined = _SelectorCheck(
            _Selector(self.selector.leaves + other.selector.leaves, lambda bits: bits), ""
        )
        key_rows = joined.rows(sources, 1)
        for q in joined.rows(sources, 0):
            sources.check_time()
            for k in key_rows:
                mine = self.entries(q[:count], k[:count])
                theirs = other.entries(q[count:], k[count:])
                if mine is RAISES or theirs is RAISES or mine != theirs:
                    return False
        return True


def _identity(name: str, values: list, label: str = "") -> Tabulated:
    return Tabulated((name,), {(v,): v for v in values}, label or name)


def _combinations(sources, parts: list[Tabulated]):
    """The union of the parts' bases, and per combination of its values (key, the parts' values)."""
    basis = tuple(dict.fromkeys(name for part in parts for name in part.basis))
    size = 1
    for name in basis:
        size *= len(sources[name].values)
    if size > MAX_COMBINATIONS:
        raise TooManyCombinations(
            f"{size:,} combinations of {', '.join(basis)} (past {MAX_COMBINATIONS:,})"
        )
    slots = [[basis.index(name) for name in part.basis] for part in parts]
    rows = []
    sources.check_time()
    for count, key in enumerate(itertools.product(*(sources[name].values for name in basis))):
        if count % 4096 == 4095:
            sources.check_time()
        args = tuple(part.table[tuple(key[i] for i in slot)] for part, slot in zip(parts, slots))
        rows.append((key, args))
    return basis, rows


def _joint(sources, left: Tabulated, right: Tabulated) -> dict:
    """Per combination of both bases' values (named), the pair of values."""
    basis, rows = _combinations(sources, [left, right])
    return {tuple(zip(basis, key)): args for key, args in rows}


def _apply(function: Callable, args: tuple, none_gives_none: bool = True):
    if any(a is RAISES for a in args):
        return RAISES
    if none_gives_none and any(a is None for a in args):
        return None
    try:
        result = function(*args)
    except Exception:  # noqa: BLE001 - as tracr: any exception makes the input undefined
        return RAISES
    if isinstance(result, float):
        raise NotByParts(f"an inexact number {result!r} (a power with a fractional exponent?)")
    return exact(result)


def _exact_callable(fn: ast.Function) -> Callable:
    """`make_callable` over exact values: constants and table keys as exact rationals."""
    if isinstance(fn, ast.Table):
        entries: dict = {}
        for key, value in fn.entries:
            key, value = exact(key), exact(value)
            if entries.setdefault(key, value) != value:
                raise NotByParts(f"a table maps {key!r} to two values")

        def lookup(*args):
            # As dsl.functions: a map's key is its argument (which may be a tuple).
            return entries[args[0] if len(args) == 1 else args]

        return lookup
    if isinstance(fn, ast.Lambda):
        return make_callable(ast.Lambda(fn.params, _exact_constants(fn.body)))
    return make_callable(fn)


def _exact_constants(expr: ast.Expr) -> ast.Expr:
    if isinstance(expr, ast.Const):
        return ast.Const(exact(expr.value))
    if isinstance(expr, ast.Var):
        return expr
    changes = {}
    for name in ("left", "right", "operand", "cond", "then", "orelse"):
        if hasattr(expr, name):
            changes[name] = _exact_constants(getattr(expr, name))
    if isinstance(expr, ast.Call):
        changes["args"] = tuple(_exact_constants(a) for a in expr.args)
    return dataclasses.replace(expr, **changes)


def _means(numbers: list, max_seq_len: int, sources: _Sources) -> set:
    """Every mean of 2..max_seq_len of `numbers` (repeats allowed), exactly."""
    means: set = set()
    sums = set(numbers)
    for count in range(2, max_seq_len + 1):
        if len(sums) * len(numbers) > MAX_COMBINATIONS:
            raise TooManyCombinations(f"an average of {len(numbers)} values has too many means")
        sources.check_time()
        sums = {total + v for total in sums for v in numbers}
        means |= {total / count for total in sums}
        if len(means) > MAX_MEANS:
            raise TooManyCombinations(f"an average takes more than {MAX_MEANS:,} values")
    return means


def _order(value):
    return repr(value)


def _show(values) -> str:
    return ", ".join(f"{name} = {value!r}" for name, value in values)
