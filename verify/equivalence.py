"""Program against program: proved equal with Z3 for every input up to a length, or a counterexample.

The claim `equivalent(p, q)` proves, for each length 1..max_seq_len over
symbolic tokens, is tracr's notion of equality extended to undefined inputs:

    UNDEFINED_RULE: p and q are undefined on exactly the same inputs (where
    tracr's evaluator, like `dsl.evaluate`, raises), and wherever they are
    defined their outputs are equal at every position (Python's `==`, None
    included; numbers as exact rationals).

So a program that raises where the other one answers is *not* equivalent to
it, and two programs that raise on the same inputs are not blamed for it. With
`precondition=SINGLE_VALUED_AGGREGATES` the claim is restricted to inputs on
which every categorical aggregate of both programs selects at most one distinct
value (where a compiled transformer is meaningful); the verdict names it.

Answers: proved(n); refuted with a counterexample that is re-run with
`dsl.evaluate` before it is reported (one that does not reproduce, e.g.
through float rounding, gives unknown); unknown with the reason (the time
budget ran out, a construct the encoding cannot express, or an input whose
values it cannot represent exactly). Every solver call gets the remaining
time budget; a budget spent before a length is done gives unknown, never
proved.

Each length is one encoding (concrete length: `length`, `indices` and masks
are constants) and a search per goal of the negated claim (undefinedness,
then each position), see `_search`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import z3

import dsl
from dsl import limits
from dsl.domain import Domain, ordered_vocab
from verify.by_parts import NotByParts, prove_by_parts
from verify.check import outputs_agree
from verify.verdict import BY_PARTS, BY_Z3, PROVED, REFUTED, UNKNOWN, Counterexample, Verdict
from verify.z3 import (
    OutOfTime,
    Universe,
    Unsupported,
    encode_program,
    outputs_equal_at,
    symbolic_inputs,
)

UNDEFINED_RULE = (
    "both programs are undefined on the same inputs, and equal wherever they are defined"
)
WHERE_SECOND_VALUED = "where-second-valued"
RELATIONS = {
    None: UNDEFINED_RULE,
    WHERE_SECOND_VALUED: "wherever the second program is defined, the first is, and equals it "
    "at every position where the second has a value (None leaves a position open)",
}
SINGLE_VALUED_AGGREGATES = "single-valued-aggregates"
PRECONDITIONS = {
    SINGLE_VALUED_AGGREGATES: "every categorical aggregate selects at most one distinct value",
}
DEFAULT_TIMEOUT = 60.0
# Z3 takes its timeout in milliseconds as a 32-bit number: at most about 49 days.
MAX_TIMEOUT = 4_000_000.0
# A counterexample must reproduce under dsl.evaluate, whose numbers are floats.
REPRODUCE_TOLERANCE = 1e-9


def equivalent(
    p: dsl.Program,
    q: dsl.Program,
    *,
    vocab: Sequence,
    max_seq_len: int,
    timeout: float = DEFAULT_TIMEOUT,
    precondition: str | None = None,
    min_len: int = 1,
    relation: str | None = None,
) -> Verdict:
    """Prove p and q equal on every input of length min_len..max_seq_len over vocab (see UNDEFINED_RULE).

    relation=WHERE_SECOND_VALUED proves the weaker claim that p agrees with q on q's
    domain of definition (RELATIONS says it in words): q as a source program whose
    None positions a compiled model fills with values of its own.
    """
    if precondition is not None and precondition not in PRECONDITIONS:
        raise ValueError(
            f"precondition must be one of {sorted(PRECONDITIONS)}, got {precondition!r}"
        )
    if relation not in RELATIONS:
        raise ValueError(f"relation must be None or {WHERE_SECOND_VALUED!r}, got {relation!r}")
    # An empty range of lengths would be "proved" without a look: refuse it, and any
    # domain past dsl.limits, before the work starts.
    limits.check_domain(vocab, max_seq_len, min_len=min_len)
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a finite number of seconds, got {timeout!r}")
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ValueError(f"timeout must be above 0 and at most {MAX_TIMEOUT:g} s, got {timeout!r}")
    start = time.perf_counter()
    deadline = start + timeout
    vocab = ordered_vocab(vocab)
    domain = Domain(tuple(vocab), max_seq_len, min_len, PRECONDITIONS.get(precondition, ""))

    def verdict(level: str, **fields) -> Verdict:
        return Verdict(
            level=level,
            max_seq_len=max_seq_len,
            domain=str(domain),
            undefined_rule=RELATIONS[relation],
            seconds=time.perf_counter() - start,
            **fields,
        )

    if relation is None:
        # A pair of the same shape is decided part by part, at every length at once;
        # any other pair (or a part that cannot be matched) goes to Z3.
        try:
            single_valued = precondition == SINGLE_VALUED_AGGREGATES
            prove_by_parts(p, q, vocab, max_seq_len, single_valued=single_valued, deadline=deadline)
        except NotByParts:
            pass
        else:
            return verdict(PROVED, method=BY_PARTS)
    universe = Universe()
    for length in range(min_len, max_seq_len + 1):
        if time.perf_counter() >= deadline:
            return verdict(
                UNKNOWN, reason=f"timeout after {timeout:g} s (proved up to length {length - 1})"
            )
        try:
            outcome = _check_length(p, q, vocab, length, universe, deadline, precondition, relation)
        except OutOfTime:
            return verdict(
                UNKNOWN, reason=f"timeout after {timeout:g} s while encoding length {length}"
            )
        except Unsupported as error:
            return verdict(UNKNOWN, reason=f"not expressible in the Z3 encoding: {error}")
        if isinstance(outcome, Counterexample):
            return verdict(REFUTED, counterexamples=(outcome,))
        if outcome is not None:
            return verdict(UNKNOWN, reason=f"{outcome} (at length {length})")
    return verdict(PROVED, method=BY_Z3)


def _check_length(p, q, vocab, length, universe, deadline, precondition, relation):
    """None when p and q agree at this length; else a Counterexample or the reason for unknown."""
    inputs = symbolic_inputs(vocab, length, universe, deadline)
    single_valued = precondition == SINGLE_VALUED_AGGREGATES
    left = encode_program(p, inputs, single_valued=single_valued)
    right = encode_program(q, inputs, single_valued=single_valued)
    goals = _counterexample_goals(left, right, inputs, relation)
    restriction = [inputs.constraint]  # read after encoding: it holds the facts stated on the way
    if single_valued:
        restriction += [left.single_valued, right.single_valued]
    escapes = left.escapes + right.escapes
    no_escape = (
        z3.Not(z3.Or([condition for condition, _ in escapes])) if escapes else z3.BoolVal(True)
    )
    found = _search(deadline, [*restriction, no_escape], goals, inputs.definitions)
    if isinstance(found, z3.ModelRef):
        return _reproduce(p, q, inputs.tokens_from_model(found), relation)
    if found is not None:
        return found
    if not escapes:
        return None
    # No counterexample among representable inputs: is every input representable?
    escaping = z3.Or([condition for condition, _ in escapes])
    found = _search(deadline, restriction, [escaping], inputs.definitions)
    if not isinstance(found, z3.ModelRef):
        return found
    reason = next(r for c, r in escapes if z3.is_true(found.eval(c, model_completion=True)))
    return f"an input the encoding cannot represent exactly: {reason}"


def _counterexample_goals(left, right, inputs, relation) -> list[z3.BoolRef]:
    """The negated claim as a disjunction: one goal for undefinedness, one per position."""
    where_valued = relation == WHERE_SECOND_VALUED
    same = outputs_equal_at(left.output, right.output, inputs, where_valued=where_valued)
    if where_valued:
        # not (right undefined, or left defined and equal where right has a value)
        defined = z3.Not(right.undefined)
        goals = [z3.And(defined, left.undefined)]
    else:
        # not (undefined on the same inputs, and equal where defined)
        defined = z3.Not(left.undefined)
        goals = [left.undefined != right.undefined]
    goals += [z3.And(defined, z3.Not(cell)) for cell in same]
    return [g for g in map(z3.simplify, goals) if not z3.is_false(g)]


def _search(deadline: float, base: list, goals: list, definitions: list):
    """The first goal satisfiable with `base`: a model, or the reason for unknown; None
    when no goal is.

    Goals one at a time (push/pop on one solver) keep each search small. Each is
    tried first without the encoding's `definitions`: dropping constraints only
    adds models, so unsat there is unsat, and the facts the encoding states
    mostly suffice. A model found so may not be an input: then with them.
    """
    abstract = z3.Solver()
    abstract.add(*base)
    whole = abstract
    if definitions:
        whole = z3.Solver()
        whole.add(*base, *definitions)
    for goal in goals:
        result, found = _try(abstract, goal, deadline)
        if result != z3.unsat and whole is not abstract:
            result, found = _try(whole, goal, deadline)
        if result != z3.unsat:
            return found
    return None


def _try(solver: z3.Solver, goal: z3.BoolRef, deadline: float):
    """(result, model or the reason for unknown) of `goal` under the solver's constraints."""
    remaining_ms = max(1, int((deadline - time.perf_counter()) * 1000))
    solver.set("timeout", remaining_ms)
    solver.push()
    try:
        solver.add(goal)
        result = solver.check()
        if result == z3.sat:
            return result, solver.model()
        if result == z3.unknown:
            return result, _unknown_reason(solver, deadline)
        return result, None
    finally:
        solver.pop()


