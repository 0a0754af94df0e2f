"""The canonical text of a program: `parse(to_source(p)) == p` for every program.

One binding per line, then `return`. The shapes that `dsl.parser` builds from
infix sugar (see its docstring) print back as infix; every other node prints in
function-call form. Parentheses are added only where Python's precedence needs
them, and `numerical` is printed as a prefix (categorical is the default).
"""

from __future__ import annotations

import math

from dsl import ast
from dsl.errors import DSLError

# Binding strength of sequence expressions, loosest first (Python's order).
_ANNOTATED, _COMPARE, _OR, _AND, _ARITH, _TERM, _UNARY, _POWER, _ATOM = range(9)

# Binding strength of lambda bodies, loosest first.
(
    _BODY_IF,
    _BODY_OR,
    _BODY_AND,
    _BODY_NOT,
    _BODY_COMPARE,
    _BODY_ARITH,
    _BODY_TERM,
    _BODY_NEG,
    _BODY_POWER,
    _BODY_ATOM,
) = range(10)

_ARITH_OPS = ("+", "-")
_TERM_OPS = ("*", "/", "//", "%")


def to_source(program: ast.Program) -> str:
    """The canonical `.rasp` text of `program`."""
    lines = [f"{d.name} = {_node(d.node, _ANNOTATED)}" for d in program.definitions]
    lines.append(f"return {_node(program.output, _ANNOTATED)}")
    return "\n".join(lines) + "\n"


# ---- sequence expressions ---------------------------------------------------------


def _node(node: ast.Node, min_strength: int) -> str:
    text, strength = _node_text(node)
    if isinstance(node, ast.SOP_TYPES) and node.encoding is ast.NUMERICAL:
        text, strength = f"numerical {text}", _ANNOTATED
    return f"({text})" if strength < min_strength else text


def _operand(operand, min_strength: int) -> str:
    """An infix operand: a node, or the constant of a map written as a literal."""
    if isinstance(operand, ast.Const):
        text = literal(operand.value)
        strength = _UNARY if text.startswith("-") else _ATOM
        return f"({text})" if strength < min_strength else text
    return _node(operand, min_strength)


def _infix_strengths(op: str) -> tuple[int, int, int]:
    """(strength of `a op b`, least strength of a, least strength of b)."""
    if op in ast.COMPARE_OPERATORS:
        return _COMPARE, _COMPARE + 1, _COMPARE + 1  # comparisons never chain
    if op == "**":
        return _POWER, _ATOM, _UNARY  # right-associative, binds tighter than unary minus
    strength = _ARITH if op in _ARITH_OPS else _TERM
    return strength, strength, strength + 1


def infix_shape(node: ast.Node):
    """(op, left, right) when `node` is what the parser builds from `left op right`, else None.

    Operands are nodes, or the `Const` of a map written as a literal.
    """
    fn = getattr(node, "fn", None)
    if not isinstance(fn, ast.Lambda) or not isinstance(fn.body, (ast.BinOp, ast.Compare)):
        return None
    body = fn.body
    x, y = ast.Var("x"), ast.Var("y")
    if (
        isinstance(node, ast.SequenceMap)
        and fn.params == ("x", "y")
        and (body.left, body.right) == (x, y)
    ):
        return body.op, node.left, node.right
    if isinstance(node, ast.Map) and fn.params == ("x",):
        if body.left == x and isinstance(body.right, ast.Const):
            return body.op, node.arg, body.right
        if isinstance(body.left, ast.Const) and body.right == x:
            return body.op, body.left, node.arg
    return None


def is_negation(node: ast.Node) -> bool:
    """Whether `node` is what the parser builds from `-operand`."""
    return isinstance(node, ast.Map) and node.fn == ast.Lambda(
        ("x",), ast.UnaryOp("-", ast.Var("x"))
    )


def _node_text(node: ast.Node) -> tuple[str, int]:
    shape = infix_shape(node)
    if shape is not None:
        op, left, right = shape
        strength, left_strength, right_strength = _infix_strengths(op)
        return f"{_operand(left, left_strength)} {op} {_operand(right, right_strength)}", strength
    if is_negation(node):
        return f"-{_node(node.arg, _UNARY)}", _UNARY
    return _NODE_PRINTERS[type(node)](node)


def _call(name: str, *arguments: str) -> tuple[str, int]:
    return f"{name}({', '.join(arguments)})", _ATOM


def _aggregate(node: ast.Aggregate):
    arguments = [_node(node.selector, _ANNOTATED), _node(node.sop, _ANNOTATED)]
    if node.default is not None:
        arguments.append(f"default={literal(node.default)}")
    return _call("aggregate", *arguments)


