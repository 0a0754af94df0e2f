"""The tracr bridge: `tracr.rasp` expressions to `.rasp` programs and back.

`from_tracr` gives one definition per tracr node (tokens and indices stay
inline), in topological order, named after the node's tracr name. tracr's
functions are opaque Python callables, so each becomes data: a lambda when a
small candidate expression (`x + 1`, `x == "a"`, `q == k + 1`, ...) agrees
with it on every value its arguments can take, otherwise a table of its values
there, the way tracr's own basis inference tabulates them.

`to_tracr` builds the tracr expression a program denotes, with the callables
of `dsl.functions`; tracr's compiler accepts it whenever the program is within
the fragment tracr compiles.
"""

from __future__ import annotations

import itertools
import keyword
import re
from collections.abc import Callable, Iterable

from tracr.rasp import rasp

from dsl import ast, parser
from dsl.errors import BridgeError
from dsl.functions import make_callable
from dsl.means import aggregate_means

# Names a definition may not take: the language's own words (and Python's keywords,
# which the lambda language shares).
RESERVED_NAMES = frozenset(parser.RESERVED_NAMES) | {"numerical", "categorical"}

# The attribute on which `to_tracr` leaves the `.rasp` function a tracr callable
# computes, so that `from_tracr(to_tracr(p))` gives back p's own lambdas and tables.
RECORDED_FUNCTION = "dsl_function"

_COMPARISON_NAMES = {
    rasp.Comparison.EQ: "==",
    rasp.Comparison.NEQ: "!=",
    rasp.Comparison.LT: "<",
    rasp.Comparison.LEQ: "<=",
    rasp.Comparison.GT: ">",
    rasp.Comparison.GEQ: ">=",
    rasp.Comparison.TRUE: "true",
    rasp.Comparison.FALSE: "false",
}
_TRACR_COMPARISONS = {name: comparison for comparison, name in _COMPARISON_NAMES.items()}

_ENCODINGS = {
    rasp.Encoding.CATEGORICAL: ast.CATEGORICAL,
    rasp.Encoding.NUMERICAL: ast.NUMERICAL,
}


# ==========================================================================
# tracr -> .rasp
# ==========================================================================


def from_tracr(sop: rasp.SOp, *, vocab: Iterable, max_seq_len: int) -> ast.Program:
    """The `.rasp` program computing tracr's `sop` on inputs over `vocab` up to `max_seq_len`."""
    if not isinstance(sop, rasp.SOp):
        raise BridgeError(f"expected a tracr SOp, got {type(sop).__name__}")
    return _FromTracr(frozenset(vocab), max_seq_len).program(sop)


class _FromTracr:
    def __init__(self, vocab: frozenset, max_seq_len: int):
        self.vocab = vocab
        self.max_seq_len = max_seq_len
        self.definitions: list[ast.Definition] = []
        self.names: set[str] = set()
        self.translated: dict[int, ast.Node] = {}  # id(tracr expr) -> Name or inline node
        self.value_sets: dict[int, frozenset] = {}  # id(tracr SOp) -> values it can take

    def program(self, sop: rasp.SOp) -> ast.Program:
        for expr in topological_order(sop):
            self.translate(expr)
        return ast.Program(tuple(self.definitions), self.translated[id(sop)])

    def translate(self, expr: rasp.RASPExpr) -> None:
        handler = _FROM_TRACR.get(type(expr))
        if handler is None:
            raise BridgeError(
                f"tracr expression {expr.label} ({type(expr).__name__}) is not supported"
            )
        node = handler(self, expr)
        if isinstance(expr, rasp.SOp):
            self.value_sets[id(expr)] = frozenset(_sop_value_set(self, expr))
        if isinstance(expr, (rasp.TokensType, rasp.IndicesType)):
            self.translated[id(expr)] = node
            return
        name = self.fresh_name(expr.name)
        self.definitions.append(ast.Definition(name, node))
        self.translated[id(expr)] = ast.Name(name)

    def ref(self, expr: rasp.RASPExpr) -> ast.Node:
        return self.translated[id(expr)]

    def values(self, expr: rasp.SOp) -> frozenset:
        return self.value_sets[id(expr)]

    def fresh_name(self, tracr_name: str) -> str:
        base = re.sub(r"\W+", "_", str(tracr_name)).strip("_") or "node"
        if base[0].isdigit():
            base = "_" + base
        # A reserved word is always numbered (select_1, select_2); others only on a clash.
        reserved = base in RESERVED_NAMES or keyword.iskeyword(base)
        suffix = 1
        name = f"{base}_1" if reserved else base
        while name in self.names:
            suffix += 1
            name = f"{base}_{suffix}"
        self.names.add(name)
        return name


