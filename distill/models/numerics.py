"""Numbers: what rounding can do to a model's output, derived, and the one resolution.

Checks evaluate a model's weights in float64 (`in_float64`; float32 weights are
exact there, tracr imports stay float64). Its output differs from the exact
(real-arithmetic) function of its weights by rounding, and how much depends on
the weights' scale, the matmuls' inner dimensions and the depth, not on the
machine: the bounds below hold for every summation order (blocked, pairwise,
SIMD, FMA or not, any thread count), so they hold on every BLAS and kernel.

The derivation, with u the unit roundoff of the dtype computed in (2^-53 for
float64, 2^-24 for float32) and
gamma(n) = n u / (1 - n u) (Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., Lemma 3.1 and eq. 3.4):

* A matmul with bias, y = x W + b, inner dimension n, computed in any order:
  |fl(y) - y| <= gamma(n + 2) (|x| |W| + |b|) entrywise (n - 1 additions,
  n products, the bias add, and one more u for the weights themselves having
  been rounded to float32 when stored: a rotated tracr model's weights are the
  float32 rounding of exact ones). In 2-norms over a position's vector,
  || |x| |W| ||_2 <= ||x||_2 ||abs(W)||_2, the spectral norm of W's absolute
  values. An error e already in x adds ||W||_2 ||e||_2.
* A residual add: fl(a + b) = (a + b)(1 + d), |d| <= u.
* Attention, per head: queries, keys and values as matmuls. A score
  s = (q . k) / sqrt(d_head) has rounding gamma(d_head + 2) |q| |k| and
  inherits |q| e_k + |k| e_q + e_q e_k from its operands. A score error of at
  most e_s moves the softmax by at most exp(2 e_s) - 1 in l1 (each weight
  p_i becomes p_i exp(d_i) / sum_j p_j exp(d_j), |d_i| <= e_s). The softmax's
  own rounding: s_i - max is within u |s_i - max| of exact, which changes
  exp(s_i - max) <= 1 by at most u max_t(t e^-t) = u / e; exp (within 1 ulp
  in glibc, SLEEF and XLA: counted as 2u), the sum of n_ctx terms and the
  division: gamma(n_ctx + 4) relative, in all at most
  gamma(n_ctx + 4) + n_ctx u in l1; and no two distributions are more than 2
  apart in l1, whatever the scores' error. The pattern mixes values (a convex
  combination): ||z||_2 <= max ||v||_2, and a pattern error e_p adds
  e_p max ||v||_2.
* An MLP: ReLU is exact and 1-Lipschitz with |relu(x)| <= |x|; GELU's
  derivative is at most 1.13 and its rounding counted as 4u relative.
* LayerNorm (trained models): y = w (x - mean) / sqrt(var + eps) + b is
  1/sqrt(eps)-Lipschitz in x times max |w|, and its own rounding is at most
  gamma(d_model + 8) sqrt(d_model) relative on the normalised vector,
  carried through the same 1/sqrt(eps).
* The unembedding, one output column j at a time: ||W_U[:, j]||_2 e +
  gamma(d_model + 2) (||abs(W_U[:, j])||_2 ||x||_2 + |b_j|).

Magnitudes come from an exact-enough forward of the same weights in float64
(2^29 times finer than float32, so its own error is far inside the rounding
counted above) on the inputs to be compared, position by position, and the
error is carried the same way: each position's residual error as a 2-norm,
each hidden unit's pre-activation error on its own (a ReLU unit below minus its
error is 0 in both computations and carries nothing), each attention row's
worst score error over the keys it may see. The bound is therefore for the
given inputs: compare on a set of inputs, bound on that same set.

An a-priori bound from the weights alone (largest embedded row, norms through
every layer) was tried first and is vacuous for tracr models: 1e4 to 1e6 times
the measured error, and infinite score errors for sort and reverse.

Two refinements keep it from compounding where the network does not: the ReLU
units that are on beyond their error form one exact linear map of the incoming
error, bounded by its spectral norm (tracr's discretising MLPs pair units whose
difference is flat, so the pair carries nothing), and a head's output moves
with its weights' change times the spread of the values it mixes (nothing,
when every selected key holds one value).

Status: in float64 the bound is under half the resolution (below) on every
small tracr case, rotated (tests/test_numerics.py), from 1e-14 to 4e-7; it
still compounds past it on the deep shuffle_dyck models (0.02, and 217 for
shuffle_dyck3: numerical MLPs and mean heads, whose error a 2-norm cannot
place in a direction). In float32 it holds against float64 on every small case.

Its uses: `output_error_bound(model, inputs)` is that bound on every output
number (a score, or the numerical output) of the given inputs;
`rounding_resolves` checks it against the resolution; `require_resolution`
says whether distinct values are far enough apart to be told apart at a
tolerance.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence

import numpy as np

from distill.errors import BadInputError

# Numbers closer than this are one value: the resolution at which a network's numbers are
# read as its program's values (numerical outputs, and argmax ties). It is not a rounding
# tolerance. It covers how closely a network approximates its program in exact
# arithmetic: tracr's soft attention leaks about 1e-6 of its weight past the selected keys
# (so a mean of 1/2 reads 0.499999), and an aggregate that selects nothing leaves scores
# that tie only up to that leak. Rounding is bounded separately and must stay below it:
# `rounding_resolves` checks that the derived bound is under half of it, so no machine's
# arithmetic can move a number across it. Distinct values closer than twice this cannot
# be told apart (`require_resolution` says so).
RESOLUTION = 1e-4

UNIT_ROUNDOFF = 2.0**-24  # float32's
UNIT_ROUNDOFFS = {"float32": 2.0**-24, "float64": 2.0**-53}


def unit_roundoff(model) -> float:
    """The unit roundoff of the dtype `model` computes in."""
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    if dtype not in UNIT_ROUNDOFFS:
        raise NumericsError(f"no error bound for models computing in {dtype}")
    return UNIT_ROUNDOFFS[dtype]


"""float32's unit roundoff u: fl(x) = x (1 + d), |d| <= u."""
GELU_SLOPE = 1.13
"""An upper bound on |GELU'(x)| = |Phi(x) + x phi(x)| (its maximum is 1.1289 at x = 2**0.5)."""


