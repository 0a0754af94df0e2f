"""Ground truth with tracr: compile a program, import it rotated, distill it, score it.

The score compares the distilled program with the *source* program:

- functional equivalence on the source's domain of definition: every input on
  which tracr's evaluator gives the source a value at every position (no
  exception, no None: a compiled model has no None to output). Checked on
  every input when the domain is small enough, else on seeded samples; and
  with Z3 against the source under the aggregate precondition;
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

from tracr.compiler import compiling
from tracr.rasp import rasp

import dsl
from distill.model import Model
from distill.pipeline import DistillConfig, DistillResult, distill
from distill.precondition import precondition_holds
from distill.tables import CAUSAL_SELECT
from distill.tracr_import import from_tracr
from distill.tracr_suite import BOS
from dsl import ast
from dsl.domain import count_inputs, enumerate_inputs, sample_inputs
from synth.metrics import operation_count
from verify.equivalence import SINGLE_VALUED_AGGREGATES, equivalent

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
    compile_seconds: float
    distill_seconds: float


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
) -> GroundTruthRun:
    """Compile `program` with tracr, import it rotated, distill it and score it against the source."""
    vocab = sorted(set(vocab), key=lambda v: (type(v).__name__, v))
    if progress:
        progress("compile")
    start = time.perf_counter()
    assembled = compiling.compile_rasp_to_model(
        program, vocab=set(vocab), max_seq_len=max_seq_len, compiler_bos=BOS, causal=causal
    )
    compile_seconds = time.perf_counter() - start
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
    return GroundTruthRun(result, score, source, model)


def _score(source, result, model, vocab, max_len, config, prove, z3_timeout, progress) -> Score:
    if count_inputs(vocab, max_len) <= config.exhaustive_limit:
        inputs = [x for batch in enumerate_inputs(vocab, max_len) for x in batch]
    else:
        inputs = sample_inputs(vocab, max_len, config.samples, seed=config.seed)
    source_out = dsl.evaluate(source, inputs, undefined="mark")
    # The source's domain of definition: inputs on which tracr's evaluator does not raise.
    # Where it gives None (e.g. nothing selected) a compiled model outputs some value of
    # its own: those positions are not compared.
    defined = [i for i, out in enumerate(source_out) if out is not None]
    defined_inputs = [inputs[i] for i in defined]
    ours = dsl.evaluate(result.program, defined_inputs, undefined="mark")
    model_out = model.predict(defined_inputs)
    claimed = precondition_holds(result.table_program, defined_inputs) if defined_inputs else []
    first_bad = None
    differences = 0
    for x, i, mine, predicted in zip(defined_inputs, defined, ours, model_out):
        theirs = source_out[i]
        if not _equal_where_valued(predicted, theirs):
            differences += 1
        if first_bad is None and not _equal_where_valued(mine, theirs):
            first_bad = (x, theirs, mine)
    agrees = first_bad is None
    agreement = (
        f"agrees with the source on all {len(defined_inputs):,} inputs where it is defined"
        if agrees
        else f"differs from the source on {first_bad[0]!r}: source {first_bad[1]!r}, distilled {first_bad[2]!r}"
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
        )
    named_source = _named_comparisons(source)
    named_ours = _named_comparisons(result.program)
    recovered = sum((Counter(named_source) & Counter(named_ours)).values())
    return Score(
        agreement=agreement,
        agrees=agrees,
        defined_inputs=len(defined_inputs),
        covered=all(claimed),
        source_model_differences=differences,
        proof=proof,
        size_ratio=operation_count(result.program) / max(operation_count(source), 1),
        named_recall=recovered / len(named_source) if named_source else None,
        source_named=len(named_source),
        compile_seconds=0.0,
        distill_seconds=0.0,
    )


def _causal(program: ast.Program) -> ast.Program:
    """The program as a causal model computes it: each query sees keys at or before it."""

    def masked(node):
        return ast.SelectAnd(CAUSAL_SELECT, node) if isinstance(node, ast.Select) else node

    return ast.rewrite_program(program, masked)


def _equal_where_valued(ours, source, tolerance: float = 1e-4) -> bool:
    """Equal at every position where the source has a value (None: the source leaves it open)."""
    if ours is None or len(ours) != len(source):
        return False
    for x, y in zip(ours, source):
        if y is None:
            continue
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            if abs(x - y) > tolerance:
                return False
        elif x != y:
            return False
    return True


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