def topological_order(sop: rasp.RASPExpr) -> list[rasp.RASPExpr]:
    """Every expression `sop` depends on, children before parents (each once, by identity).

    `from_tracr` defines the nodes in this order (all but tokens and indices).
    """
    order: list[rasp.RASPExpr] = []
    seen: set[int] = set()
    stack: list[tuple[rasp.RASPExpr, bool]] = [(sop, False)]
    while stack:
        expr, children_done = stack.pop()
        if children_done:
            order.append(expr)
            continue
        if id(expr) in seen:
            continue
        seen.add(id(expr))
        stack.append((expr, True))
        stack.extend((child, False) for child in reversed(expr.children) if id(child) not in seen)
    return order


def _encoding(expr: rasp.SOp) -> ast.Encoding:
    return _ENCODINGS[rasp.get_encoding(expr)]


def _tokens(bridge: _FromTracr, expr) -> ast.Node:
    return ast.Tokens(encoding=_encoding(expr))


def _indices(bridge: _FromTracr, expr) -> ast.Node:
    return ast.Indices(encoding=_encoding(expr))


def _length(bridge: _FromTracr, expr) -> ast.Node:
    everything = ast.Select(ast.Tokens(), ast.Tokens(), ast.Comparison("true"))
    return ast.SelectorWidth(everything, encoding=_encoding(expr))


def _full(bridge: _FromTracr, expr: rasp.Full) -> ast.Node:
    return ast.Full(expr.fill, encoding=_encoding(expr))


def _map(bridge: _FromTracr, expr: rasp.Map) -> ast.Node:
    fn = _unary_function(expr.f, bridge.values(expr.inner))
    return ast.Map(fn, bridge.ref(expr.inner), encoding=_encoding(expr))


def _sequence_map(bridge: _FromTracr, expr: rasp.SequenceMap) -> ast.Node:
    fn = _binary_function(expr.f, bridge.values(expr.fst), bridge.values(expr.snd))
    return ast.SequenceMap(fn, bridge.ref(expr.fst), bridge.ref(expr.snd), encoding=_encoding(expr))


def _linear_sequence_map(bridge: _FromTracr, expr: rasp.LinearSequenceMap) -> ast.Node:
    fn = _recorded(expr) or ast.Lambda(("x", "y"), linear_expr(expr.fst_fac, expr.snd_fac))
    return ast.SequenceMap(fn, bridge.ref(expr.fst), bridge.ref(expr.snd), encoding=_encoding(expr))


def linear_expr(x_factor, y_factor) -> ast.Expr:
    """`x_factor*x + y_factor*y`, with factors of (integer) 1 and -1 written away."""

    def term(factor, name):
        if _is_int(factor, 1):
            return ast.Var(name)
        if _is_int(factor, -1):
            return ast.UnaryOp("-", ast.Var(name))
        return ast.BinOp("*", ast.Const(factor), ast.Var(name))

    left = term(x_factor, "x")
    if _is_int(y_factor, 1):
        return ast.BinOp("+", left, ast.Var("y"))
    if _is_int(y_factor, -1):
        return ast.BinOp("-", left, ast.Var("y"))
    return ast.BinOp("+", left, ast.BinOp("*", ast.Const(y_factor), ast.Var("y")))


def _is_int(value, target: int) -> bool:
    # Only an int factor may vanish: 1.0 * x turns an int into a float.
    return type(value) is int and value == target


def _selector_width(bridge: _FromTracr, expr: rasp.SelectorWidth) -> ast.Node:
    return ast.SelectorWidth(bridge.ref(expr.selector), encoding=_encoding(expr))


def _aggregate(bridge: _FromTracr, expr: rasp.Aggregate) -> ast.Node:
    return ast.Aggregate(
        bridge.ref(expr.selector),
        bridge.ref(expr.sop),
        default=expr.default,
        encoding=_encoding(expr),
    )


