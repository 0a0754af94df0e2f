"""`distill.from_tracr`: the imported model computes what tracr's network computes.

The truth is tracr itself: its haiku network, jitted over the whole domain of
each case (padded, with tracr's own PAD mask), cross-checked against
`assembled.apply(...).decoded` on a few inputs; and tracr's own activations for
the traces.
"""

from __future__ import annotations

import dataclasses
import math

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tracr.compiler import test_cases as tracr_test_cases
from tracr.transformer import encoder as tracr_encoder
from tracr_cases import compiled, distinct_compilable, tracr_in_float64

import distill
from distill.errors import BadInputError
from distill.models.family import Model, ModelConfig
from distill.models.numerics import (
    RESOLUTION,
    UNIT_ROUNDOFFS,
    error_bounds,
    gamma,
    output_error_bound,
    rounding_resolves,
)
from distill.models.tracr_import import random_orthogonal
from dsl.domain import count_inputs, enumerate_inputs, sample_inputs

EXHAUSTIVE_LIMIT = 20_000
SAMPLES = 2_000
APPLY_SAMPLES = 20  # inputs per case checked against tracr's `apply` itself
# tracr compiles with a 2-token input (BOS + 2 = its init shape), so `apply` on
# inputs of length 2 reuses those compiled ops: ~10 ms each instead of ~1 s per new length.
APPLY_LENGTH = 2
SEEDS = (0, 1, 2)

_UNIVERSAL = {case["testcase_name"] for case in tracr_test_cases.UNIVERSAL_TEST_CASES}
# tracr's causal test cases are its universal ones compiled with causal=True.
CAUSAL_CASES = [
    dataclasses.replace(case, causal=True)
    for case in distinct_compilable()
    if case.name in _UNIVERSAL and not case.causal
]
CASES = distinct_compilable() + CAUSAL_CASES


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tensors here are small: torch's second thread only spins against the other test worker."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def case_id(case) -> str:
    return case.name + ("-causal" if case.causal else "")


def domain(case) -> list[list]:
    """Every input when there are at most EXHAUSTIVE_LIMIT, else a seeded sample."""
    vocab = case.sorted_vocab
    if count_inputs(vocab, case.max_seq_len) <= EXHAUSTIVE_LIMIT:
        return [x for batch in enumerate_inputs(vocab, case.max_seq_len) for x in batch]
    return sample_inputs(vocab, case.max_seq_len, SAMPLES, seed=0)


def tracr_scores(assembled, inputs: list[list]) -> list[np.ndarray]:
    """tracr's network on every input at once: its unembedded output [length, d_out], BOS dropped."""
    input_encoder = assembled.input_encoder

    @hk.without_apply_rng
    @hk.transform
    def forward(tokens):
        network = assembled.get_compiled_model()
        network.pad_token = input_encoder.pad_encoding  # tracr's own key mask for PAD
        network.use_unembed_argmax = False  # scores: `apply` takes their argmax
        return network(tokens, use_dropout=False).unembedded_output

    width = max(map(len, inputs)) + 1
    ids = np.full((len(inputs), width), input_encoder.pad_encoding)
    for row, tokens in enumerate(inputs):
        ids[row, : len(tokens) + 1] = input_encoder.encode([input_encoder.bos_token, *tokens])
    # In float64, as our model computes: both are then the exact function of the same
    # weights up to rounding bounded far below the resolution (checked in the test).
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), assembled.params)
        scores = np.asarray(jax.jit(forward.apply)(params, jnp.asarray(ids)))
    scores = scores.reshape(len(inputs), width, -1)
    return [scores[row, 1 : len(tokens) + 1] for row, tokens in enumerate(inputs)]