class NumericsError(BadInputError):
    """A rounding bound or tolerance that swallows the gaps between distinct values."""


def gamma(n: int, u: float = UNIT_ROUNDOFF) -> float:
    """Higham's gamma_n = n u / (1 - n u): the relative error of n roundings in a row."""
    if n * u >= 1:
        raise NumericsError(f"gamma({n}) is undefined at u = {u:g}: {n} roundings lose every digit")
    return n * u / (1 - n * u)


def output_error_bound(model, inputs: Sequence[Sequence], batch_size: int = 4096) -> float:
    """An upper bound on |computed output - exact output| for every output number of `model`
    on `inputs` (positions 1..length of each; BOS and PAD positions are discarded by decode).

    Holds for every summation order; see the module docstring for the derivation.
    """
    bounds = position_error_bounds(model, inputs, batch_size)
    return max((float(b.max()) for b in bounds if len(b)), default=0.0)


def position_error_bounds(
    model, inputs: Sequence[Sequence], batch_size: int = 4096
) -> list[np.ndarray]:
    """Per input, per position 1..length: the bound on every output number there."""
    weights = _weights(model)
    bounds = []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start : start + batch_size]
        per_output = _batch_bound(model, weights, batch).amax(-1).numpy()  # [batch, pos]
        bounds += [per_output[row, 1 : len(x) + 1] for row, x in enumerate(batch)]
    return bounds


def _weights(model) -> dict:
    import torch

    with torch.no_grad():
        exact = in_float64(model)
    params = {name: t.detach() for name, t in exact.state_dict().items()}
    norms = {}
    for name, t in params.items():
        if t.dim() >= 2:
            norms[name] = (_spectral(t), _spectral(t.abs()))
    return {"model": exact, "params": params, "norms": norms}


def _spectral(t):
    """Spectral norm of a matrix, or of each matrix of a stack [h, ., .]."""
    import torch

    return torch.linalg.matrix_norm(t, ord=2) if t.numel() else torch.zeros(t.shape[:-2])


def _linear(x, e, W, b, W_norm, W_abs_norm, u):
    """y = x W + b in float32: per position, the error inherited through W (||W||_2 e) plus the
    rounding gamma(n + 2) || |x| |W| + |b| || (+ e ||abs(W)||_2 for x's own error)."""
    own = gamma(W.shape[-2] + 2, u) * ((x.abs() @ W.abs() + b.abs()).norm(dim=-1) + e * W_abs_norm)
    return W_norm * e + own


