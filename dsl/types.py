"""Kinds, encodings and value sets of a program's nodes, and its type errors.

`infer(program, vocab, max_seq_len)` computes for every node whether it is an
SOp or a selector, its encoding, and the set of values it can take: the sets
that tracr's basis inference (`tracr/compiler/basis_inference.py`) computes,
rule for rule. Functions are applied through `dsl.functions.make_callable`,
never through Python's `eval`.

Every problem found is collected and raised together as one `TypeCheckError`,
in the order of the source; unused definitions are warnings.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dsl import ast, limits
from dsl.errors import Problem, TypeCheckError, shorten, source_line
from dsl.functions import make_callable
from dsl.printer import function as function_text
from dsl.printer import infix_shape, is_negation


class Kind(enum.Enum):
    SOP = "sop"
    SELECTOR = "selector"


@dataclass(frozen=True)
class NodeInfo:
    """What inference found out about one node."""

    kind: Kind
    encoding: ast.Encoding | None = None
    """The encoding of an SOp; None for a selector."""
    value_set: frozenset | None = None
    """The values an SOp can take; None for a selector."""


@dataclass(frozen=True)
class ProgramInfo:
    """Inference results for a whole program, looked up by node or by definition name."""

    vocab: frozenset
    max_seq_len: int
    definitions: dict[str, NodeInfo]
    """Each definition's info, by name."""
    output: NodeInfo
    """The info of the returned SOp."""
    warnings: tuple[Problem, ...]
    """Problems that do not stop the program from running (unused definitions, ...)."""
    nodes: dict[ast.Node, NodeInfo] = field(repr=False)
    """Every node of the program (Names resolved), by structural equality."""

    def info(self, node: ast.Node) -> NodeInfo:
        return self.nodes[node]

    def kind(self, node: ast.Node) -> Kind:
        return self.nodes[node].kind

    def encoding(self, node: ast.Node) -> ast.Encoding | None:
        return self.nodes[node].encoding

    def value_set(self, node: ast.Node) -> frozenset | None:
        return self.nodes[node].value_set

    @property
    def output_encoding(self) -> ast.Encoding:
        return self.output.encoding

    @property
    def is_numerical(self) -> bool:
        return self.output.encoding is ast.NUMERICAL


def infer(program: ast.Program, vocab: Iterable, max_seq_len: int) -> ProgramInfo:
    """Kinds, encodings and value sets of every node; raise TypeCheckError listing every problem.

    The vocabulary and length are checked against `dsl.limits` first (LimitError);
    a value set past MAX_VALUE_SET, or inference past MAX_INFERENCE_STEPS function
    applications, is a problem of the node where it happens.
    """
    vocab = limits.check_domain(vocab, max_seq_len)
    return _Inference(program, frozenset(vocab), max_seq_len).run()


def _stable_key(value) -> tuple:
    """An order of values that does not depend on hashing (so messages are stable)."""
    return (type(value).__name__, repr(value))


def _values_text(values: Iterable) -> str:
    return ", ".join(repr(v) for v in sorted(values, key=_stable_key))


