"""The distiller's "outside the family" errors come from models truly outside it.

Each model here is a compiled tracr model with one component changed so that no
program of the language describes it: a head whose query also reads the
tokens (a query of two variables), an unembedding that reads the indices as
well as the output, a head whose attention favours later keys (a weighted mean,
where every aggregate of the language is a uniform one) read by an MLP. The
unchanged models distil (the controls).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import distill
import dsl
from distill.circuit.discovery import UnsupportedCircuit
from distill.config import DistillConfig
from distill.emit.recompile.tracr_compile import compile_program

CONFIG = DistillConfig(prove=False, samples=500)


# A running fraction thresholded by an MLP: the head's mean is what the MLP reads.
FRACTION = """
is_a = numerical map(lambda t: 1 if t == "a" else 0, tokens)
prevs = select(indices, indices, <=)
frac = numerical aggregate(prevs, is_a, default=0)
"""


@pytest.fixture(scope="module")
def fraction_model():
    program = dsl.parse(FRACTION + "return map(lambda x: 1 if x > 0.5 else 0, frac)\n")
    return distill.from_tracr(compile_program(program, vocab=["a", "b"], max_seq_len=4), rotate=0)


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


def test_the_unchanged_fraction_model_distils(fraction_model):
    assert distill.distill(fraction_model, CONFIG).check.ok


def _favour_later_keys(model, layer: int, ratio: float):
    """Make the layer's head weigh its selected keys by position: the last of the input's
    keys `ratio` times the first, smoothly (a score ramp along the indices' directions)."""
    n = model.config.max_seq_len
    attn = model.blocks[layer].attn
    head = int(np.flatnonzero(attn.W_Q.detach().abs().amax(dim=(1, 2)).numpy() > 0)[0])
    rows = model.pos_embed.W_pos[1 : n + 1].detach()
    ramp = torch.arange(n, dtype=rows.dtype)
    # w: the indices' directions scored as the position (mean removed), so the key still
    # reads only the indices; BOS's own position embedding (orthogonal to them in tracr)
    # scores 0.
    w = torch.linalg.lstsq(rows - rows.mean(dim=0), (ramp - ramp.mean())[:, None]).solution[:, 0]
    # v: a query coordinate no variable writes (W_Q v = 0), set to 1 by the query bias.
    W_Q = attn.W_Q[head].detach()
    v = torch.linalg.svd(W_Q).Vh[-1]
    assert float((W_Q @ v).abs().max()) == 0.0  # tracr's head leaves one spare
    slope = math.log(ratio) / (n - 1)
    with torch.no_grad():
        attn.b_Q[head] += v
        attn.W_K[head] += torch.outer(w, v) * slope / attn.scale


def test_a_weighted_mean_is_not_a_function_of_the_variables_read(fraction_model):
    # The selected keys' weights grow by a factor under 2 from first to last, so every key
    # the selector picks keeps over half the largest weight: the traces still read the
    # selector `<=`, and the head's output is a weighted mean of is_a, not frac.
    model = _copy(fraction_model)
    _favour_later_keys(model, layer=1, ratio=1.9)
    late, early = ["b", "b", "a", "a"], ["a", "a", "b", "b"]
    frac = dsl.evaluate(dsl.parse(FRACTION + "return frac\n"), [late, early])
    assert frac[0][3] == frac[1][3] == 0.5  # the language's mean cannot tell them apart
    assert model.predict([late])[0][3] != model.predict([early])[0][3]  # the model can
    with pytest.raises(UnsupportedCircuit) as raised:
        distill.distill(model, CONFIG)
    message = str(raised.value)
    # Both readings fail, and the error says why for each: the tables read off the weights
    # (a uniform mean) are refuted by the model; the traces show the MLP reads more than
    # the head's mean.
    weights, traces = message.split("; traces: ")
    assert weights.startswith("weights: no faithful program") and "refuted" in weights
    assert traces.startswith(
        "L1.MLP: its output is not a function of the variables it reads: with head_1_0 = 0.5"
    )