def _select(bridge: _FromTracr, expr: rasp.Select) -> ast.Node:
    if isinstance(expr.predicate, rasp.Comparison):
        predicate = ast.Comparison(_COMPARISON_NAMES[expr.predicate])
    else:
        predicate = _predicate_function(
            expr.predicate, bridge.values(expr.keys), bridge.values(expr.queries)
        )
    return ast.Select(bridge.ref(expr.keys), bridge.ref(expr.queries), predicate)


def _selector_and(bridge: _FromTracr, expr: rasp.SelectorAnd) -> ast.Node:
    return ast.SelectAnd(bridge.ref(expr.fst), bridge.ref(expr.snd))


def _selector_or(bridge: _FromTracr, expr: rasp.SelectorOr) -> ast.Node:
    return ast.SelectOr(bridge.ref(expr.fst), bridge.ref(expr.snd))


def _selector_not(bridge: _FromTracr, expr: rasp.SelectorNot) -> ast.Node:
    return ast.SelectNot(bridge.ref(expr.inner))


def _unsupported_constant(bridge: _FromTracr, expr) -> ast.Node:
    raise BridgeError(
        f"tracr's {type(expr).__name__} ({expr.label}) holds one fixed input's values and has "
        "no counterpart in the .rasp language; build it from tokens and indices instead"
    )


_FROM_TRACR: dict[type, Callable] = {
    rasp.TokensType: _tokens,
    rasp.IndicesType: _indices,
    rasp.LengthType: _length,
    rasp.Full: _full,
    rasp.Map: _map,
    rasp.SequenceMap: _sequence_map,
    rasp.LinearSequenceMap: _linear_sequence_map,
    rasp.SelectorWidth: _selector_width,
    rasp.Aggregate: _aggregate,
    rasp.Select: _select,
    rasp.SelectorAnd: _selector_and,
    rasp.SelectorOr: _selector_or,
    rasp.SelectorNot: _selector_not,
    rasp.ConstantSOp: _unsupported_constant,
    rasp.ConstantSelector: _unsupported_constant,
}


# --------------------------------------------------------------------------
# Value sets: every value an SOp can take on the domain (a superset).
#
# tracr's basis inference is not enough here: it leaves out an aggregate's
# default and the means tracr's evaluator computes when a categorical
# aggregate selects several numbers, and a table missing them would make the
# program undefined where tracr's evaluator is not.
# --------------------------------------------------------------------------


def _sop_value_set(bridge: _FromTracr, expr: rasp.SOp) -> set:
    n = bridge.max_seq_len
    if isinstance(expr, rasp.TokensType):
        return set(bridge.vocab)
    if isinstance(expr, rasp.IndicesType):
        return set(range(n))
    if isinstance(expr, (rasp.LengthType, rasp.SelectorWidth)):
        return set(range(n + 1))
    if isinstance(expr, rasp.Full):
        return {expr.fill}
    if isinstance(expr, rasp.Map):
        inner = bridge.values(expr.inner)
        return _applied(expr.f, [(x,) for x in inner if x is not None]) | _none_if(None in inner)
    if isinstance(expr, rasp.SequenceMap):
        fst, snd = bridge.values(expr.fst), bridge.values(expr.snd)
        pairs = [(x, y) for x in fst for y in snd if x is not None and y is not None]
        return _applied(expr.f, pairs) | _none_if(None in fst or None in snd)
    if isinstance(expr, rasp.Aggregate):
        source = bridge.values(expr.sop)
        return set(source) | {expr.default} | aggregate_means(source, n)
    raise BridgeError(f"no value set for {type(expr).__name__}")


def _none_if(condition: bool) -> set:
    return {None} if condition else set()


def _applied(function: Callable, arguments: Iterable[tuple]) -> set:
    results = set()
    for args in arguments:
        try:
            results.add(function(*args))
        except Exception:  # noqa: BLE001, S112 - tracr raises there: no value comes out
            continue
    return results


# --------------------------------------------------------------------------
# Opaque callables -> lambdas or tables.
# --------------------------------------------------------------------------


def _outcome(function: Callable, args: tuple) -> tuple:
    try:
        value = function(*args)
    except Exception:  # noqa: BLE001 - any exception: tracr is undefined there
        return ("raises",)
    return ("returns", type(value), value)