class _Inference:
    """One pass over the definitions in order, collecting problems as it goes."""

    def __init__(self, program: ast.Program, vocab: frozenset, max_seq_len: int):
        self.program = program
        self.vocab = vocab
        self.max_seq_len = max_seq_len
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.nodes: dict[ast.Node, NodeInfo] = {}
        # name -> its info, or None where the definition itself had a problem.
        self.defined: dict[str, NodeInfo | None] = {}
        # name -> where it is first defined (a later redefinition is an error).
        self.first_spans = {d.name: d.span for d in reversed(program.definitions)}
        self.used: set[str] = set()
        # Function applications made so far (bounded by limits.MAX_INFERENCE_STEPS).
        self.steps = 0
        self.visitors: dict[type, Callable] = {
            ast.Name: self._name,
            ast.Tokens: lambda n: self._sop(n, self.vocab),
            ast.Indices: lambda n: self._sop(n, range(self.max_seq_len)),
            ast.Full: lambda n: self._sop(n, {n.value}),
            ast.Map: self._map,
            ast.SequenceMap: self._sequence_map,
            ast.Aggregate: self._aggregate,
            ast.SelectorWidth: self._selector_width,
            ast.Select: self._select,
            ast.SelectAnd: self._selector_pair,
            ast.SelectOr: self._selector_pair,
            ast.SelectNot: self._select_not,
        }

    # ---- driver ----------------------------------------------------------------------

    def run(self) -> ProgramInfo:
        for definition in self.program.definitions:
            if definition.name in self.defined:
                first = self.first_spans[definition.name]
                where = f" (first defined on line {first.line})" if first else ""
                self._problem(f"redefinition of {definition.name!r}{where}", definition.span)
                self.visit(definition.node)
                continue
            self.defined[definition.name] = self.visit(definition.node)
        output = self._expect(self.program.output, Kind.SOP, "the returned value")
        if self.problems:
            raise TypeCheckError(sorted(self.problems, key=_position))
        for definition in self.program.definitions:
            if definition.name not in self.used:
                self._warn(f"unused definition {definition.name!r}", definition.span)
        return ProgramInfo(
            vocab=self.vocab,
            max_seq_len=self.max_seq_len,
            definitions=dict(self.defined),
            output=output,
            warnings=tuple(sorted(self.warnings, key=_position)),
            nodes=self.nodes,
        )

    def visit(self, node: ast.Node) -> NodeInfo | None:
        """The node's info, or None when a problem (already reported) makes it unknown."""
        info = self.visitors[type(node)](node)
        if info is not None:
            self.nodes[node] = info
        return info

    def _expect(self, node: ast.Node, kind: Kind, context: str) -> NodeInfo | None:
        info = self.visit(node)
        if info is None or info.kind is kind:
            return info
        article = "an SOp" if kind is Kind.SOP else "a selector"
        got = "a selector" if info.kind is Kind.SELECTOR else "an SOp"
        self._problem(f"{context} must be {article}, got {got}", _span_of(node))
        return None

    # ---- problems ---------------------------------------------------------------------

    def _located(self, message: str, span: ast.Span | None) -> Problem:
        origin = self.program.origin
        filename = origin.filename if origin else "<string>"
        if span is None:
            return Problem(message, filename)
        source = None
        if origin is not None:
            source = source_line(origin.text, span.line)
        return Problem(message, filename, span.line, span.column, source)

    def _problem(self, message: str, span: ast.Span | None) -> None:
        self.problems.append(self._located(message, span))

    def _warn(self, message: str, span: ast.Span | None) -> None:
        self.warnings.append(self._located(message, span))

    # ---- nodes ------------------------------------------------------------------------

    def _name(self, node: ast.Name) -> NodeInfo | None:
        if node.id in self.defined:
            self.used.add(node.id)
            return self.defined[node.id]
        if node.id in self.first_spans:
            later = self.first_spans[node.id]
            where = f" (line {later.line})" if later else ""
            self._problem(f"{node.id!r} is used before its definition{where}", node.span)
        else:
            self._problem(f"undefined name {node.id!r}", node.span)
        return None

    @staticmethod
    def _sop(node: ast.SOp, values: Iterable) -> NodeInfo:
        return NodeInfo(Kind.SOP, node.encoding, frozenset(values))

    def _map(self, node: ast.Map) -> NodeInfo | None:
        fn_ok = self._check_function(node.fn, 1, "map", node)
        arg = self._expect(node.arg, Kind.SOP, _operand_context(node, "the argument of map"))
        if not fn_ok or arg is None:
            return None
        values = self._apply(node.fn, [(v,) for v in arg.value_set], len(arg.value_set), node)
        return None if values is None else self._sop(node, values)

    def _sequence_map(self, node: ast.SequenceMap) -> NodeInfo | None:
        fn_ok = self._check_function(node.fn, 2, "sequence_map", node)
        left_context = _operand_context(node, "argument 2 of sequence_map", "left")
        right_context = _operand_context(node, "argument 3 of sequence_map", "right")
        left = self._expect(node.left, Kind.SOP, left_context)
        right = self._expect(node.right, Kind.SOP, right_context)
        if not fn_ok or left is None or right is None:
            return None
        pairs = itertools.product(left.value_set, right.value_set)
        count = len(left.value_set) * len(right.value_set)
        values = self._apply(node.fn, pairs, count, node)
        return None if values is None else self._sop(node, values)

    def _aggregate(self, node: ast.Aggregate) -> NodeInfo | None:
        self._expect(node.selector, Kind.SELECTOR, "argument 1 of aggregate")
        sop = self._expect(node.sop, Kind.SOP, "argument 2 of aggregate")
        if sop is None:
            return None
        if node.encoding is ast.CATEGORICAL:
            if sop.encoding is ast.NUMERICAL:
                self._problem(
                    "categorical aggregate of a numerical SOp (write numerical aggregate(...))",
                    node.span,
                )
                return None
            # tracr passes on the value set of the aggregated SOp.
            return self._sop(node, sop.value_set)
        non_numbers = [v for v in sop.value_set if not _is_number(v)]
        if non_numbers:
            self._problem(
                f"numerical aggregate of non-numbers: {_values_text(non_numbers)}", node.span
            )
            return None
        if not all(map(_truncates_to_0_or_1, sop.value_set)):
            self._warn(
                f"numerical aggregate of values other than 0 and 1 "
                f"({shorten(_values_text(sop.value_set), 120)}):"
                " tracr compiles only means of 0/1 values",
                node.span,
            )
        # tracr's rule (which assumes 0/1 values): each value divided by each length.
        lengths = range(1, self.max_seq_len + 1)
        if not self._spend(len(sop.value_set) * len(lengths), node):
            return None
        try:
            means = {value / length for value in sop.value_set for length in lengths}
        except OverflowError as error:  # an integer too large for a float
            self._problem(f"numerical aggregate: {error}", node.span)
            return None
        return None if self._too_many_values(node, means) else self._sop(node, means)

    def _selector_width(self, node: ast.SelectorWidth) -> NodeInfo | None:
        self._expect(node.selector, Kind.SELECTOR, "the argument of selector_width")
        return self._sop(node, range(self.max_seq_len + 1))

    def _select(self, node: ast.Select) -> NodeInfo | None:
        keys = self._expect(node.keys, Kind.SOP, "the keys of select")
        queries = self._expect(node.queries, Kind.SOP, "the queries of select")
        for info, role, operand in ((keys, "keys", node.keys), (queries, "queries", node.queries)):
            if info is not None and info.encoding is ast.NUMERICAL:
                self._problem(
                    f"the {role} of select must be categorical, got a numerical SOp",
                    _span_of(operand),
                )
        fn_ok = self._check_function(node.predicate, 2, "select", node, comparison=True)
        categorical = all(i is not None and i.encoding is ast.CATEGORICAL for i in (keys, queries))
        if fn_ok and categorical:
            pairs = itertools.product(keys.value_set, queries.value_set)
            count = len(keys.value_set) * len(queries.value_set)
            if self._apply(node.predicate, pairs, count, node) is None:
                return None
        return NodeInfo(Kind.SELECTOR)

    def _selector_pair(self, node: ast.SelectAnd | ast.SelectOr) -> NodeInfo:
        operator = "&" if isinstance(node, ast.SelectAnd) else "|"
        self._expect(node.left, Kind.SELECTOR, f"the left operand of {operator!r}")
        self._expect(node.right, Kind.SELECTOR, f"the right operand of {operator!r}")
        return NodeInfo(Kind.SELECTOR)

    def _select_not(self, node: ast.SelectNot) -> NodeInfo:
        self._expect(node.inner, Kind.SELECTOR, "the operand of '~'")
        return NodeInfo(Kind.SELECTOR)

    # ---- functions ----------------------------------------------------------------------

    def _check_function(
        self, fn: ast.Function, arity: int, user: str, node: ast.Node, comparison: bool = False
    ) -> bool:
        """Static checks of a function's shape; report each problem and say whether it is usable."""
        before = len(self.problems)
        noun = "argument" if arity == 1 else "arguments"
        if isinstance(fn, ast.Comparison):
            if not comparison:
                self._problem(
                    f"{user} needs a lambda or a table, got comparison {fn.op!r}", node.span
                )
        elif isinstance(fn, ast.Lambda):
            if fn.arity != arity:
                self._problem(
                    f"{user} needs a function of {arity} {noun}, got {function_text(fn)}", node.span
                )
            self._check_body(fn, node)
        elif isinstance(fn, ast.Table):
            for key in (k for k, _ in fn.entries):
                pair = isinstance(key, tuple) and len(key) == arity
                if (arity == 1 and isinstance(key, tuple)) or (arity > 1 and not pair):
                    shape = "single values" if arity == 1 else f"tuples of {arity} values"
                    self._problem(
                        f"{user} needs a table keyed by {shape}, got key {key!r}", node.span
                    )
                    break
        else:
            self._problem(f"{user} needs a function, got {fn!r}", node.span)
        return len(self.problems) == before

    def _check_body(self, fn: ast.Lambda, node: ast.Node) -> None:
        for expr in _walk(fn.body):
            if isinstance(expr, ast.Var) and expr.name not in fn.params:
                self._problem(
                    f"unknown variable {expr.name!r} in lambda (parameters: {', '.join(fn.params)})",
                    node.span,
                )
            elif isinstance(expr, ast.Call):
                if expr.func not in ast.CALLABLE_BUILTINS:
                    self._problem(
                        f"unknown function {expr.func!r} in lambda "
                        f"(expected one of {', '.join(ast.CALLABLE_BUILTINS)})",
                        node.span,
                    )
                elif (expr.func == "abs") != (len(expr.args) == 1) or not expr.args:
                    wanted = "1 argument" if expr.func == "abs" else "at least 2 arguments"
                    self._problem(
                        f"{expr.func} takes {wanted}, got {len(expr.args)} in lambda", node.span
                    )

    def _spend(self, steps: int, node: ast.Node) -> bool:
        """Count `steps` function applications; report a problem past MAX_INFERENCE_STEPS."""
        self.steps += steps
        if self.steps <= limits.MAX_INFERENCE_STEPS:
            return True
        self._problem(
            f"value-set inference needs {self.steps:,} function applications up to here: past "
            f"{limits.limit_text('MAX_INFERENCE_STEPS')} (a smaller vocabulary or --max-len helps)",
            node.span,
        )
        return False

    def _too_many_values(self, node: ast.Node, values) -> bool:
        """Report a problem when the node's values are more than MAX_VALUE_SET."""
        if len(values) <= limits.MAX_VALUE_SET:
            return False
        self._problem(
            f"this SOp takes more than {limits.MAX_VALUE_SET:,} values: past "
            f"{limits.limit_text('MAX_VALUE_SET')}",
            node.span,
        )
        return True

    def _apply(
        self, fn: ast.Function, arguments: Iterable[tuple], count: int, node: ast.Node
    ) -> set | None:
        """fn's results over every argument tuple (None results dropped, as tracr does).

        A None argument is skipped: the interpreter gives None there without calling fn.
        Reports the first argument (in a stable order) on which fn fails; `count`
        arguments are charged to the inference budget before any is applied, and
        more than MAX_VALUE_SET distinct results is a problem.
        """
        if not self._spend(count, node):
            return None
        call = make_callable(fn)
        results = set()
        failures = []
        for args in arguments:
            if any(a is None for a in args):
                continue
            try:
                result = call(*args)
            except Exception as error:  # noqa: BLE001 - any failure of a user's function is a type error
                failures.append((args, error))
                continue
            if result is not None:
                results.add(result)
                if self._too_many_values(node, results):
                    return None
        if failures:
            args, error = min(failures, key=lambda f: tuple(_stable_key(a) for a in f[0]))
            self._problem(_failure_message(fn, args, error), node.span)
            return None
        return results