def error_bounds(model, inputs: Sequence[Sequence]) -> dict:
    """Bounds on the rounding of every traced quantity of `model` on `inputs` (one batch):
    "embed" and each block's "hook_resid_mid" / "hook_resid_post" [batch, pos] (2-norm per
    position), each "attn.hook_attn_scores" [batch, head, query, key], and "output"
    [batch, pos, d_out]; names as in `Model.run_with_trace`."""
    record: dict = {}
    record["output"] = _batch_bound(model, _weights(model), inputs, record)
    return record


def _batch_bound(model, weights, inputs, record: dict | None = None):
    """[batch, pos, d_out]: the bound on each output number at each position (BOS included);
    `record` gets the bounds of the traced quantities on the way (see `error_bounds`)."""
    record = {} if record is None else record
    import torch

    exact, p, norms = weights["model"], weights["params"], weights["norms"]
    config = model.config
    ln_eps = config.ln_eps
    ids, mask = model.encode(inputs)
    _, trace = exact.run_with_trace(ids, mask, names=_traced)
    u = unit_roundoff(model)
    n_pos = ids.shape[1]
    allowed = mask[:, None, None, :]  # [batch, 1, query, key]
    if config.causal:
        allowed = allowed & torch.ones(n_pos, n_pos, dtype=torch.bool).tril()
    embedded = p["embed.W_E"][ids] + p["pos_embed.W_pos"][:n_pos]
    # the weights' own float32 rounding (u |E|, u |P|) and the sum's
    e = u * (p["embed.W_E"][ids].norm(dim=-1) + p["pos_embed.W_pos"][:n_pos].norm(dim=-1))
    e = e + u * embedded.norm(dim=-1)
    record["embed"] = e

    def normed(x, e, name):
        if config.normalization != "LN":
            return x, e
        w, b = p[f"{name}.w"], p[f"{name}.b"]
        d = x.shape[-1]
        centred = x - x.mean(-1, keepdim=True)
        # the smallest standard deviation within e of x's (LayerNorm is 1/sigma-Lipschitz)
        sigma = ((centred.norm(dim=-1) - e).clamp(min=0) ** 2 / d + ln_eps).sqrt()
        y = centred / (centred.pow(2).mean(-1, keepdim=True) + ln_eps).sqrt() * w + b
        w_max = float(w.abs().max())
        own = gamma(d + 8, u) * w_max * (math.sqrt(d) + x.norm(dim=-1) / sigma)
        return y, w_max * e / sigma + own + u * y.norm(dim=-1)

    resid = embedded
    for layer in range(config.n_layers):
        pre = f"blocks.{layer}"
        x, ex = normed(resid, e, f"{pre}.ln1")
        e_attn = _attention_error(x, ex, p, norms, trace, pre, allowed, config, u, record)
        resid = trace[f"{pre}.hook_resid_mid"]
        e = e + e_attn + u * (resid.norm(dim=-1) + e + e_attn)
        record[f"{pre}.hook_resid_mid"] = e
        x, ex = normed(resid, e, f"{pre}.ln2")
        e_mlp = _mlp_error(x, ex, p, norms, trace, pre, config, u)
        resid = resid + trace[f"{pre}.hook_mlp_out"]
        e = e + e_mlp + u * (resid.norm(dim=-1) + e + e_mlp)
        record[f"{pre}.hook_resid_post"] = e
    x, ex = normed(resid, e, "ln_final")
    W_U, b_U = p["unembed.W_U"], p["unembed.b_U"]
    own = gamma(W_U.shape[0] + 2, u) * (
        x.abs() @ W_U.abs() + b_U.abs() + ex[..., None] * W_U.abs().norm(dim=0)
    )
    return W_U.norm(dim=0) * ex[..., None] + own  # [batch, pos, d_out]


def _traced(name: str) -> bool:
    return name.endswith(TRACED)


TRACED = (
    "resid_mid",
    "hook_q",
    "hook_k",
    "hook_v",
    "hook_pattern",
    "hook_z",
    "hook_pre",
    "hook_post",
    "mlp_out",
)