def _unknown_reason(solver: z3.Solver, deadline: float) -> str:
    reason = solver.reason_unknown()
    if time.perf_counter() >= deadline or reason in ("timeout", "canceled"):
        return "timeout: the solver ran out of time"
    return f"the solver gave up: {reason}"


def _reproduce(p, q, sequence: list, relation: str | None) -> Counterexample | str:
    """The solver's counterexample, re-run concretely; a reason string if it does not reproduce."""
    expected = dsl.evaluate(p, [sequence], undefined="mark")[0]
    got = dsl.evaluate(q, [sequence], undefined="mark")[0]
    if got is None and (expected is None or relation == WHERE_SECOND_VALUED):
        return f"Z3's counterexample {sequence} does not reproduce: the second program is undefined on it"
    if expected is None or got is None:
        side = "first" if expected is None else "second"
        return Counterexample(
            tuple(sequence),
            None if expected is None else tuple(expected),
            None if got is None else tuple(got),
            None,
            note=f"only the {side} program is undefined",
        )
    compared = expected
    if relation == WHERE_SECOND_VALUED:
        # Positions where the second program has no value are not part of the claim.
        compared = [e if g is not None else None for e, g in zip(expected, got)]
    position = outputs_agree(compared, got, REPRODUCE_TOLERANCE)
    if position is None:
        return f"Z3's counterexample {sequence} does not reproduce under dsl.evaluate (float rounding?)"
    return Counterexample(tuple(sequence), tuple(expected), tuple(got), position)