def _operand_context(node: ast.Node, call_context: str, side: str | None = None) -> str:
    """How to name an operand in a message: as the user wrote it, infix or call.

    `side` is "left" or "right" for a sequence_map; a map's side is where its SOp stands.
    """
    if is_negation(node):
        return "the operand of '-'"
    shape = infix_shape(node)
    if shape is None:
        return call_context
    op, left, _ = shape
    if side is None:
        side = "right" if isinstance(left, ast.Const) else "left"
    return f"the {side} operand of {op!r}"


def _failure_message(fn: ast.Function, args: tuple, error: Exception) -> str:
    shown = shorten(", ".join(shorten(repr(a), 30) for a in args), 60)
    reason = shorten(str(error) or type(error).__name__, 160)
    if isinstance(fn, ast.Table):
        key = args[0] if len(args) == 1 else args
        return f"table has no entry for {shorten(repr(key), 80)}"
    if isinstance(fn, ast.Comparison):
        key, query = (shorten(repr(a), 30) for a in args)
        return f"comparison {fn.op!r} fails on key {key}, query {query}: {reason}"
    return f"{shorten(function_text(fn), 60)} fails on {shown}: {reason}"


def _truncates_to_0_or_1(value) -> bool:
    try:
        return math.isfinite(value) and int(value) in (0, 1)
    except OverflowError:  # an integer too large for a float
        return False


def _is_number(value) -> bool:
    return isinstance(value, (int, float))


def _walk(expr: ast.Expr):
    yield expr
    for child in expr.children:
        yield from _walk(child)


def _span_of(node: ast.Node) -> ast.Span | None:
    return getattr(node, "span", None)


def _position(problem: Problem) -> tuple:
    return (problem.line or 0, problem.column or 0)
