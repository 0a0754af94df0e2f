"""The family's trained-model parts: gelu_new, ln_eps, tied unembedding, old files still load."""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch

import distill
from distill.errors import ModelFileError
from distill.models.family import Model, ModelConfig, ModelConfigError


def config(**changes) -> ModelConfig:
    fields = dict(
        n_layers=1, d_model=4, n_heads=1, d_head=2, d_mlp=3, n_ctx=4, act_fn="gelu_new",
        normalization="LN", causal=True, vocab=("a", "b"), bos="BOS", max_seq_len=3,
        output_kind="categorical", output_values=("a", "b", "BOS"),
    )  # fmt: skip
    fields.update(changes)
    return ModelConfig(**fields)


def test_gelu_new_is_gpt2s_tanh_formula():
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    formula = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    mlp = Model(config(), dtype=torch.float64).blocks[0].mlp
    difference = (mlp.act(x) - formula).abs()
    # Both sides evaluate the formula in float64, each within `_tanh_gelu_rounding` of it
    # (possibly in other orders); the erf GELU differs from it by up to ~1e-3.
    assert bool((difference <= 2 * _tanh_gelu_rounding(x)).all()), difference.max()


def _tanh_gelu_rounding(x: torch.Tensor) -> torch.Tensor:
    """How far float64 evaluation of 0.5 x (1 + tanh(c (x + a x^3))) may be from its exact
    value, by counting roundings (u = 2^-53 each, gamma_k = k u / (1 - k u)):
    the argument z (x^3: 2, a x^3: 1, the sum: 1, c: 1, the constants a and c: 2) is off
    by at most gamma_7 c (|x| + a |x|^3); tanh is 1-Lipschitz and its library value is
    within 2 ulps (<= 2u) of tanh; 1 + t rounds once (<= 2u); 0.5 x (...) rounds twice."""
    u = 2.0**-53

    def gamma(k: int) -> float:
        return k * u / (1 - k * u)

    c, a = math.sqrt(2 / math.pi), 0.044715
    magnitude = x.abs()
    argument = gamma(7) * c * (magnitude + a * magnitude**3)
    return 0.5 * magnitude * (argument + 4 * u) + gamma(2) * magnitude


def test_ln_eps_is_used():
    """A constant residual (variance 0) normalises to b + 0 * w whatever eps; a vector
    (1, -1, 1, -1) has variance 1 and reads 1 / sqrt(1 + eps), by hand."""
    ln = Model(config(ln_eps=0.25), dtype=torch.float64).blocks[0].ln1
    x = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    assert torch.allclose(ln(x), x / math.sqrt(1.25))


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(ln_eps=0.0), "ln_eps"),
        (dict(ln_eps=1), "ln_eps"),
        (dict(tied_unembed="yes"), "tied_unembed"),
        (dict(tied_unembed=True, output_values=("b", "a")), "output_values"),
        (dict(act_fn="gelu_tanh"), "act_fn"),
    ],
)
def test_new_fields_are_validated(changes, field):
    with pytest.raises(ModelConfigError, match=f"{field}: expected"):
        config(**changes)


def test_tied_unembedding_is_checked_at_load(tmp_path):
    model = Model(config(tied_unembed=True))
    torch.manual_seed(0)
    with torch.no_grad():
        model.embed.W_E.normal_()
        model.unembed.W_U.copy_(model.embed.W_E[:3].T)
    model.save(tmp_path / "tied.safetensors")
    assert distill.load_model(tmp_path / "tied.safetensors").config.tied_unembed
    with torch.no_grad():
        model.unembed.W_U[0, 0] += 1
    model.save(tmp_path / "untied.safetensors")
    with pytest.raises(ModelFileError, match="unembed.W_U: expected embed.W_E"):
        distill.load_model(tmp_path / "untied.safetensors")


def test_a_file_without_the_new_fields_loads_with_the_defaults(tmp_path):
    path = tmp_path / "old.safetensors"
    Model(config(act_fn="relu", normalization=None)).save(path)
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    fields = json.loads(header["__metadata__"]["distill.config"])
    del fields["ln_eps"], fields["tied_unembed"]
    header["__metadata__"]["distill.config"] = json.dumps(fields)
    data = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(data)) + data + raw[8 + length :])
    loaded = distill.load_model(path).config
    assert (loaded.ln_eps, loaded.tied_unembed) == (1e-5, False)
