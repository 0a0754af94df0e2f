"""Lambda bodies as Z3 arithmetic over REAL arguments, with where Python would raise."""

from __future__ import annotations

import z3

from dsl import ast
from verify.z3 import limits
from verify.z3.cells import TRUE, is_number, real_literal


class NotArithmetic(Exception):
    """The lambda body needs a non-number (a string, None): tabulate it instead."""


def to_real(term):
    return z3.If(term, z3.RealVal(1), z3.RealVal(0)) if z3.is_bool(term) else term


def truthy(term):
    return term if z3.is_bool(term) else term != 0


def is_arithmetic(fn: ast.Lambda) -> bool:
    probe = Arithmetic({name: z3.Real(f"probe_{name}") for name in fn.params}, TRUE)
    try:
        probe.translate(fn.body)
    except NotArithmetic:
        return False
    return True


class Arithmetic:
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
                raise NotArithmetic
            return handler(self, expr)
        finally:
            self.path = saved

    def raise_when(self, condition):
        self.undefined.append(z3.And(self.path, condition))


def _arith_const(tr: Arithmetic, expr: ast.Const):
    if isinstance(expr.value, bool):
        return z3.BoolVal(expr.value)
    if is_number(expr.value):
        return real_literal(expr.value)
    raise NotArithmetic


def _arith_var(tr: Arithmetic, expr: ast.Var):
    if expr.name not in tr.env:
        raise NotArithmetic
    return tr.env[expr.name]


def _floor(x):
    return z3.ToReal(z3.ToInt(x))


def _arith_binop(tr: Arithmetic, expr: ast.BinOp):
    left = to_real(tr.translate(expr.left))
    if expr.op == "**":
        exponent = expr.right
        if not (isinstance(exponent, ast.Const) and type(exponent.value) is int):
            raise NotArithmetic
        if not 0 <= exponent.value <= limits.MAX_POWER_EXPONENT:
            raise NotArithmetic
        result = z3.RealVal(1)
        for _ in range(exponent.value):
            result = result * left
        return result
    right = to_real(tr.translate(expr.right))
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
    raise NotArithmetic


COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _arith_compare(tr: Arithmetic, expr: ast.Compare):
    left, right = tr.translate(expr.left), tr.translate(expr.right)
    if z3.is_bool(left) and z3.is_bool(right) and expr.op in ("==", "!="):
        return COMPARE[expr.op](left, right)
    return COMPARE[expr.op](to_real(left), to_real(right))


def _unify(a, b):
    """Two branches as one sort: bools become 0/1 unless both are bools."""
    if z3.is_bool(a) and z3.is_bool(b):
        return a, b
    return to_real(a), to_real(b)


def _arith_boolop(tr: Arithmetic, expr: ast.BoolOp):
    # Python returns an operand: `a and b` is a when a is falsy, else b.
    left = tr.translate(expr.left)
    left_true = truthy(left)
    right = tr.translate(expr.right, path=left_true if expr.op == "and" else z3.Not(left_true))
    left, right = _unify(left, right)
    if expr.op == "and":
        return z3.If(left_true, right, left)
    return z3.If(left_true, left, right)


def _arith_unaryop(tr: Arithmetic, expr: ast.UnaryOp):
    operand = tr.translate(expr.operand)
    if expr.op == "not":
        return z3.Not(truthy(operand))
    return -to_real(operand)


def _arith_ifexp(tr: Arithmetic, expr: ast.IfExp):
    condition = truthy(tr.translate(expr.cond))
    then = tr.translate(expr.then, path=condition)
    orelse = tr.translate(expr.orelse, path=z3.Not(condition))
    then, orelse = _unify(then, orelse)
    return z3.If(condition, then, orelse)


def _arith_call(tr: Arithmetic, expr: ast.Call):
    args = [to_real(tr.translate(a)) for a in expr.args]
    if expr.func == "abs" and len(args) == 1:
        return z3.If(args[0] < 0, -args[0], args[0])
    if expr.func in ("min", "max") and len(args) >= 2:
        better = (lambda x, y: x < y) if expr.func == "min" else (lambda x, y: x > y)
        result = args[0]
        for other in args[1:]:
            result = z3.If(better(other, result), other, result)
        return result
    raise NotArithmetic


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