def _attention_error(x, ex, p, norms, trace, pre, allowed, config, u, record):
    import torch

    a = f"{pre}.attn"
    n_heads, _, d_head = p[f"{a}.W_Q"].shape
    scale = 1.0 / math.sqrt(d_head)
    q, k, v = (trace[f"{a}.hook_{n}"] for n in "qkv")  # [batch, pos, head, d_head]
    pattern = trace[f"{a}.hook_pattern"]  # [batch, head, query, key]

    def errors(name):
        W, b = p[f"{a}.W_{name}"], p[f"{a}.b_{name}"]
        W_norm, W_abs = norms[f"{a}.W_{name}"]
        own = gamma(W.shape[1] + 2, u) * (
            (torch.einsum("bpd,hdk->bphk", x.abs(), W.abs()) + b.abs()).norm(dim=-1)
            + ex[..., None] * W_abs
        )
        return W_norm * ex[..., None] + own  # [batch, pos, head]

    eq, ek, ev = errors("Q"), errors("K"), errors("V")
    qn, kn, vn = q.norm(dim=-1), k.norm(dim=-1), v.norm(dim=-1)
    qa, ka = qn + eq, kn + ek  # sizes of the float32 operands
    inherited = (
        torch.einsum("bqh,bth->bhqt", qn, ek)
        + torch.einsum("bqh,bth->bhqt", eq, kn)
        + torch.einsum("bqh,bth->bhqt", eq, ek)
    )
    rounding = gamma(d_head + 2, u) * (
        torch.einsum("bqhk,bthk->bhqt", q.abs(), k.abs())
        + torch.einsum("bqh,bth->bhqt", qa, ka)
        - torch.einsum("bqh,bth->bhqt", qn, kn)
    )
    score_error = scale * (inherited + rounding) * (1 + u) + u * scale * torch.einsum(
        "bqh,bth->bhqt", qa, ka
    )
    record[f"{a}.hook_attn_scores"] = score_error
    worst = score_error.masked_fill(~allowed, 0).amax(-1)  # [batch, head, query]
    n_ctx = pattern.shape[-1]
    # Each weight moves by a factor within exp(+-2 worst) (p_j exp(d_j) / sum p_k exp(d_k)),
    # and the weights sum to 1 before and after, so the output moves by at most
    # expm1(2 worst) sum_j p_j ||v_j - z||: the spread of the values the head mixes (zero
    # when every selected key holds one value, as in a categorical aggregate). Whatever
    # the scores' error, it moves by at most twice the largest ||v_j - z||.
    z_heads = trace[f"{a}.hook_z"]  # [batch, query, head, d_head]
    gap = (v.transpose(1, 2)[:, :, None, :, :] - z_heads.transpose(1, 2)[:, :, :, None, :]).norm(
        dim=-1
    )  # [batch, head, query, key]: ||v_key - z_query||
    gap = gap + ev.transpose(1, 2)[:, :, None, :] + ev.transpose(1, 2).amax(-1)[..., None, None]
    gap = gap.masked_fill(~allowed, 0)
    spread = torch.einsum("bhqt,bhqt->bhq", pattern, gap)
    moved = torch.minimum(torch.expm1(2 * worst) * spread, 2 * gap.amax(-1))
    # The softmax's own rounding: each weight within gamma(n_ctx + 4) + n_ctx u of exact.
    va = (vn + ev).transpose(1, 2)[:, :, None, :]  # [batch, head, 1, key]
    largest_v = va.expand_as(pattern).masked_fill(~allowed, 0).amax(-1)  # [batch, head, query]
    ez = (
        torch.einsum("bhqt,bth->bhq", pattern, ev)
        + moved
        + (gamma(n_ctx + 4, u) + n_ctx * u) * largest_v
        + gamma(n_ctx + 2, u) * torch.einsum("bhqt,bht->bhq", pattern, va[:, :, 0, :])
    ).transpose(1, 2)  # [batch, query, head]
    z = trace[f"{a}.hook_z"].flatten(2)  # [batch, pos, head * d_head]
    W_O = p[f"{a}.W_O"].flatten(0, 1)
    W_norm, W_abs = _spectral(W_O), _spectral(W_O.abs())
    return _linear(z, ez.norm(dim=-1), W_O, p[f"{a}.b_O"], W_norm, W_abs, u)


