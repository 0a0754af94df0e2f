"""Ground truth with tracr: compile a program, import it rotated, distill it, score it.

The score compares the distilled program with the *source* program:

- functional equivalence on the source's domain of definition: every input on
  which tracr's evaluator does not raise, compared at every position where it
  gives the source a value (where it gives None a compiled model outputs a
  value of its own). Checked on every input when the domain is small enough,
  else on seeded samples; and with Z3 against the source under the aggregate
  precondition, on the same terms (verify.equivalence.WHERE_SECOND_VALUED);
- size ratio: our operations over the source's (map, sequence_map, aggregate,
  selector_width, select);
- named-comparison recall: of the source's selects that use a named
  comparison, how many the distilled program names the same (up to swapped
  arguments: `<` and `>` count as one, as do `<=` and `>=`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import jax
import numpy as np
from tracr.compiler import compiling
from tracr.rasp import rasp

import dsl
from distill.checks.sweep import agreement_matrix, chunks, defined_inputs, evaluate_model
from distill.circuit.precondition import precondition_holds
from distill.circuit.tables import CAUSAL_SELECT
from distill.config import DistillConfig
from distill.groundtruth.tracr_suite import BOS
from distill.models.family import Model
from distill.models.tracr_import import from_tracr
from distill.pipeline import DistillResult, distill
from dsl import ast
from dsl.domain import count_inputs, sample_inputs
from dsl.interpreter import evaluate_arrays
from synth.metrics import operation_count
from verify.equivalence import SINGLE_VALUED_AGGREGATES, WHERE_SECOND_VALUED, equivalent
from verify.verdict import EXHAUSTIVE

_SAME_UP_TO_SWAP = {
    "<": "<",
    ">": "<",
    "<=": "<=",
    ">=": "<=",
    "==": "==",
    "!=": "!=",
    "true": "true",
    "false": "false",
}


@dataclass
class Score:
    agreement: str  # e.g. "agrees with the source on all 1,364 inputs ..." or the first difference
    agrees: bool
    defined_inputs: int  # inputs in the source's domain of definition that were compared
    covered: bool  # every defined input lies in the program's claimed domain
    source_model_differences: int  # inputs where the compiled model differs from its source
    proof: object  # verify.Verdict of Z3 against the source (precondition applied)
    size_ratio: float
    named_recall: float | None  # None when the source names no comparison
    source_named: int
    compile_seconds: float  # tracr's compile (cold with run_tracr(cold_compile=True))
    distill_seconds: float
    warm_compile_seconds: float | None = None  # the same compile again, when cold_compile


@dataclass
class GroundTruthRun:
    result: DistillResult
    score: Score
    source: ast.Program
    model: Model


def run_tracr(
    program: rasp.SOp,
    *,
    vocab,
    max_seq_len: int,
    rotate: int | None = 0,
    causal: bool = False,
    config: DistillConfig = DistillConfig(),
    prove_against_source: bool = True,
    z3_timeout: float = 60.0,
    progress: Callable[[str], None] | None = None,
    cold_compile: bool = False,
    mlp_exactness: float = 100,
) -> GroundTruthRun:
    """Compile `program` with tracr, import it rotated, distill it and score it against the source.

    cold_compile: time tracr's compile with jax's caches cleared first (what it costs in
    a new process), and time it once more warm; else the compile is timed as it comes.
    mlp_exactness: tracr's sharpness of discretising MLPs (its default is 100).
    """
    vocab = sorted(set(vocab), key=lambda v: (type(v).__name__, v))
    if progress:
        progress("compile")
    warm_compile_seconds = None
    if cold_compile:
        # As compiling a program costs in a new process: jax traces the model afresh.
        jax.clear_caches()
    compile_seconds, assembled = _timed_compile(program, vocab, max_seq_len, causal, mlp_exactness)
    if cold_compile:
        # The same program again in this process reuses jax's caches: reported beside it.
        warm_compile_seconds, _ = _timed_compile(program, vocab, max_seq_len, causal, mlp_exactness)
    model = from_tracr(assembled, rotate=rotate)
    start = time.perf_counter()
    result = distill(model, config, progress=progress)
    distill_seconds = time.perf_counter() - start
    source = dsl.from_tracr(program, vocab=vocab, max_seq_len=max_seq_len)
    if causal:
        source = _causal(source)
    score = _score(
        source,
        result,
        model,
        vocab,
        max_seq_len,
        config,
        prove_against_source,
        z3_timeout,
        progress,
    )
    score.compile_seconds, score.distill_seconds = compile_seconds, distill_seconds
    score.warm_compile_seconds = warm_compile_seconds
    return GroundTruthRun(result, score, source, model)


def _timed_compile(program, vocab, max_seq_len: int, causal: bool, mlp_exactness: float):
    start = time.perf_counter()
    assembled = compiling.compile_rasp_to_model(
        program,
        vocab=set(vocab),
        max_seq_len=max_seq_len,
        compiler_bos=BOS,
        causal=causal,
        mlp_exactness=mlp_exactness,
    )
    return time.perf_counter() - start, assembled


def _score(source, result, model, vocab, max_len, config, prove, z3_timeout, progress) -> Score:
    if count_inputs(vocab, max_len) <= config.exhaustive_limit:
        batches = (chunk.inputs for chunk in chunks(vocab, max_len))
    else:
        batches = [sample_inputs(vocab, max_len, config.samples, seed=config.seed)]
    comparison = _compare_with_source(source, result, model, batches)
    agrees = comparison.first_difference is None
    agreement = (
        f"agrees with the source on all {comparison.defined:,} inputs where it is defined"
        if agrees
        else "differs from the source on {!r}: source {!r}, distilled {!r}".format(
            *comparison.first_difference
        )
    )
    if comparison.outside_claim:
        # The source is defined there, but a categorical aggregate of the table program
        # selects several values: the model mixes them, and no claim is made.
        agreement += (
            f"; {comparison.outside_claim:,} of them outside the program's claim "
            "(an aggregate selects several values)"
        )
    proof = None
    if prove:
        if progress:
            progress("prove against the source")
        proof = equivalent(
            result.program,
            source,
            vocab=vocab,
            max_seq_len=max_len,
            timeout=z3_timeout,
            precondition=SINGLE_VALUED_AGGREGATES,
            relation=WHERE_SECOND_VALUED,
        )
    named_source = _named_comparisons(source)
    named_ours = _named_comparisons(result.program)
    recovered = sum((Counter(named_source) & Counter(named_ours)).values())
    return Score(
        agreement=agreement,
        agrees=agrees,
        defined_inputs=comparison.defined,
        covered=not comparison.outside_claim,
        source_model_differences=comparison.model_differences,
        proof=proof,
        size_ratio=operation_count(result.program) / max(operation_count(source), 1),
        named_recall=recovered / len(named_source) if named_source else None,
        source_named=len(named_source),
        compile_seconds=0.0,
        distill_seconds=0.0,
    )


@dataclass
class _SourceComparison:
    defined: int = 0  # inputs on which the source is defined
    outside_claim: int = 0  # of them, inputs outside the program's claimed domain (precondition)
    model_differences: int = 0  # of them, inputs where the model differs from the source
    first_difference: tuple | None = None  # (input, source output, distilled output)


def _compare_with_source(source, result, model, batches) -> _SourceComparison:
    """The distilled program and the model against the source, where the source is defined.

    The source's domain of definition: inputs on which tracr's evaluator does not
    raise. Where it gives None (e.g. nothing selected) a compiled model outputs some
    value of its own: those positions are not compared.
    """
    found = _SourceComparison()
    # When the program equals the model on every claimed input, the model differs from
    # the source exactly where the program does: no second pass of the model is needed.
    model_is_program = result.check.level == EXHAUSTIVE
    for inputs in batches:
        theirs = evaluate_arrays(source, inputs)
        ours = evaluate_arrays(result.program, inputs)
        valued = theirs.mask & _valued(theirs.output)[theirs.output.codes]
        defined = defined_inputs(theirs)
        claimed = np.asarray(precondition_holds(result.table_program, inputs), dtype=bool)
        found.defined += int(defined.sum())
        found.outside_claim += int((defined & ~claimed).sum())
        ours_agree = _agree_where_valued(theirs, ours.output, valued) & defined_inputs(ours)
        if found.first_difference is None and (defined & ~ours_agree).any():
            row = int(np.flatnonzero(defined & ~ours_agree)[0])
            outputs = [e.outputs()[row] for e in (theirs, ours)]
            found.first_difference = (inputs[row], *outputs)
        if model_is_program and not found.outside_claim:
            model_agree = ours_agree
        else:
            predicted = evaluate_model(model, inputs)
            model_agree = _agree_where_valued(theirs, predicted, valued)
        found.model_differences += int((defined & ~model_agree).sum())
    return found


def _valued(output) -> np.ndarray:
    return np.array([value is not None for value in output.table])


def _agree_where_valued(source, other, valued: np.ndarray) -> np.ndarray:
    """[batch] whether `other` (an SOpArray) equals the source at every valued position."""
    same = agreement_matrix(source.output.table, other.table)
    return (same[source.output.codes, other.codes] | ~valued).all(axis=1)


def _causal(program: ast.Program) -> ast.Program:
    """The program as a causal model computes it: each query sees keys at or before it."""

    def masked(node):
        return ast.SelectAnd(CAUSAL_SELECT, node) if isinstance(node, ast.Select) else node

    return ast.rewrite_program(program, masked)


def _named_comparisons(program: ast.Program) -> list[str]:
    found: list[str] = []

    def visit(node):
        if isinstance(node, ast.Select) and isinstance(node.predicate, ast.Comparison):
            found.append(_SAME_UP_TO_SWAP[node.predicate.op])
        for child in node.children:
            visit(child)

    for definition in program.definitions:
        visit(definition.node)
    visit(program.output)
    return found