def assert_agrees_with_tracr(
    got: list[list],
    scores: list[np.ndarray],
    inputs: list[list],
    assembled,
    tolerance: float | None = None,
):
    """Numerical: within `tolerance`, the two sides' derived rounding bounds (both compute one
    exact function). Categorical: tracr's argmax, where its scores decide it.

    Where tracr's top scores tie (an aggregate that selects nothing gives an
    all-zero output), tracr's argmax is decided by its attention's leak and by
    rounding, which no change of basis preserves; there the value must be one of
    the tied ones (the model breaks ties to the first, in every basis).
    """
    if isinstance(assembled.output_encoder, tracr_encoder.NumericalEncoder):
        for tokens, out, want in zip(inputs, got, scores, strict=True):
            want = want.reshape(-1)
            close = len(out) == len(want) and np.allclose(out, want, rtol=0, atol=tolerance)
            assert close, f"input {tokens}: got {out}, tracr gives {want.tolist()}"
        return
    decode = assembled.output_encoder.decode
    for tokens, out, want in zip(inputs, got, scores, strict=True):
        assert len(out) == len(want), f"input {tokens}: got {out}"
        for position, (value, row) in enumerate(zip(out, want)):
            tied = decode(np.flatnonzero(row >= row.max() - RESOLUTION).tolist())
            if len(tied) == 1:
                assert value == tied[0], (
                    f"input {tokens} at {position}: got {value!r}, tracr gives {tied[0]!r}"
                )
            else:
                assert value in tied, (
                    f"input {tokens} at {position}: got {value!r}, tracr ties {tied}"
                )


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_predict_equals_tracr_unrotated_and_rotated(case):
    assembled = compiled(case)
    inputs = domain(case)
    scores = tracr_scores(assembled, inputs)
    numerical = isinstance(assembled.output_encoder, tracr_encoder.NumericalEncoder)
    # tracr's float64 forward rounds within the bound derived for its own (unrotated) weights.
    tracr_bound = output_error_bound(distill.from_tracr(assembled), inputs) if numerical else None

    # The batched truth (padded, masked) equals tracr's `apply` itself.
    with tracr_in_float64(assembled) as tracr64:
        for tokens in [x for x in inputs if len(x) == APPLY_LENGTH][:APPLY_SAMPLES]:
            decoded = tracr64.apply([assembled.input_encoder.bos_token, *tokens]).decoded[1:]
            truth = scores[inputs.index(tokens)]
            tolerance = 2 * tracr_bound if numerical else None
            assert_agrees_with_tracr([decoded], [truth], [tokens], assembled, tolerance)

    predictions = []
    for rotate in (None, *SEEDS):
        model = distill.from_tracr(assembled, rotate=rotate)
        assert model.config.causal == case.causal
        # The resolution is safe: rounding provably stays under half of it (on a sample;
        # not yet provable for the deep shuffle_dyck models, see tests/test_numerics.py).
        assert "shuffle_dyck" in case.name or rounding_resolves(model, inputs[:64])
        predictions.append(model.predict(inputs))
        tolerance = output_error_bound(model, inputs) + tracr_bound if numerical else None
        assert_agrees_with_tracr(predictions[-1], scores, inputs, assembled, tolerance)
    if model.config.output_kind == "categorical":  # ties break the same way in every basis
        assert all(p == predictions[0] for p in predictions)


# ----------------------------------------------------------------------------
# Labels, config and traces, on one small case.
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reverse_case():
    [case] = [case for case in distinct_compilable() if case.name == "reverse_1"]
    return case


@pytest.fixture(scope="module")
def reverse_assembled(reverse_case):
    return compiled(reverse_case)


def _axis_aligned_rows(matrix: torch.Tensor) -> int:
    """Nonzero rows that live on a few coordinates (most entries zero), as one-hot rows do."""
    norms = matrix.norm(dim=-1, keepdim=True)
    negligible = matrix.abs() <= 1e-6 * norms
    return int(((norms[:, 0] > 1e-6) & (negligible.float().mean(-1) > 0.5)).sum())


def test_rotation_leaves_no_axis_aligned_embedding_row(reverse_assembled):
    plain = distill.from_tracr(reverse_assembled)
    # tracr's rows are one-hot (plus the constant "one" direction): the test can see them.
    assert _axis_aligned_rows(plain.embed.W_E) == plain.config.d_vocab
    assert _axis_aligned_rows(plain.pos_embed.W_pos) == plain.config.max_seq_len
    for seed in SEEDS:
        rotated = distill.from_tracr(reverse_assembled, rotate=seed)
        for matrix in (rotated.embed.W_E, rotated.pos_embed.W_pos, rotated.unembed.W_U.T):
            assert _axis_aligned_rows(matrix) == 0
            assert (matrix.abs().max(-1).values <= 0.9 * matrix.norm(dim=-1)).all()


def test_rotations_differ_by_seed_and_repeat_with_the_same_seed(reverse_assembled):
    first, again, other = (distill.from_tracr(reverse_assembled, rotate=s) for s in (0, 0, 1))
    assert torch.equal(first.embed.W_E, again.embed.W_E)
    assert not torch.allclose(first.embed.W_E, other.embed.W_E)