def _agrees(candidate: ast.Function, function: Callable, arguments: list[tuple]) -> bool:
    """Same value and type where `function` returns, an exception where it raises."""
    compiled = make_callable(candidate)
    return all(_outcome(function, args) == _outcome(compiled, args) for args in arguments)


def _constants(function: Callable) -> list:
    """The literals a Python function closes over or contains, e.g. `other` in `x < other`."""
    found = []
    cells = getattr(function, "__closure__", None) or ()
    code = getattr(function, "__code__", None)
    candidates = [value for cell in cells for value in _cell_contents(cell)]
    candidates += list(code.co_consts) if code is not None else []
    for value in candidates:
        if isinstance(value, (int, float, str, bool)) and not _contains(found, value):
            found.append(value)
    return found


def _cell_contents(cell) -> list:
    """The cell's value as a one-element list; empty for a closure variable not assigned yet."""
    try:
        return [cell.cell_contents]
    except ValueError:
        return []


def _contains(values: list, value) -> bool:
    return any(type(v) is type(value) and v == value for v in values)


def _unary_candidates(constants: list) -> Iterable[ast.Lambda]:
    x = ast.Var("x")
    yield ast.Lambda(("x",), x)
    yield ast.Lambda(("x",), ast.UnaryOp("not", x))
    yield ast.Lambda(("x",), ast.UnaryOp("-", x))
    for c in map(ast.Const, constants):
        for op in ast.COMPARE_OPERATORS:
            yield ast.Lambda(("x",), ast.Compare(op, x, c))
        for op in ast.BINARY_OPERATORS:
            yield ast.Lambda(("x",), ast.BinOp(op, x, c))
            yield ast.Lambda(("x",), ast.BinOp(op, c, x))
        for op in ast.BOOL_OPERATORS:
            yield ast.Lambda(("x",), ast.BoolOp(op, x, c))
            yield ast.Lambda(("x",), ast.BoolOp(op, c, x))
        yield ast.Lambda(("x",), c)


def _binary_candidates() -> Iterable[ast.Lambda]:
    x, y = ast.Var("x"), ast.Var("y")
    for op in ast.BINARY_OPERATORS:
        yield ast.Lambda(("x", "y"), ast.BinOp(op, x, y))
        yield ast.Lambda(("x", "y"), ast.BinOp(op, y, x))
    for op in ast.COMPARE_OPERATORS:
        yield ast.Lambda(("x", "y"), ast.Compare(op, x, y))
    for op in ast.BOOL_OPERATORS:
        yield ast.Lambda(("x", "y"), ast.BoolOp(op, x, y))
        yield ast.Lambda(("x", "y"), ast.BoolOp(op, y, x))


def _predicate_candidates(constants: list) -> Iterable[ast.Function]:
    k, q = ast.Var("k"), ast.Var("q")
    for name in ast.COMPARISONS:
        yield ast.Comparison(name)
    for c in map(ast.Const, constants):
        for op in ast.COMPARE_OPERATORS:
            yield ast.Lambda(("k", "q"), ast.Compare(op, k, c))
            yield ast.Lambda(("k", "q"), ast.Compare(op, q, c))
            yield ast.Lambda(("k", "q"), ast.Compare(op, q, ast.BinOp("+", k, c)))
            yield ast.Lambda(("k", "q"), ast.Compare(op, k, ast.BinOp("+", q, c)))


def _first_agreeing(candidates: Iterable[ast.Function], function, arguments) -> ast.Function | None:
    for candidate in candidates:
        if _agrees(candidate, function, arguments):
            return candidate
    return None


def _table(function: Callable, arguments: list[tuple], *, unary: bool, as_bool: bool = False):
    entries = {}
    for args in arguments:
        try:
            value = function(*args)
        except Exception:  # noqa: BLE001, S112 - left out: undefined there, as in tracr
            continue
        entries[args[0] if unary else args] = bool(value) if as_bool else value
    try:
        return ast.Table(tuple(entries.items()))
    except TypeError as error:
        raise BridgeError(
            f"a tracr function returns a value that cannot be tabled: {error}"
        ) from None


def _sorted_values(values: Iterable) -> list:
    return sorted(values, key=lambda v: (type(v).__name__, repr(v)))


