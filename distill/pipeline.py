"""The distillation pipeline: model -> readable program, verified.

    decompose (read the circuit off the weights) -> tables -> synthesize -> verify -> prove
                                                   (-> retry with counterexamples)

Each stage is one call; this module only sequences them, times them and runs
the counterexample loop. The tables are complete (every combination of the
values a component reads); synthesis matches the entries sample inputs reach,
and an input on which the result differs from the model or the tables makes
its entries binding in the next round.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

import synth
import verify
from distill.checks.against_model import (
    RememberingOracle,
    batch_map,
    check_against_model,
    extent,
)
from distill.circuit import tables as table_stage
from distill.circuit.certificate import Certificate, certify
from distill.circuit.completion import complete_tables, type_checks
from distill.circuit.credit import components_of
from distill.circuit.discovery import Circuit, UnsupportedCircuit, discover
from distill.circuit.evidence import collect
from distill.circuit.from_weights import output_labels, read_circuit
from distill.circuit.inputs import inputs_to_trace
from distill.circuit.merge_values import merge_equivalent_values
from distill.circuit.output import name_output, traced_output_labels
from distill.circuit.precondition import PRECONDITION
from distill.circuit.reachability import output_reachability
from distill.circuit.reached import restrict_to_reached
from distill.config import DistillConfig
from distill.errors import DistillError
from distill.models.family import Model
from distill.models.numerics import RESOLUTION, in_float64
from distill.stages import stage_timer
from dsl import ast
from dsl.errors import TypeCheckError
from verify.check import check as check_program
from verify.equivalence import SINGLE_VALUED_AGGREGATES, equivalent


class DistillFailed(DistillError):
    """No faithful program was found; carries the best candidate and its counterexample."""

    def __init__(self, message: str, candidate: ast.Program | None = None, verdict=None):
        super().__init__(message)
        self.candidate = candidate
        self.verdict = verdict


@dataclass
class DistillResult:
    program: ast.Program
    table_program: ast.Program
    circuit: Circuit
    components: dict[str, str]  # readable definition -> component
    check: verify.Verdict  # readable program vs the model, under the precondition
    whole_domain: verify.Verdict  # readable program vs the model, on every input
    proof: verify.Verdict | None  # readable == table program (Z3)
    precondition: str
    timings: dict[str, float] = field(default_factory=dict)
    rounds: int = 1
    certificate: Certificate | None = None  # the network computes its table program (bounds)
    weights_reading_failed: str = ""  # why the tables were read off traces instead

    @property
    def certified(self) -> bool:
        """certified(n): the network computes the table program on every input up to n, and the
        readable program is proved equal to it."""
        return bool(
            self.certificate is not None
            and self.certificate.holds
            and self.proof is not None
            and self.proof.level == "proved"
            and self.check.ok
        )

    @property
    def certificate_status(self) -> str:
        """certified(n), or why not, in words."""
        if self.certified:
            return self.verification
        if self.certificate is None:
            return f"not certified: tables read off traces ({self.weights_reading_failed})"
        if not self.certificate.holds:
            return f"not certified: {self.certificate.failure}"
        return "not certified: the readable program is not proved equal to the tables"

    @property
    def verification(self) -> str:
        """The strongest level reached, honestly: the certificate, else the check against the model."""
        if self.certified:
            return f"certified({self.certificate.max_seq_len})"
        return str(self.check)


def distill(
    model: Model,
    config: DistillConfig = DistillConfig(),
    progress: Callable[[str], None] | None = None,
    executor=None,
) -> DistillResult:
    """A readable program computing what `model` computes, verified against it (and proved
    equal to the tables read off it when config.prove).

    The checks against the model run their chunks through `executor` (distill.executor:
    in-process by default, or Ray workers); the result does not depend on it."""
    with _single_threaded_torch():
        # The weights are evaluated in float64 (see distill.models.numerics).
        return _distill(in_float64(model), config, progress, executor)


@contextmanager
def _single_threaded_torch():
    # The models are small: kernels take microseconds, and a second thread only adds
    # thread-pool waits (20x slower when the machine is busy).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _distill(model: Model, config: DistillConfig, progress, executor) -> DistillResult:
    timings: dict[str, float] = {}
    stage = stage_timer(timings, progress)

    def chunks_done(done: int, total: int | None) -> None:
        if progress:
            progress(f"verify ({done:,}{'' if total is None else f' of {total:,}'} chunks)")

    checking = {"executor": executor, "progress": chunks_done}
    oracle = RememberingOracle(model)
    try:
        with stage("decompose"):
            reader = _FromWeights(model)
        return _synthesize_and_check(model, config, reader, oracle, stage, timings, checking)
    except (UnsupportedCircuit, DistillFailed, TypeCheckError) as error:
        # Outside what the weights can be read as (e.g. soft attention): read the traces.
        reason = str(error)
    try:
        result = _synthesize_and_check(
            model, config, _FromTraces(model, oracle), oracle, stage, timings, checking
        )
    except (UnsupportedCircuit, DistillFailed, TypeCheckError) as error:
        raise _neither_reading(reason, error) from error
    result.weights_reading_failed = reason
    return result


def _neither_reading(weights: str, traces: Exception) -> DistillError:
    """The error when neither the weights nor the traces give a program: both reasons."""
    message = str(traces) if str(traces) == weights else f"weights: {weights}; traces: {traces}"
    if isinstance(traces, UnsupportedCircuit):
        return UnsupportedCircuit(message)
    if isinstance(traces, DistillFailed):
        return DistillFailed(message, traces.candidate, traces.verdict)
    # A table program that does not type-check is no program found, not bad input.
    return DistillFailed(message)


class _FromWeights:
    """Complete tables read off the weights; the traced inputs only say which entries bind."""

    def __init__(self, model: Model):
        self.network = read_circuit(model)
        self.circuit = copy.deepcopy(self.network)
        merge_equivalent_values(self.circuit)
        output_map = name_output(self.circuit, output_labels(self.circuit, model))
        self.tables = table_stage.build(self.circuit, output_map)

    def read(self, traced, stage):
        with stage("synthesize"):
            return self.tables, restrict_to_reached(self.tables.program, traced)


class _FromTraces:
    """Tables read off traces: entries the traced inputs reach, the rest unknown."""

    network = None

    def __init__(self, model: Model, oracle: RememberingOracle):
        self.model, self.oracle = model, oracle

    def read(self, traced, stage):
        with stage("trace"):
            evidence = collect(self.model, traced)
            self.oracle.remember(traced, evidence)
        with stage("decompose"):
            self.circuit = discover(self.model, evidence)
            labels = traced_output_labels(self.circuit, evidence, self.model.config)
            output_map = name_output(self.circuit, labels)
        with stage("tables"):
            tables = table_stage.build(self.circuit, output_map)
        return tables, tables.program


def _synthesize_and_check(model, config, reader, oracle, stage, timings, checking) -> DistillResult:
    vocab, max_len = list(model.config.vocab), model.config.max_seq_len
    traced = inputs_to_trace(vocab, max_len, config)
    candidate = None
    bind_all = False  # set once the readable form was undefined where the tables are not
    for round_number in range(1, config.max_rounds + 1):
        tables, bound = reader.read(traced, stage)
        if bind_all:
            bound = tables.program
        with stage("synthesize"):
            candidate = _readable(bound, tables, vocab, max_len)
            if bound is not tables.program and not type_checks(candidate, vocab, max_len):
                # A closed form fit to the reached entries fails on a value no sample reached
                # (e.g. `2 % x` at 0): bind every entry of the complete tables instead.
                candidate = _readable(tables.program, tables, vocab, max_len)
        with stage("verify"):
            check, whole = check_against_model(
                candidate, oracle, model, config, tables.program, **checking
            )
        failure = check
        if not check.ok:
            traced = traced + [list(c.input) for c in check.counterexamples]
            # Undefined where the model answers: a table bound on the reached entries only
            # lacks one an input needs (a combination no trace reached); bind every entry.
            bind_all |= any(c.got is None for c in check.counterexamples)
            continue
        proof = None
        if config.prove:
            with stage("prove"):
                proof = _prove(candidate, tables.program, vocab, max_len, config)
            failure = proof
            if proof.level == "refuted":
                # A readable form undefined where the tables are defined guessed a free entry
                # that leads nowhere: every entry binds from now on.
                bind_all |= any(c.expected is None for c in proof.counterexamples)
                if round_number < config.max_rounds:
                    # An input the samples missed tells the two apart: its entries bind next.
                    traced = traced + [list(c.input) for c in proof.counterexamples]
                    continue
                if reader.network is None and _table_incomplete(proof):
                    # The readable program passed the model; only the traced tables have gaps.
                    proof = dataclasses.replace(
                        proof,
                        level="unknown",
                        reason="the traces did not reach every table entry an input needs "
                        f"(e.g. {list(proof.counterexamples[0].input)}); "
                        "the readable program is checked against the model instead",
                    )
                    break
                raise DistillFailed(
                    f"the readable program differs from the tables read off the model: {proof}",
                    candidate,
                    proof,
                )
        break
    else:
        raise DistillFailed(
            f"no faithful program after {config.max_rounds} rounds: {failure}", candidate, failure
        )
    if proof is not None and proof.level == "unknown" and bound is not tables.program:
        # Tables bound on the reached entries only are undefined on combinations the proof
        # could not rule out; the same synthesis from every entry may be proved at once.
        every_entry = _from_every_entry(tables, oracle, model, config, stage, checking)
        if every_entry is not None:
            candidate, check, whole, proof = every_entry

    if whole is None:
        with stage("verify"):
            whole = check_program(
                candidate,
                oracle,
                vocab=vocab,
                max_seq_len=max_len,
                undefined="refute",
                tolerance=RESOLUTION,
                map_batches=batch_map(**checking),
                **extent(vocab, max_len, config),
            )
    certificate = None
    if reader.network is not None:
        with stage("certify"):
            reachable = output_reachability(
                reader.network, vocab, max_len, timeout=config.z3_timeout
            )
            certificate = certify(reader.network, model, reachable)
    components = components_of(candidate, tables.program, tables.components)
    return DistillResult(
        program=candidate,
        table_program=tables.program,
        circuit=reader.circuit,
        components=components,
        check=check,
        whole_domain=whole,
        proof=proof,
        precondition=PRECONDITION,
        timings=timings,
        rounds=round_number,
        certificate=certificate,
    )


def _from_every_entry(tables, oracle, model, config, stage, checking):
    """(program, check, whole-domain check, proof) of the readable program synthesized from
    every entry of the complete tables, when it is proved equal to them and passes the
    model; else None."""
    vocab, max_len = list(model.config.vocab), model.config.max_seq_len
    with stage("synthesize"):
        candidate = _readable(tables.program, tables, vocab, max_len)
    with stage("prove"):
        proof = _prove(candidate, tables.program, vocab, max_len, config)
    if proof.level != "proved":
        return None
    with stage("verify"):
        check, whole = check_against_model(
            candidate, oracle, model, config, tables.program, **checking
        )
    return (candidate, check, whole, proof) if check.ok else None


def _prove(candidate, table_program, vocab, max_len: int, config) -> verify.Verdict:
    return equivalent(
        candidate,
        table_program,
        vocab=vocab,
        max_seq_len=max_len,
        timeout=config.z3_timeout,
        precondition=SINGLE_VALUED_AGGREGATES,
    )


def _readable(program: ast.Program, tables, vocab, max_len: int) -> ast.Program:
    result = synth.readable(program, vocab=vocab, max_seq_len=max_len, free=tables.free)
    # Don't-care entries get values so the program type-checks; verification follows.
    return complete_tables(result.program, vocab, max_len)


def _table_incomplete(proof: verify.Verdict) -> bool:
    """Is every counterexample an input on which only the table program (second) is undefined?"""
    return bool(proof.counterexamples) and all(
        c.got is None and c.expected is not None for c in proof.counterexamples
    )