@pytest.mark.parametrize("rotate", [None, 0])
def test_saved_file_holds_no_residual_label(reverse_assembled, rotate, tmp_path):
    path = tmp_path / "reverse.safetensors"
    distill.from_tracr(reverse_assembled, rotate=rotate).save(path)
    data = path.read_bytes()
    labels = reverse_assembled.residual_labels
    assert any(":" in label for label in labels)  # the labels the file must not hold
    found = [label for label in labels if label.encode() in data]
    assert found == []
    model = distill.load_model(path)
    assert not hasattr(model, "residual_labels")


def test_config_carries_the_io_spec(reverse_case, reverse_assembled):
    config = distill.from_tracr(reverse_assembled).config
    assert config.vocab == tuple(reverse_case.sorted_vocab)
    assert config.bos == "BOS"
    assert config.max_seq_len == reverse_case.max_seq_len
    assert config.n_ctx == reverse_case.max_seq_len + 1
    assert config.output_kind == "categorical"
    assert set(config.output_values) == set(reverse_case.vocab)
    assert config.d_model == len(reverse_assembled.residual_labels)
    assert config.n_layers == reverse_assembled.model_config.num_layers


@pytest.mark.parametrize("rotate", [None, 0])
def test_traces_equal_tracr_activations(reverse_assembled, rotate):
    """Embeddings, residuals and attention scores match tracr's (residuals rotated back)."""
    model = distill.from_tracr(reverse_assembled, rotate=rotate)
    d_model = model.config.d_model
    q = None if rotate is None else torch.from_numpy(random_orthogonal(d_model, rotate))
    tokens = ["b", "d", "a"]
    with tracr_in_float64(reverse_assembled) as tracr64:
        theirs = tracr64.apply(["BOS", *tokens])
        theirs = {
            "embedded": np.asarray(theirs.input_embeddings)[0],
            "residuals": [np.asarray(r)[0] for r in theirs.residuals],
            "logits": [np.asarray(a)[0] for a in theirs.attn_logits],
        }
    ids, mask = model.encode([tokens])
    _, trace = model.run_with_trace(ids, mask)

    # Both compute one exact function in float64: each side within its derived rounding bound
    # (tracr's: that of its own unrotated weights), plus the rounding of rotating ours back.
    ours = error_bounds(model, [tokens])
    reference = error_bounds(distill.from_tracr(reverse_assembled), [tokens])

    def assert_within(got, want, name):
        if q is None:
            turned, rotation = got[0], 0.0
        else:
            turned = got[0] @ q.T
            rotation = gamma(d_model + 2, UNIT_ROUNDOFFS["float64"]) * (got[0].abs() @ q.abs().T)
        bound = ours[name][0] + reference[name][0]
        bound = bound[..., None] if bound.dim() < turned.dim() else bound
        excess = (turned - torch.tensor(want)).abs() - (bound + rotation)
        assert float(excess.max()) <= 0, (name, float(excess.max()))

    assert_within(trace["hook_embed"] + trace["hook_pos_embed"], theirs["embedded"], "embed")
    for layer in range(model.config.n_layers):
        for step, name in enumerate(("hook_resid_mid", "hook_resid_post")):
            want = theirs["residuals"][2 * layer + step]
            assert_within(trace[f"blocks.{layer}.{name}"], want, f"blocks.{layer}.{name}")
        scores = f"blocks.{layer}.attn.hook_attn_scores"
        gap = (trace[scores][0] - torch.tensor(theirs["logits"][layer])).abs()
        assert (gap <= ours[scores][0] + reference[scores][0]).all(), scores


