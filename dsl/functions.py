"""Functions as callables: lambdas, tables and select comparisons.

`make_callable` turns the data of a `dsl.ast.Function` into a Python callable
with Python's semantics for every operator (true division `/`, `and`/`or`
returning an operand, ...) and tracr's semantics for select comparisons
(`key OP query`, raising on None). Lambda bodies are interpreted by walking
their AST once into nested closures: nothing is ever passed to `eval`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from dsl import ast, limits
from dsl.errors import EvaluationError
from dsl.limits import limit_text

# A program is data, so `2 ** 10 ** 9`, `"a" * 10 ** 12` or `"%2000000000s" % t` must
# not hang the tool or fill its memory: each operator refuses, before computing it, a
# result past dsl.limits.MAX_INT_BITS or MAX_STRING_LENGTH, and any complex result.


def _checked(result):
    """`result`, or OverflowError / ValueError when it is not a value of the language."""
    if isinstance(result, (int, str)) and not isinstance(result, bool):
        problem = limits.value_problem(result)
        if problem:
            raise OverflowError(f"the result would be {problem}")
    elif isinstance(result, complex):
        raise ValueError(f"the result {result!r} is a complex number")
    return result


def _power(base, exponent):
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        # |base| ** exponent has at least (bit_length - 1) * exponent + 1 bits.
        if (abs(base).bit_length() - 1) * exponent >= limits.MAX_INT_BITS:
            raise OverflowError(
                f"{_short(base)} ** {_short(exponent)} is past {limit_text('MAX_INT_BITS')}"
            )
    return _checked(base**exponent)


def _multiply(left, right):
    for text, count in ((left, right), (right, left)):
        if isinstance(text, str) and isinstance(count, int) and len(text) * count > 0:
            if len(text) * count > limits.MAX_STRING_LENGTH:
                raise OverflowError(
                    f"a string of {len(text) * count:,} characters is past "
                    f"{limit_text('MAX_STRING_LENGTH')}"
                )
    return _checked(left * right)


def _add(left, right):
    return _checked(left + right)


def _subtract(left, right):
    return _checked(left - right)


def _modulo(left, right):
    if isinstance(left, str):
        raise TypeError("'%' on a string (formatting) is not part of the language")
    return _checked(left % right)


def _floor_divide(left, right):
    return _checked(left // right)


def _divide(left, right):
    return _checked(left / right)


def _short(value) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else "a big int"
    return text if len(text) <= 40 else text[:40] + "..."


def _negate(value):
    return _checked(-value)


BINARY_FUNCTIONS: dict[str, Callable] = {
    "+": _add,
    "-": _subtract,
    "*": _multiply,
    "/": _divide,
    "//": _floor_divide,
    "%": _modulo,
    "**": _power,
}

COMPARE_FUNCTIONS: dict[str, Callable] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

UNARY_FUNCTIONS: dict[str, Callable] = {"-": _negate, "not": operator.not_}

# The arity each builtin accepts: min/max of one argument would iterate over it.
BUILTIN_FUNCTIONS: dict[str, tuple[Callable, range]] = {
    "min": (min, range(2, 1 << 30)),
    "max": (max, range(2, 1 << 30)),
    "abs": (lambda value: _checked(abs(value)), range(1, 2)),
}

# tracr's Comparison table, read `key OP query`.
SELECT_COMPARISONS: dict[str, Callable] = {
    **COMPARE_FUNCTIONS,
    "true": lambda key, query: True,
    "false": lambda key, query: False,
}


def make_callable(fn: ast.Function) -> Callable:
    """A Python callable computing `fn` (a Lambda, Table or Comparison)."""
    if isinstance(fn, ast.Lambda):
        return _lambda_callable(fn)
    if isinstance(fn, ast.Table):
        return _table_callable(fn)
    if isinstance(fn, ast.Comparison):
        return _comparison_callable(fn)
    raise EvaluationError(f"not a function: {fn!r}")


def _comparison_callable(fn: ast.Comparison) -> Callable:
    compare = SELECT_COMPARISONS[fn.op]

    def comparison(key, query):
        # Exactly tracr's `rasp.Comparison.__call__`.
        if key is None:
            raise ValueError("key is None!")
        if query is None:
            raise ValueError("query is None!")
        return compare(key, query)

    return comparison


def _table_callable(fn: ast.Table) -> Callable:
    entries = fn.as_dict()

    def lookup(*args):
        # Keyed by the argument itself for a map, by the pair for a sequence_map or
        # select: a map's key may be a tuple (tracr's n-ary sequence maps build them).
        key = args[0] if len(args) == 1 else args
        try:
            return entries[key]
        except KeyError:
            raise EvaluationError(f"table has no entry for {key!r}") from None
        except TypeError:  # an unhashable argument can never be a key
            raise EvaluationError(f"table has no entry for {key!r}") from None

    return lookup


def _lambda_callable(fn: ast.Lambda) -> Callable:
    if len(set(fn.params)) != len(fn.params):
        raise EvaluationError(f"lambda has a repeated parameter: {', '.join(fn.params)}")
    slots = {name: index for index, name in enumerate(fn.params)}
    body = compile_expr(fn.body, slots)
    arity = len(fn.params)

    def apply(*args):
        if len(args) != arity:
            raise TypeError(f"lambda takes {arity} argument(s), got {len(args)}")
        return body(args)

    return apply


def compile_expr(expr: ast.Expr, slots: dict[str, int]) -> Callable[[tuple], object]:
    """Turn an expression into a closure over the argument tuple (walking the AST once)."""
    compile_node = _EXPR_COMPILERS.get(type(expr))
    if compile_node is None:
        raise EvaluationError(f"not an expression: {expr!r}")
    return compile_node(expr, slots)


def _compile_const(expr: ast.Const, slots):
    value = expr.value
    return lambda args: value


def _compile_var(expr: ast.Var, slots):
    if expr.name not in slots:
        raise EvaluationError(f"lambda uses unknown variable {expr.name!r}")
    index = slots[expr.name]
    return lambda args: args[index]


def _compile_binop(expr: ast.BinOp, slots):
    function = _operator(BINARY_FUNCTIONS, expr.op)
    left, right = compile_expr(expr.left, slots), compile_expr(expr.right, slots)
    return lambda args: function(left(args), right(args))


def _compile_compare(expr: ast.Compare, slots):
    function = _operator(COMPARE_FUNCTIONS, expr.op)
    left, right = compile_expr(expr.left, slots), compile_expr(expr.right, slots)
    return lambda args: function(left(args), right(args))


def _compile_boolop(expr: ast.BoolOp, slots):
    left, right = compile_expr(expr.left, slots), compile_expr(expr.right, slots)
    if expr.op == "and":
        return lambda args: left(args) and right(args)
    if expr.op == "or":
        return lambda args: left(args) or right(args)
    raise EvaluationError(f"unknown boolean operator {expr.op!r}")


def _compile_unaryop(expr: ast.UnaryOp, slots):
    function = _operator(UNARY_FUNCTIONS, expr.op)
    operand = compile_expr(expr.operand, slots)
    return lambda args: function(operand(args))


def _compile_ifexp(expr: ast.IfExp, slots):
    cond = compile_expr(expr.cond, slots)
    then = compile_expr(expr.then, slots)
    orelse = compile_expr(expr.orelse, slots)
    return lambda args: then(args) if cond(args) else orelse(args)


def _compile_call(expr: ast.Call, slots):
    if expr.func not in BUILTIN_FUNCTIONS:
        raise EvaluationError(f"unknown function {expr.func!r} (expected one of min, max, abs)")
    function, arities = BUILTIN_FUNCTIONS[expr.func]
    if len(expr.args) not in arities:
        raise EvaluationError(f"{expr.func} cannot take {len(expr.args)} argument(s)")
    arguments = tuple(compile_expr(arg, slots) for arg in expr.args)
    return lambda args: function(*(argument(args) for argument in arguments))


def _operator(table: dict[str, Callable], op: str) -> Callable:
    if op not in table:
        raise EvaluationError(f"unknown operator {op!r}")
    return table[op]


_EXPR_COMPILERS = {
    ast.Const: _compile_const,
    ast.Var: _compile_var,
    ast.BinOp: _compile_binop,
    ast.Compare: _compile_compare,
    ast.BoolOp: _compile_boolop,
    ast.UnaryOp: _compile_unaryop,
    ast.IfExp: _compile_ifexp,
    ast.Call: _compile_call,
}