def _recorded(carrier) -> ast.Function | None:
    """The function `to_tracr` recorded on a callable (or a LinearSequenceMap) it made."""
    fn = getattr(carrier, RECORDED_FUNCTION, None)
    return fn if isinstance(fn, ast.Function) else None


def _unary_function(function: Callable, values: frozenset) -> ast.Function:
    if _recorded(function):
        return _recorded(function)
    arguments = [(x,) for x in _sorted_values(values) if x is not None]
    found = _first_agreeing(_unary_candidates(_constants(function)), function, arguments)
    return found or _table(function, arguments, unary=True)


def _binary_function(function: Callable, fst: frozenset, snd: frozenset) -> ast.Function:
    if _recorded(function):
        return _recorded(function)
    arguments = [
        (x, y)
        for x, y in itertools.product(_sorted_values(fst), _sorted_values(snd))
        if x is not None and y is not None
    ]
    found = _first_agreeing(_binary_candidates(), function, arguments)
    return found or _table(function, arguments, unary=False)


def _predicate_function(function: Callable, keys: frozenset, queries: frozenset) -> ast.Function:
    if _recorded(function):
        return _recorded(function)
    # tracr applies a predicate to None too (a Comparison raises on it), so None is checked.
    arguments = list(itertools.product(_sorted_values(keys), _sorted_values(queries)))

    def truthy(k, q):
        return bool(function(k, q))

    found = _first_agreeing(_predicate_candidates(_constants(function)), truthy, arguments)
    return found or _table(function, arguments, unary=False, as_bool=True)


# ==========================================================================
# .rasp -> tracr
# ==========================================================================


def to_tracr(program: ast.Program) -> rasp.SOp:
    """The tracr expression computing `program` (definitions named after the program's)."""
    return _ToTracr(program).output()


class _ToTracr:
    def __init__(self, program: ast.Program):
        self.program = program
        self.lookup = program.lookup()
        self.by_name: dict[str, rasp.RASPExpr] = {}
        self.in_progress: set[str] = set()

    def output(self) -> rasp.SOp:
        expr = self.build(self.program.output)
        if not isinstance(expr, rasp.SOp):
            raise BridgeError("the program returns a selector; tracr needs an SOp")
        return expr

    def resolve(self, name: str) -> rasp.RASPExpr:
        if name not in self.by_name:
            if name not in self.lookup:
                raise BridgeError(f"undefined name {name!r}")
            if name in self.in_progress:
                raise BridgeError(f"definition {name!r} refers to itself")
            self.in_progress.add(name)
            expr = self.build(self.lookup[name])
            self.in_progress.discard(name)
            # tokens and indices keep their own names: tracr knows them by type.
            if not isinstance(expr, (rasp.TokensType, rasp.IndicesType)):
                expr = expr.named(name)
            self.by_name[name] = expr
        return self.by_name[name]

    def build(self, node: ast.Node) -> rasp.RASPExpr:
        handler = _TO_TRACR.get(type(node))
        if handler is None:
            raise BridgeError(f"cannot translate {type(node).__name__} to tracr")
        expr = handler(self, node)
        primitive = isinstance(node, (ast.Tokens, ast.Indices))
        if isinstance(node, ast.SOp) and not (primitive and node.encoding == ast.CATEGORICAL):
            expr = rasp.annotate(expr, encoding=_TRACR_ENCODINGS[node.encoding])
        return expr


_TRACR_ENCODINGS = {
    ast.CATEGORICAL: rasp.Encoding.CATEGORICAL,
    ast.NUMERICAL: rasp.Encoding.NUMERICAL,
}


def _predicate(fn: ast.Function):
    if isinstance(fn, ast.Comparison):
        return _TRACR_COMPARISONS[fn.op]
    return _tracr_callable(fn)


def _tracr_callable(fn: ast.Function) -> Callable:
    """fn's callable, carrying fn itself so that `from_tracr` gets it back exactly."""
    function = make_callable(fn)
    setattr(function, RECORDED_FUNCTION, fn)
    return function