_NODE_PRINTERS = {
    ast.Name: lambda n: (n.id, _ATOM),
    ast.Tokens: lambda n: ("tokens", _ATOM),
    ast.Indices: lambda n: ("indices", _ATOM),
    ast.Full: lambda n: _call("full", literal(n.value)),
    ast.Map: lambda n: _call("map", function(n.fn), _node(n.arg, _ANNOTATED)),
    ast.SequenceMap: lambda n: _call(
        "sequence_map", function(n.fn), _node(n.left, _ANNOTATED), _node(n.right, _ANNOTATED)
    ),
    ast.Aggregate: _aggregate,
    ast.SelectorWidth: lambda n: _call("selector_width", _node(n.selector, _ANNOTATED)),
    ast.Select: lambda n: _call(
        "select", _node(n.keys, _ANNOTATED), _node(n.queries, _ANNOTATED), function(n.predicate)
    ),
    ast.SelectAnd: lambda n: (f"{_node(n.left, _AND)} & {_node(n.right, _AND + 1)}", _AND),
    ast.SelectOr: lambda n: (f"{_node(n.left, _OR)} | {_node(n.right, _OR + 1)}", _OR),
    ast.SelectNot: lambda n: (f"~{_node(n.inner, _UNARY)}", _UNARY),
}


# ---- functions -----------------------------------------------------------------------


def function(fn: ast.Function) -> str:
    """The text of a lambda, table or select comparison."""
    if isinstance(fn, ast.Comparison):
        return fn.op
    if isinstance(fn, ast.Lambda):
        return f"lambda {', '.join(fn.params)}: {expression(fn.body)}"
    if isinstance(fn, ast.Table):
        entries = (f"{_table_key(key)}: {literal(value)}" for key, value in fn.entries)
        return "{" + ", ".join(entries) + "}"
    raise DSLError(f"cannot print function {fn!r}")


def _table_key(key) -> str:
    if isinstance(key, tuple):
        return "(" + ", ".join(literal(part) for part in key) + ")"
    return literal(key)


# ---- lambda bodies ---------------------------------------------------------------------


def expression(expr: ast.Expr) -> str:
    """The text of a lambda body."""
    return _expr(expr, _BODY_IF)


def _expr(expr: ast.Expr, min_strength: int) -> str:
    text, strength = _expr_text(expr)
    return f"({text})" if strength < min_strength else text


def _binary_strengths(op: str) -> tuple[int, int, int]:
    if op in ast.COMPARE_OPERATORS:
        return _BODY_COMPARE, _BODY_COMPARE + 1, _BODY_COMPARE + 1
    if op == "**":
        return _BODY_POWER, _BODY_ATOM, _BODY_NEG
    strength = _BODY_ARITH if op in _ARITH_OPS else _BODY_TERM
    return strength, strength, strength + 1


def _binary(expr) -> tuple[str, int]:
    strength, left, right = _binary_strengths(expr.op)
    return f"{_expr(expr.left, left)} {expr.op} {_expr(expr.right, right)}", strength


def _bool_op(expr: ast.BoolOp) -> tuple[str, int]:
    strength = _BODY_OR if expr.op == "or" else _BODY_AND
    return f"{_expr(expr.left, strength)} {expr.op} {_expr(expr.right, strength + 1)}", strength


def _unary(expr: ast.UnaryOp) -> tuple[str, int]:
    if expr.op == "not":
        return f"not {_expr(expr.operand, _BODY_NOT)}", _BODY_NOT
    operand = _expr(expr.operand, _BODY_NEG)
    # `-1` reads back as the constant -1, so a minus applied to a number keeps parentheses.
    if _is_number(expr.operand) and not operand.startswith("("):
        operand = f"({operand})"
    return f"-{operand}", _BODY_NEG


def _is_number(expr: ast.Expr) -> bool:
    return (
        isinstance(expr, ast.Const)
        and isinstance(expr.value, (int, float))
        and not isinstance(expr.value, bool)
    )


def _const(expr: ast.Const) -> tuple[str, int]:
    text = literal(expr.value)
    return text, _BODY_NEG if text.startswith("-") else _BODY_ATOM


def _if(expr: ast.IfExp) -> tuple[str, int]:
    then = _expr(expr.then, _BODY_OR)
    cond = _expr(expr.cond, _BODY_OR)
    return f"{then} if {cond} else {_expr(expr.orelse, _BODY_IF)}", _BODY_IF


_EXPR_PRINTERS = {
    ast.Const: _const,
    ast.Var: lambda e: (e.name, _BODY_ATOM),
    ast.BinOp: _binary,
    ast.Compare: _binary,
    ast.BoolOp: _bool_op,
    ast.UnaryOp: _unary,
    ast.IfExp: _if,
    ast.Call: lambda e: (f"{e.func}({', '.join(_expr(a, _BODY_IF) for a in e.args)})", _BODY_ATOM),
}


def _expr_text(expr: ast.Expr) -> tuple[str, int]:
    return _EXPR_PRINTERS[type(expr)](expr)


# ---- literals --------------------------------------------------------------------------

_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def literal(value: ast.Value) -> str:
    """A value as `.rasp` literal text (reads back as an equal value)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):  # a literal like 1e999 is refused, not read as inf
            raise DSLError(f"{value!r} has no literal in .rasp (only finite numbers do)")
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_escape(c) for c in value) + '"'
    raise DSLError(f"{value!r} is not a .rasp value")


def _escape(char: str) -> str:
    if char in _STRING_ESCAPES:
        return _STRING_ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
