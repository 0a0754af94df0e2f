"""Values over a finite set of points as numpy vectors, the currency of the expression search.

A vector is one of three kinds: bool, numeric (int64 or float64) or object
(strings, None, mixtures). Each operator of the lambda language is applied
elementwise with Python's semantics; an application Python would reject (a
TypeError, a division by zero, arithmetic on booleans or strings) gives None,
meaning "this expression is not defined on the points", and the search drops it.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np

# Floats equal to this many decimals are one value: table outputs computed by
# tracr's lambdas and by a closed form may differ in the last bit.
DECIMALS = 9


def make_vector(values: Sequence) -> np.ndarray:
    """The narrowest vector kind holding `values` exactly."""
    values = list(values)
    if values and all(type(v) is bool for v in values):
        return np.array(values, dtype=bool)
    if values and all(type(v) is int for v in values) and all(abs(v) < 2**62 for v in values):
        return np.array(values, dtype=np.int64)
    if values and all(type(v) in (int, float, bool) for v in values):
        # Booleans among numbers are numbers (a numerical aggregate of one flag is the flag).
        return np.array(values, dtype=np.float64)
    array = np.empty(len(values), dtype=object)
    for position, value in enumerate(values):
        array[position] = value
    return array


def kind(vector: np.ndarray) -> str:
    """'b' bool, 'i' int, 'f' float or 'o' object."""
    return {"b": "b", "i": "i", "f": "f"}.get(vector.dtype.kind, "o")


def is_numeric(vector: np.ndarray) -> bool:
    return kind(vector) in "if"


def behaviour_key(vector: np.ndarray) -> tuple:
    """Two vectors have the same key exactly when they are the same values (floats to DECIMALS)."""
    vector_kind = kind(vector)
    if vector_kind == "f":
        return ("f", (np.round(vector, DECIMALS) + 0.0).tobytes())
    if vector_kind in "bi":
        return (vector_kind, vector.tobytes())
    return ("o", tuple((type(v).__name__, v) for v in vector))


def partition_signature(vector: np.ndarray) -> bytes:
    """Which points share a value: each point's value numbered by first occurrence."""
    vector_kind = kind(vector)
    if vector_kind == "o":
        numbering: dict = {}
        items = [(type(v).__name__, v) for v in vector.tolist()]
        numbers = [numbering.setdefault(item, len(numbering)) for item in items]
        return np.array(numbers, dtype=np.int64).tobytes()
    values = np.round(vector, DECIMALS) + 0.0 if vector_kind == "f" else vector
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.reshape(-1)].tobytes()


# --------------------------------------------------------------------------
# Elementwise operators. Each returns a vector, or None where Python (or
# readability: no arithmetic on booleans or strings) rejects the operands.
# --------------------------------------------------------------------------

_NUMPY_ARITHMETIC = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
    "//": np.floor_divide,
    "%": np.mod,
}

_PYTHON_COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _finite(vector: np.ndarray) -> np.ndarray | None:
    if kind(vector) == "f" and not np.all(np.isfinite(vector)):
        return None
    return vector


def binary(op: str, left: np.ndarray, right: np.ndarray) -> np.ndarray | None:
    if not (is_numeric(left) and is_numeric(right)):
        return None
    if op in ("/", "//", "%") and np.any(right == 0):
        return None
    with np.errstate(all="ignore"):
        result = _NUMPY_ARITHMETIC[op](left, right)
    return _finite(result)


def compare(op: str, left: np.ndarray, right: np.ndarray) -> np.ndarray | None:
    left_kind, right_kind = kind(left), kind(right)
    if is_numeric(left) and is_numeric(right):
        return _PYTHON_COMPARE[op](left, right)
    if op in ("==", "!=") and (left_kind == right_kind or "o" in (left_kind, right_kind)):
        return _python_elementwise(_PYTHON_COMPARE[op], left, right)
    if left_kind == right_kind == "o":
        return _python_elementwise(_PYTHON_COMPARE[op], left, right)
    return None


def _flags(vector: np.ndarray) -> bool:
    """Booleans, possibly with None (an aggregate's default) among them."""
    if kind(vector) == "b":
        return True
    return kind(vector) == "o" and all(v is None or type(v) is bool for v in vector.tolist())


def boolean(op: str, left: np.ndarray, right: np.ndarray) -> np.ndarray | None:
    if kind(left) == kind(right) == "b":
        return np.logical_and(left, right) if op == "and" else np.logical_or(left, right)
    if _flags(left) and _flags(right):
        # Python's `and` / `or` return an operand: True and None is None.
        function = (lambda a, b: a and b) if op == "and" else (lambda a, b: a or b)
        return _python_elementwise(function, left, right)
    return None


def unary(op: str, operand: np.ndarray) -> np.ndarray | None:
    if op == "not":
        if kind(operand) == "b":
            return np.logical_not(operand)
        if is_numeric(operand):
            return operand == 0
        return _python_elementwise(lambda a: not a, operand)
    if is_numeric(operand):
        return np.negative(operand)
    return None


def call(func: str, args: Sequence[np.ndarray]) -> np.ndarray | None:
    if not all(is_numeric(arg) for arg in args):
        return None
    if func == "abs":
        return np.abs(args[0])
    return (np.minimum if func == "min" else np.maximum)(*args)


def choose(cond: np.ndarray, then: np.ndarray, orelse: np.ndarray) -> np.ndarray | None:
    if kind(cond) != "b":
        return None
    chosen = zip(cond.tolist(), then.tolist(), orelse.tolist())
    return make_vector([t if c else e for c, t, e in chosen])


def _python_elementwise(function, *vectors: np.ndarray) -> np.ndarray | None:
    try:
        return make_vector([function(*items) for items in zip(*(v.tolist() for v in vectors))])
    except (TypeError, ValueError):
        return None
