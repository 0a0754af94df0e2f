"""The distiller's "outside the family" errors come from models truly outside it.

Each model here is a compiled tracr model with one read widened so that no
program of the language describes it: a head whose query also reads the
tokens (a query of two variables), an unembedding that reads the indices as
well as the output. The unchanged model distils (the control).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import distill
import dsl
from distill.circuit.discovery import UnsupportedCircuit
from distill.config import DistillConfig
from distill.emit.recompile.tracr_compile import compile_program

CONFIG = DistillConfig(prove=False, samples=500)


@pytest.fixture(scope="module")
def reverse_model():
    with open("examples/reverse.rasp") as handle:
        program = dsl.parse(handle.read(), filename="reverse.rasp")
    return distill.from_tracr(
        compile_program(program, vocab=["a", "b", "c"], max_seq_len=4), rotate=0
    )


def _copy(model):
    copy = distill.models.family.Model(model.config, dtype=torch.float64)
    copy.load_state_dict(model.state_dict())
    return copy


def _direction(rows: torch.Tensor) -> torch.Tensor:
    """A unit direction along which `rows` (embeddings) vary."""
    centred = rows - rows.mean(dim=0)
    return centred[0] / centred[0].norm()


def test_the_unchanged_model_distils(reverse_model):
    assert distill.distill(reverse_model, CONFIG).check.ok


def test_a_query_of_two_variables_reads_several(reverse_model):
    model = _copy(reverse_model)
    tokens = _direction(model.embed.W_E[: len(model.config.vocab)])
    last = model.blocks[-1].attn
    head = int(np.flatnonzero(last.W_Q.detach().abs().amax(dim=(1, 2)).numpy() > 0)[0])
    with torch.no_grad():
        scale = last.W_Q[head].norm()
        last.W_Q[head] += scale * torch.outer(tokens, torch.ones(model.config.d_head)) / 4
    with pytest.raises(UnsupportedCircuit, match="query reads several variables"):
        distill.distill(model, CONFIG)


def test_an_unembedding_of_two_variables_expects_one(reverse_model):
    model = _copy(reverse_model)
    indices = _direction(model.pos_embed.W_pos[1 : model.config.max_seq_len + 1])
    with torch.no_grad():
        W_U = model.unembed.W_U
        W_U += W_U.norm() * torch.outer(indices, torch.linspace(-1, 1, W_U.shape[1])) / 4
    with pytest.raises(UnsupportedCircuit, match="expected exactly one variable"):
        distill.distill(model, CONFIG)
