"""A `.rasp` program as Z3 terms, for one input length (`verify.equivalence` uses it).

The input is one Z3 Int per position, the index of its token in the vocab.
Each SOp becomes one cell per position: a Z3 term for its value and a Z3 bool
for "the value is None" (tracr's undefined value, e.g. an aggregate's default);
a selector becomes a [query][key] matrix of cells holding Z3 bools. A value
term is one of two kinds, chosen per SOp from the values it can take:

- REAL: every value is a number (bools are 0/1, as Python's `True == 1`).
  Exact rationals, so means and arithmetic are exact. A float is read as the
  nearest fraction with denominator <= 10**6 (so the float 1/3 of a table
  matches the exact mean 1/3).
- CODE: some value is not a number. The term is an Int code from a `Universe`
  shared by both programs, one code per distinct value (Python equality: 1,
  1.0 and True share one).

Three layers make proofs fast:

1. Finite cells. A cell that depends on few input positions (its *support*)
   is computed concretely, as a table over every token assignment of its
   support, with the semantics of `dsl.evaluate`, and its Z3 term is built
   from the table as a canonical decision tree (positions ascending, tokens in
   vocab order, equal branches merged). Two programs computing the same
   function of the same positions get the *same* term, whatever their syntax
   (a lambda or a table, `<` or a flipped `>`), and Z3's hash-consing makes
   everything built on them equal too. Indices and constants have empty
   support, so a length-dependent computation is folded to constants.
2. Symbolic cells, where a support grows too large (typically after
   `selector_width` or `aggregate` over a whole row): maps apply a lambda as
   Z3 arithmetic where its body allows (numbers, arithmetic, comparisons,
   and/or/not, if-else, min/max/abs) and otherwise as a table over the values
   its arguments can take (as tracr's basis inference does); aggregates are
   the default on an empty selection, the selected value, the mean of several
   numbers (a chain over the count, so division stays by constants).
3. Rows counted by token value (`counting`). A row of finite cells that are
   one function of (key token, query token) is summed by value, over counts
   of each token (`Inputs.counts`) instead of position by position, in one
   normal form (linear in the counts, piecewise in the query token), kept
   through affine maps: `#{k: t_k < t_q}` and `n - #{k: t_k >= t_q}` are one
   term. The counts' definitions over the tokens are kept apart
   (`Inputs.definitions`): the equivalence check first searches without them,
   with only the `facts` the encoding states about counts.

Besides the output cells, encoding collects three formulas over the input:
- `undefined`: tracr's evaluator (and `dsl.evaluate`) raises: a comparison
  with None, a lambda that raises, a table without the entry, an aggregate of
  several values that are not all numbers.
- `escapes`: the input reaches a value the encoding cannot represent exactly
  (a lambda tabulated over candidate values applied to a mean outside them;
  the possible means are listed exactly unless there are more than
  `limits.MAX_MEANS`).
  The equivalence check excludes such inputs and answers unknown if one exists.
- `single_valued`: every categorical aggregate selects at most one distinct
  value (the precondition a compiled transformer needs).

The encoder is a dispatch table keyed by node type, like the interpreter.
Modules, one job each:

    limits       the size limits (patchable: read as `limits.X` at call time)
    cells        value kinds, cells, encoded SOps, the symbolic input
    tables       finite cells: tables over token assignments, decision trees
    encoder      the encoder's state, cell equality
    primitives   names, tokens, indices, full
    maps         map, sequence_map
    arithmetic   lambda bodies as Z3 arithmetic
    selectors    select, &, |, ~
    counting     rows of selectors counted by token value
    aggregates   selector_width, aggregate
    program      the dispatch table, encode_program, output equality per position
"""

from verify.z3.cells import OutOfTime, Universe, Unsupported, symbolic_inputs
from verify.z3.program import (
    ENCODERS,
    encode_program,
    outputs_equal_at,
)

__all__ = [
    "ENCODERS",
    "OutOfTime",
    "Universe",
    "Unsupported",
    "encode_program",
    "outputs_equal_at",
    "symbolic_inputs",
]