def test_trace_shapes_and_the_sums_they_obey(reverse_assembled):
    model = distill.from_tracr(reverse_assembled, rotate=0)
    c = model.config
    ids, mask = model.encode([["a"], ["b", "c", "d"], ["a", "b"]])
    out, trace = model.run_with_trace(ids, mask)
    batch, pos = ids.shape
    assert out.shape == (batch, pos, c.d_out)
    for layer in range(c.n_layers):
        p = f"blocks.{layer}"
        for name in (
            "hook_resid_pre",
            "hook_resid_mid",
            "hook_resid_post",
            "hook_attn_out",
            "hook_mlp_out",
        ):
            assert trace[f"{p}.{name}"].shape == (batch, pos, c.d_model)
        assert trace[f"{p}.attn.hook_pattern"].shape == (batch, c.n_heads, pos, pos)
        assert trace[f"{p}.attn.hook_result"].shape == (batch, pos, c.n_heads, c.d_model)
        assert trace[f"{p}.mlp.hook_pre"].shape == (batch, pos, c.d_mlp)
        assert trace[f"{p}.mlp.hook_post"].shape == (batch, pos, c.d_mlp)
        attn = model.blocks[layer].attn
        torch.testing.assert_close(
            trace[f"{p}.attn.hook_result"].sum(2) + attn.b_O, trace[f"{p}.hook_attn_out"]
        )
        torch.testing.assert_close(
            trace[f"{p}.hook_resid_pre"] + trace[f"{p}.hook_attn_out"], trace[f"{p}.hook_resid_mid"]
        )
        torch.testing.assert_close(
            trace[f"{p}.hook_resid_mid"] + trace[f"{p}.hook_mlp_out"], trace[f"{p}.hook_resid_post"]
        )
        pattern = trace[f"{p}.attn.hook_pattern"]
        torch.testing.assert_close(
            pattern.sum(-1), torch.ones(batch, c.n_heads, pos, dtype=pattern.dtype)
        )
        assert (
            pattern[0, :, :, 2:] == 0
        ).all()  # the first input is 2 long with BOS: PAD keys get nothing
    torch.testing.assert_close(
        trace[f"blocks.{c.n_layers - 1}.hook_resid_post"] @ model.unembed.W_U, out
    )


def test_names_filter_keeps_only_what_is_asked(reverse_assembled):
    model = distill.from_tracr(reverse_assembled)
    ids, mask = model.encode([["a", "b"]])
    full, _ = model.run_with_trace(ids, mask, names=[])
    out, trace = model.run_with_trace(ids, mask, names=["blocks.0.attn.hook_pattern", "hook_embed"])
    assert set(trace) == {"blocks.0.attn.hook_pattern", "hook_embed"}
    torch.testing.assert_close(out, full)
    _, trace = model.run_with_trace(ids, mask, names=lambda name: name.endswith("hook_resid_post"))
    assert set(trace) == {
        f"blocks.{layer}.hook_resid_post" for layer in range(model.config.n_layers)
    }
    with pytest.raises(BadInputError, match="unknown trace name.*blocks.0.hook_nothing"):
        model.run_with_trace(ids, mask, names=["blocks.0.hook_nothing"])


def _hook_count(model) -> int:
    return sum(len(module._forward_hooks) for module in model.modules())


def test_hooks_are_removed_even_when_the_forward_fails(reverse_assembled):
    model = distill.from_tracr(reverse_assembled)
    bad_ids = torch.tensor([[model.config.bos_id, 10_000]])  # no such token id
    with pytest.raises(IndexError):
        model.run_with_trace(bad_ids, names=None)
    assert _hook_count(model) == 0
    model.run_with_trace(*model.encode([["a"]]))
    assert _hook_count(model) == 0


def test_mixed_length_batch_equals_one_input_at_a_time(reverse_assembled):
    model = distill.from_tracr(reverse_assembled, rotate=1)
    inputs = [["a"], ["d", "c", "b", "a", "a"], [], ["b", "b"]]
    out, trace = model.run_with_trace(*model.encode(inputs), names=lambda n: "resid_post" in n)
    for row, tokens in enumerate(inputs):
        single, single_trace = model.run_with_trace(
            *model.encode([tokens]), names=lambda n: "resid_post" in n
        )
        n = len(tokens) + 1
        # One computation in two batch shapes: each within its derived rounding bound.
        together, alone = error_bounds(model, inputs), error_bounds(model, [tokens])
        bound = together["output"][row, :n] + alone["output"][0, :n]
        assert ((out[row, :n] - single[0]).abs() <= bound).all()
        for name, value in single_trace.items():
            bound = together[name][row, :n] + alone[name][0, :n]
            assert ((trace[name][row, :n] - value[0]).abs() <= bound[:, None]).all(), name
    assert model.predict(inputs) == [model.predict([tokens])[0] for tokens in inputs]