def linear_factors(fn: ast.Function) -> tuple[float, float] | None:
    """(a, b) when `fn` is `lambda x, y: a*x + b*y` written any linear way, else None."""
    if not isinstance(fn, ast.Lambda) or fn.arity != 2:
        return None
    coefficients = _linear_coefficients(fn.body, fn.params)
    if coefficients is None or coefficients.get(None, 0) != 0:
        return None
    return coefficients.get(fn.params[0], 0), coefficients.get(fn.params[1], 0)


def _linear_coefficients(expr: ast.Expr, params: tuple[str, ...]) -> dict | None:
    """Coefficient per parameter (None: the constant term), or None when not linear."""
    if isinstance(expr, ast.Var) and expr.name in params:
        return {expr.name: 1}
    if isinstance(expr, ast.Const) and _is_number(expr.value):
        return {None: expr.value}
    if isinstance(expr, ast.UnaryOp) and expr.op == "-":
        inner = _linear_coefficients(expr.operand, params)
        return None if inner is None else {k: -v for k, v in inner.items()}
    if isinstance(expr, ast.BinOp) and expr.op in ("+", "-"):
        left = _linear_coefficients(expr.left, params)
        right = _linear_coefficients(expr.right, params)
        if left is None or right is None:
            return None
        sign = 1 if expr.op == "+" else -1
        return {k: left.get(k, 0) + sign * right.get(k, 0) for k in left.keys() | right.keys()}
    if isinstance(expr, ast.BinOp) and expr.op == "*":
        left = _linear_coefficients(expr.left, params)
        right = _linear_coefficients(expr.right, params)
        if left is None or right is None:
            return None
        for scale, other in ((left, right), (right, left)):
            if set(scale) <= {None}:
                factor = scale.get(None, 0)
                return {k: factor * v for k, v in other.items()}
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _to_tokens(builder: _ToTracr, node: ast.Tokens):
    return rasp.tokens


def _to_indices(builder: _ToTracr, node: ast.Indices):
    return rasp.indices


def _to_name(builder: _ToTracr, node: ast.Name):
    return builder.resolve(node.id)


def _to_full(builder: _ToTracr, node: ast.Full):
    return rasp.Full(node.value)


def _to_map(builder: _ToTracr, node: ast.Map):
    # simplify=False: tracr would otherwise fuse nested maps into one.
    return rasp.Map(_tracr_callable(node.fn), builder.build(node.arg), simplify=False)


def _to_sequence_map(builder: _ToTracr, node: ast.SequenceMap):
    left, right = builder.build(node.left), builder.build(node.right)
    factors = linear_factors(node.fn) if node.encoding == ast.NUMERICAL else None
    if factors is not None:
        linear = rasp.LinearSequenceMap(left, right, *factors)
        setattr(linear, RECORDED_FUNCTION, node.fn)  # copies made by annotating keep it
        return linear
    return rasp.SequenceMap(_tracr_callable(node.fn), left, right)


def _to_aggregate(builder: _ToTracr, node: ast.Aggregate):
    return rasp.Aggregate(
        builder.build(node.selector), builder.build(node.sop), default=node.default
    )


def _to_selector_width(builder: _ToTracr, node: ast.SelectorWidth):
    return rasp.SelectorWidth(builder.build(node.selector))


def _to_select(builder: _ToTracr, node: ast.Select):
    return rasp.Select(
        builder.build(node.keys), builder.build(node.queries), _predicate(node.predicate)
    )


def _to_select_and(builder: _ToTracr, node: ast.SelectAnd):
    return rasp.SelectorAnd(builder.build(node.left), builder.build(node.right))


def _to_select_or(builder: _ToTracr, node: ast.SelectOr):
    return rasp.SelectorOr(builder.build(node.left), builder.build(node.right))


def _to_select_not(builder: _ToTracr, node: ast.SelectNot):
    return rasp.SelectorNot(builder.build(node.inner))


_TO_TRACR: dict[type, Callable] = {
    ast.Name: _to_name,
    ast.Tokens: _to_tokens,
    ast.Indices: _to_indices,
    ast.Full: _to_full,
    ast.Map: _to_map,
    ast.SequenceMap: _to_sequence_map,
    ast.Aggregate: _to_aggregate,
    ast.SelectorWidth: _to_selector_width,
    ast.Select: _to_select,
    ast.SelectAnd: _to_select_and,
    ast.SelectOr: _to_select_or,
    ast.SelectNot: _to_select_not,
}
