"""The encoding's size limits, read at call time (`limits.FINITE_LIMIT`) so tests can patch them."""

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
# Rows of selectors are counted by token value (verify.z3.counting); off, every key
# is a term of its own (the positional encoding, the baseline of benchmarks/equiv.py).
COUNT_BY_VALUE = True