def test_bad_tokens_and_lengths_are_bad_input(reverse_assembled):
    model = distill.from_tracr(reverse_assembled)
    with pytest.raises(
        BadInputError, match=r"token 'z' is not in the model's vocab \(a, b, c, d\)"
    ):
        model.predict([["a"], ["a", "z"]])
    with pytest.raises(BadInputError, match="6 tokens; the model takes at most 5"):
        model.predict([["a"] * 6])


# ----------------------------------------------------------------------------
# Beyond tracr: layer norm, GELU, causal attention, against a numpy reference.
# ----------------------------------------------------------------------------


def _numpy_reference(model, tokens: list) -> np.ndarray:
    """One unpadded input, written out head by head: out [1 + len(tokens), d_out]."""
    c = model.config
    p = {name: t.detach().double().numpy() for name, t in model.state_dict().items()}
    ids = [c.bos_id] + [c.vocab.index(t) for t in tokens]
    n = len(ids)

    def norm(x, name):
        if c.normalization != "LN":
            return x
        centred = x - x.mean(-1, keepdims=True)
        return (
            centred / np.sqrt((centred**2).mean(-1, keepdims=True) + 1e-5) * p[f"{name}.w"]
            + p[f"{name}.b"]
        )

    x = p["embed.W_E"][ids] + p["pos_embed.W_pos"][:n]
    for layer in range(c.n_layers):
        b = f"blocks.{layer}"
        h = norm(x, f"{b}.ln1")
        attn_out = np.zeros_like(x) + p[f"{b}.attn.b_O"]
        for head in range(c.n_heads):
            q, k, v = (h @ p[f"{b}.attn.W_{m}"][head] + p[f"{b}.attn.b_{m}"][head] for m in "QKV")
            scores = q @ k.T / np.sqrt(c.d_head)
            if c.causal:
                scores = np.where(np.tril(np.ones((n, n))) > 0, scores, -np.inf)
            weights = np.exp(scores - scores.max(-1, keepdims=True))
            weights /= weights.sum(-1, keepdims=True)
            attn_out += weights @ v @ p[f"{b}.attn.W_O"][head]
        x = x + attn_out
        pre = norm(x, f"{b}.ln2") @ p[f"{b}.mlp.W_in"] + p[f"{b}.mlp.b_in"]
        if c.act_fn == "relu":
            post = np.maximum(pre, 0)
        else:
            post = pre * 0.5 * (1 + np.vectorize(math.erf)(pre / np.sqrt(2)))
        x = x + post @ p[f"{b}.mlp.W_out"] + p[f"{b}.mlp.b_out"]
    return norm(x, "ln_final") @ p["unembed.W_U"] + p["unembed.b_U"]


@st.composite
def random_models(draw):
    config = ModelConfig(
        n_layers=draw(st.integers(1, 2)),
        d_model=draw(st.integers(2, 8)),
        n_heads=draw(st.integers(1, 3)),
        d_head=draw(st.integers(1, 4)),
        d_mlp=draw(st.integers(1, 6)),
        n_ctx=5,
        act_fn=draw(st.sampled_from(["relu", "gelu"])),
        normalization=draw(st.sampled_from([None, "LN"])),
        causal=draw(st.booleans()),
        vocab=("a", "b", 7),
        bos="BOS",
        max_seq_len=4,
        **draw(
            st.sampled_from(
                [
                    {"output_kind": "categorical", "output_values": ("x", "y", "z")},
                    {"output_kind": "numerical", "output_values": ()},
                ]
            )
        ),
    )
    model = Model(config, dtype=torch.float64)
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return model


@settings(max_examples=30, deadline=None)
@given(
    model=random_models(),
    inputs=st.lists(st.lists(st.sampled_from(["a", "b", 7]), max_size=4), min_size=1, max_size=5),
)
def test_random_models_match_a_numpy_reference_in_mixed_length_batches(model, inputs):
    out, trace = model.run_with_trace(*model.encode(inputs), names=["blocks.0.attn.hook_pattern"])
    for row, tokens in enumerate(inputs):
        expected = _numpy_reference(model, tokens)
        np.testing.assert_allclose(
            out[row, : len(tokens) + 1].numpy(), expected, rtol=1e-9, atol=1e-9
        )
        pattern = trace["blocks.0.attn.hook_pattern"][row]
        assert (pattern[:, :, len(tokens) + 1 :] == 0).all()  # PAD keys get no attention
        if model.config.causal:
            assert (pattern.triu(1) == 0).all()