def _mlp_error(x, ex, p, norms, trace, pre, config, u):

    m = f"{pre}.mlp"
    W_in, b_in, W_out, b_out = (p[f"{m}.{n}"] for n in ("W_in", "b_in", "W_out", "b_out"))
    pre_act = trace[f"{m}.hook_pre"]  # [batch, pos, d_mlp]
    post = trace[f"{m}.hook_post"]
    # per hidden unit: inherited through its column of W_in, and its own rounding
    inherited = W_in.norm(dim=0) * ex[..., None]
    own_pre = gamma(W_in.shape[0] + 2, u) * (
        x.abs() @ W_in.abs() + b_in.abs() + ex[..., None] * W_in.abs().norm(dim=0)
    )
    e_pre = inherited + own_pre
    if config.act_fn == "relu":
        # A unit beyond its error from 0 is linear (on) or 0 (off) in both computations.
        # The on units together are one exact linear map of the inherited error vector,
        # W_in[:, on] W_out[on]: its spectral norm keeps their cancellations (tracr's
        # discretising MLPs pair units whose difference is flat, so an input error that
        # moves both moves nothing). Units within their error of 0 move by at most it.
        on = pre_act > e_pre
        unsure = ~on & (pre_act > -e_pre)
        through = (
            _on_map_norms(W_in, W_out, on) * ex
            + ((own_pre * on) @ W_out.abs()).norm(dim=-1)
            + ((e_pre * unsure) @ W_out.abs()).norm(dim=-1)
        )
        e_post = e_pre * (on | unsure)
    else:
        e_post = GELU_SLOPE * e_pre + 4 * u * post.abs()
        through = (e_post @ W_out.abs()).norm(
            dim=-1
        )  # || sum_j d_j W_out[j] || <= || |d| |W_out| ||
        through = through.minimum(norms[f"{m}.W_out"][0] * e_post.norm(dim=-1))
    own = gamma(W_out.shape[0] + 2, u) * (
        (post.abs() @ W_out.abs() + b_out.abs()).norm(dim=-1)
        + e_post.norm(dim=-1) * norms[f"{m}.W_out"][1]
    )
    return through + own


def _on_map_norms(W_in, W_out, on):
    """[batch, pos]: the spectral norm of W_in[:, on] W_out[on] for each position's on-units."""
    import torch

    flat = on.reshape(-1, on.shape[-1])
    patterns, which = torch.unique(flat, dim=0, return_inverse=True)
    norms = torch.stack(
        [torch.linalg.matrix_norm(W_in[:, row] @ W_out[row], ord=2) for row in patterns]
    )
    return norms[which].reshape(on.shape[:-1])


def rounding_resolves(model, inputs: Sequence[Sequence]) -> bool:
    """Whether rounding on `inputs` provably stays under half the resolution."""
    return output_error_bound(model, inputs) < RESOLUTION / 2


def in_float64(model):
    """`model` computing in float64 (a copy if it computes in anything else): checks evaluate
    the weights in float64, where float32 weights are exact and rounding is 2^29 finer."""
    import torch

    if next(model.parameters()).dtype == torch.float64:
        return model
    return copy.deepcopy(model).to(dtype=torch.float64)


def require_resolution(values: Iterable, tolerance: float, what: str = "outputs") -> None:
    """Raise NumericsError if `tolerance` could merge two distinct numbers among `values`.

    A comparison within `tolerance` tells distinct values apart only when
    every gap between them exceeds twice the tolerance.
    """
    numbers = sorted({float(v) for v in values if _is_number(v)})
    gaps = np.diff(numbers)
    if len(gaps) and gaps.min() <= 2 * tolerance:
        i = int(gaps.argmin())
        raise NumericsError(
            f"rounding cannot tell the {what} {numbers[i]:g} and {numbers[i + 1]:g} apart: "
            f"their gap {gaps[i]:.3g} is within twice the derived tolerance {tolerance:.3g}"
        )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = [
    "NumericsError",
    "UNIT_ROUNDOFF",
    "RESOLUTION",
    "error_bounds",
    "in_float64",
    "position_error_bounds",
    "rounding_resolves",
    "unit_roundoff",
    "gamma",
    "output_error_bound",
    "require_resolution",
]
