"""certified(n) is sound: a model is certified only where it computes its program.

Every perturbed model here is a compiled tracr model with one component changed
(one MLP unit's threshold moved, one head's query weakened or flipped), kept
when the change makes it wrong on some, but not all, inputs of its domain. Some
such changes are still programs (a moved threshold is another table entry) and
may be certified, but then the program read off the weights must equal the
model on every input (enumerated: the independent truth). Those whose program
differs from the model somewhere (a softmax too soft at the longest length)
must be refused, and there must be at least ten of them. Certification, like the
checks, claims equality where every categorical aggregate selects one value. The unperturbed models
must be certified.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import distill
import dsl
from distill.circuit.certificate import Errors, certify
from distill.circuit.discovery import UnsupportedCircuit
from distill.circuit.precondition import precondition_holds
from distill.emit.recompile.tracr_compile import compile_program
from distill.models.numerics import RESOLUTION, in_float64
from distill.pipeline import _FromWeights
from dsl.domain import enumerate_inputs

PROGRAMS = {
    "reverse": ("examples/reverse.rasp", ["a", "b", "c"], 5),
    "hist": ("examples/hist.rasp", ["a", "b", "c"], 4),
    "length": ("examples/length.rasp", ["a", "b"], 6),
}


def _model(name: str):
    path, vocab, max_len = PROGRAMS[name]
    with open(path) as handle:
        program = dsl.parse(handle.read(), filename=path)
    assembled = compile_program(program, vocab=vocab, max_seq_len=max_len)
    return in_float64(distill.from_tracr(assembled, rotate=0))


def _domain(model) -> list[list]:
    config = model.config
    return [x for batch in enumerate_inputs(list(config.vocab), config.max_seq_len) for x in batch]


def _certified_and_program(model):
    try:
        reading = _FromWeights(model)
    except UnsupportedCircuit:
        return False, None
    return certify(reading.network, model).holds, reading.tables.program


def _perturbations(model):
    """(description, perturbed copy) for one changed component at a time."""
    for layer, block in enumerate(model.blocks):
        units = np.flatnonzero(block.mlp.W_out.detach().abs().amax(dim=1).numpy() > 0)
        scale = float(block.mlp.b_in.detach().abs().max()) or 1.0
        for unit in units:
            for shift in (-1.0, -0.5, -0.1, 0.1, 0.5, 1.0):
                copy = _copy(model)
                with torch.no_grad():
                    copy.blocks[layer].mlp.b_in[unit] += shift * scale
                yield f"L{layer}.MLP unit {unit} threshold {shift:+}", copy
        for head in range(model.config.n_heads):
            if not block.attn.W_Q[head].abs().max() > 0:
                continue
            for factor in (0.3, 0.1, 0.03, -0.1):
                copy = _copy(model)
                with torch.no_grad():
                    copy.blocks[layer].attn.W_Q[head] *= factor
                yield f"L{layer}.H{head} query x{factor}", copy


def _copy(model):
    copy = distill.models.family.Model(model.config, dtype=torch.float64)
    copy.load_state_dict(model.state_dict())
    return copy


def _differs(model, outputs, truth) -> list[bool]:
    if model.config.output_kind == "numerical":
        return [not np.allclose(a, b, atol=RESOLUTION) for a, b in zip(outputs, truth)]
    return [a != b for a, b in zip(outputs, truth)]


def test_certified_models_compute_their_program_and_models_that_do_not_are_refused():
    refused = []
    for name in sorted(PROGRAMS):
        model = _model(name)
        assert _certified_and_program(model)[0], name
        inputs = _domain(model)
        truth = model.predict(inputs)
        for description, perturbed in _perturbations(model):
            outputs = perturbed.predict(inputs)
            wrong = sum(_differs(model, outputs, truth))
            if not 0 < wrong < len(inputs):
                continue
            certified, program = _certified_and_program(perturbed)
            # The certificate claims equality under the precondition (see circuit.precondition).
            # (where an aggregate mixes values the table program is undefined: no claim).
            claimed = dsl.evaluate(program, inputs, undefined="mark") if program else []
            unfaithful = program is None or any(
                differs and holds and said is not None
                for differs, holds, said in zip(
                    _differs(model, claimed, outputs), precondition_holds(program, inputs), claimed
                )
            )
            if certified:
                assert not unfaithful, f"{name}: {description} is certified but not its program"
            elif unfaithful:
                refused.append((name, description, wrong, len(inputs)))
    assert len(refused) >= 10, refused


def test_a_bound_per_value_is_used_where_the_reader_knows_the_value():
    errors = Errors()
    writes = np.array([[0.0, 3.0, 4.0]])  # one direction, norm 5
    # A width head's bound shrinks as 1 / (w + 1): 0.5 at width 0, 0.1 at width 4.
    errors.add(writes, 0.5, 1.0, per_value=("width", np.array([0.5, 0.25, 0.1667, 0.125, 0.1])))
    reader = np.array([[0.0], [0.6], [0.8]])  # sees the direction in full
    assert errors.through(reader) == pytest.approx(0.5)
    assert errors.through(reader, {"width": 4}) == pytest.approx(0.1)
    assert errors.through(reader, {"other": 4}) == pytest.approx(0.5)
    assert errors.per_column(reader, {"width": 1})[0] == pytest.approx(0.25)
