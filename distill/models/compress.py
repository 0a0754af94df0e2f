"""Superposed tracr models: the residual stream learned into fewer dimensions.

As in the tracr paper (Lindner et al. 2023, section 5): a matrix W [d_model, D]
maps the original residual x to x' = x W. The compressed network writes through
W and reads through W^T: embeddings E W and P W, every read weight W^T W_Q,
W^T W_K, W^T W_V, W^T W_in, W^T W_U, every write W_O W, b_O W, W_out W, b_out W.
It is an ordinary family model with d_model = D whose features are no longer
orthogonal. Only what some weight reads matters: the residual's part in the
column space of the read weights (`read_basis`); tracr's residual holds more
(variables no component reads, such as indices a program never uses). W starts
at the top D principal directions of that read part over the domain, so at its
rank (`read_rank`) W keeps everything read and agrees before any step. Below
it, W is trained (Adam, cosine-decaying learning rate) on a hinge on the output
margins, on what each component reads (attention patterns and MLP
pre-activations, relative to their mean square) and on the read part of every
residual read back through W^T; the best W seen is kept. Success is exact: the
decoded outputs agree on every input of the domain (exhaustive where it holds at
most `EXHAUSTIVE_LIMIT` inputs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from distill.errors import BadInputError
from distill.models.family import Model

EXHAUSTIVE_LIMIT = 2_000_000
SAMPLED_INPUTS = 20_000
CHECK_EVERY = 50
# The residual term keeps W near the subspaces the original uses; the outputs decide.
RESIDUAL_WEIGHT = 0.1
# Half of tracr's output margin (its categorical outputs are one-hot: 1 against 0).
MARGIN = 0.5
# Residual hooks whose vectors are reconstructed (the input to each block and each half-block).
RESIDUAL_HOOKS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post")
# What each component reads, matched to the original's relative to its mean square: the
# attention pattern and the MLP's pre-activation (errors weighted by the reading weights).
COMPONENT_HOOKS = ("attn.hook_pattern", "mlp.hook_pre")
COMPONENT_WEIGHT = 1.0
# The learning rate decays along a cosine to this fraction of its start.
FINAL_LR_FRACTION = 0.01


@dataclasses.dataclass
class Attempt:
    d: int
    agreed: bool
    steps: int
    disagreements: int


def domain_inputs(model: Model, seed: int = 0) -> tuple[list[list], bool]:
    """The inputs compression is trained and checked on; True when they are the whole domain."""
    from dsl import domain

    config = model.config
    vocab = list(config.vocab)
    if domain.count_inputs(vocab, config.max_seq_len) <= EXHAUSTIVE_LIMIT:
        inputs = [x for batch in domain.enumerate_inputs(vocab, config.max_seq_len) for x in batch]
        return inputs, True
    return domain.sample_inputs(vocab, config.max_seq_len, SAMPLED_INPUTS, seed=seed), False


def compressed_weights(weights: dict[str, torch.Tensor], w: torch.Tensor, n_layers: int) -> dict:
    """The state dict of the compressed model (see the module docstring)."""
    out = {
        "embed.W_E": weights["embed.W_E"] @ w,
        "pos_embed.W_pos": weights["pos_embed.W_pos"] @ w,
        "unembed.W_U": w.T @ weights["unembed.W_U"],
        "unembed.b_U": weights["unembed.b_U"],
    }
    for layer in range(n_layers):
        p = f"blocks.{layer}"
        for name in ("W_Q", "W_K", "W_V"):
            out[f"{p}.attn.{name}"] = torch.einsum("dD,hdk->hDk", w, weights[f"{p}.attn.{name}"])
        for name in ("b_Q", "b_K", "b_V"):
            out[f"{p}.attn.{name}"] = weights[f"{p}.attn.{name}"]
        out[f"{p}.attn.W_O"] = weights[f"{p}.attn.W_O"] @ w
        out[f"{p}.attn.b_O"] = weights[f"{p}.attn.b_O"] @ w
        out[f"{p}.mlp.W_in"] = w.T @ weights[f"{p}.mlp.W_in"]
        out[f"{p}.mlp.b_in"] = weights[f"{p}.mlp.b_in"]
        out[f"{p}.mlp.W_out"] = weights[f"{p}.mlp.W_out"] @ w
        out[f"{p}.mlp.b_out"] = weights[f"{p}.mlp.b_out"] @ w
    return out


def _residual_names(n_layers: int) -> list[str]:
    return [f"blocks.{layer}.{hook}" for layer in range(n_layers) for hook in RESIDUAL_HOOKS]


def _component_names(n_layers: int) -> list[str]:
    return [f"blocks.{layer}.{hook}" for layer in range(n_layers) for hook in COMPONENT_HOOKS]


def compress(
    model: Model, d: int, inputs: list[list], steps: int = 1500, seed: int = 0, lr: float = 1e-2
) -> tuple[Model, Attempt]:
    """The model compressed to `d` dimensions, and whether it agrees with `model` on `inputs`."""
    config = model.config
    if config.normalization is not None:
        raise BadInputError("compression reads and writes the residual linearly: no LayerNorm")
    if config.output_kind != "categorical":
        raise BadInputError(
            "--compress: only categorical outputs can be compressed (a numerical output "
            "changes by rounding, and exact agreement is what compression promises)"
        )
    if not 1 <= d < config.d_model:
        raise BadInputError(f"--compress {d}: expected 1 <= D < d_model = {config.d_model}")
    torch.manual_seed(seed)
    weights = {name: tensor.detach() for name, tensor in model.state_dict().items()}
    ids, mask = model.encode(inputs)
    names = _residual_names(config.n_layers)
    components = _component_names(config.n_layers) if COMPONENT_WEIGHT else []
    expected_out, trace = model.run_with_trace(ids, mask, names=names + components)
    scale = {name: (trace[name] ** 2).mean().clamp_min(1e-12) for name in components}
    expected = model.decode(expected_out, [len(x) for x in inputs])
    keep = mask[..., None].to(expected_out.dtype)  # [batch, pos, 1]: PAD positions do not count
    target = model.output_indices(expected_out)[..., None]  # [batch, pos, 1]
    read = read_basis(weights, config.n_layers)  # [d_model, r]
    residuals = torch.cat([trace[name][mask] for name in names]) @ read  # [vectors, r]
    top = torch.linalg.svd(residuals, full_matrices=False).Vh[:d].T  # [r, min(d, r)]
    start = read @ top
    if start.shape[1] < d:  # more room than the read subspace needs: any further directions
        start = torch.linalg.qr(torch.cat([start, torch.eye(config.d_model)[:, :d]], 1))[0]
    w = torch.nn.Parameter(start[:, :d].clone())
    small = Model(dataclasses.replace(config, d_model=d), dtype=expected_out.dtype)
    captured: dict[str, torch.Tensor] = {}
    modules = dict(small.named_modules())
    handles = [
        modules[name].register_forward_hook(_capture(captured, name)) for name in names + components
    ]
    optimiser = torch.optim.Adam([w], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=steps, eta_min=lr * FINAL_LR_FRACTION
    )
    # Adam scales even vanishing gradients up to full steps: an agreeing W can be lost, so
    # W is checked before any step and the best W seen is kept.
    best = w.detach().clone()
    initial = _disagreements(small, weights, best, config.n_layers, inputs, expected)
    attempt = Attempt(d, initial == 0, 0, initial)
    try:
        for step in range(1, steps + 1):
            if attempt.agreed:
                break
            params = compressed_weights(weights, w, config.n_layers)
            out = torch.func.functional_call(small, params, (ids, mask))
            # A hinge on the margin of the original's output over every other value.
            shortfall = torch.relu(MARGIN - (out.gather(-1, target) - out)).scatter(-1, target, 0)
            loss = (shortfall * keep).sum() / keep.sum()
            for name in names:
                rebuilt = captured[name] @ w.T
                loss = loss + RESIDUAL_WEIGHT * (
                    (((rebuilt - trace[name]) @ read) ** 2 * keep).sum() / keep.sum()
                )
            for name in components:
                loss = loss + COMPONENT_WEIGHT * (
                    ((captured[name] - trace[name]) ** 2).mean() / scale[name]
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            if step % CHECK_EVERY == 0 or step == steps:
                disagreements = _disagreements(small, weights, w, config.n_layers, inputs, expected)
                if disagreements < attempt.disagreements:
                    best = w.detach().clone()
                attempt = Attempt(
                    d, disagreements == 0, step, min(disagreements, attempt.disagreements)
                )
    finally:
        for handle in handles:
            handle.remove()
    w = best
    result = Model(small.config, dtype=expected_out.dtype)
    with torch.no_grad():
        result.load_state_dict(compressed_weights(weights, w.detach(), config.n_layers))
    return result, attempt


def read_basis(weights: dict[str, torch.Tensor], n_layers: int) -> torch.Tensor:
    """An orthonormal basis [d_model, r] of the residual directions some weight reads (the
    column space of W_Q, W_K, W_V, W_in and W_U together): what lies outside it changes
    no output, so compression need not keep it. Rank by numpy's rule: singular values
    above the largest times max(shape) times the dtype's epsilon."""
    reads = [weights["unembed.W_U"]]
    for layer in range(n_layers):
        p = f"blocks.{layer}"
        for name in ("W_Q", "W_K", "W_V"):
            matrix = weights[f"{p}.attn.{name}"]  # [heads, d_model, d_head]
            reads.append(matrix.permute(1, 0, 2).reshape(matrix.shape[1], -1))
        reads.append(weights[f"{p}.mlp.W_in"])
    matrix = torch.cat(reads, dim=1)
    u, sigma, _ = torch.linalg.svd(matrix, full_matrices=False)
    tolerance = sigma.max() * max(matrix.shape) * torch.finfo(matrix.dtype).eps
    return u[:, : int((sigma > tolerance).sum())]


def _capture(store: dict, name: str):
    def hook(module, args, output):
        store[name] = output

    return hook


def _disagreements(small: Model, weights, w, n_layers: int, inputs, expected) -> int:
    probe = Model(small.config, dtype=w.dtype)
    with torch.no_grad():
        probe.load_state_dict(compressed_weights(weights, w.detach(), n_layers))
    got = probe.predict(inputs)
    return sum(a != b for a, b in zip(got, expected))


def read_rank(model: Model, inputs: list[list]) -> int:
    """The rank of the read part of the residual vectors (input to and output of every
    half-block, projected on `read_basis`) over `inputs`.

    tracr gives each value of each variable its own dimension, so values that never
    occur together, variables that are functions of others, and variables no later
    component reads (the indices of a program that never uses them) leave the rank of
    what is read below d_model. W = the top-rank principal directions of the read part
    then reconstructs what every weight reads (to rounding): compression to this rank
    agrees by construction, and the search for a smaller D starts from it.
    """
    ids, mask = model.encode(inputs)
    names = _residual_names(model.config.n_layers)
    _, trace = model.run_with_trace(ids, mask, names=names)
    weights = {name: tensor.detach() for name, tensor in model.state_dict().items()}
    read = read_basis(weights, model.config.n_layers)
    return int(torch.linalg.matrix_rank(torch.cat([trace[name][mask] for name in names]) @ read))


def smallest_agreeing(
    model: Model,
    d: int,
    inputs: list[list],
    steps: int = 600,
    seed: int = 0,
    report: Callable[[Attempt], None] | None = None,
) -> tuple[Model | None, list[Attempt]]:
    """The compressed model at the smallest D >= d that agrees exactly (None if none < d_model).

    Tries d; if it fails, the read rank r over `inputs` (`read_rank`; d_model - 1
    at most), then, should r fail too, r + 1, r + 2, r + 4, ... up to d_model - 1; then
    halves the gap between the last failure and the first success. So it assumes more
    dimensions never hurt.
    """
    attempts: list[Attempt] = []
    found: dict[int, Model] = {}
    d_model = model.config.d_model

    def attempt(size: int) -> bool:
        compressed, outcome = compress(model, size, inputs, steps=steps, seed=seed)
        attempts.append(outcome)
        if report is not None:
            report(outcome)
        if outcome.agreed:
            found[size] = compressed
        return outcome.agreed

    failed = d - 1
    if not attempt(d):
        failed, gap = d, 1
        size = min(max(read_rank(model, inputs), d + 1), d_model - 1)
        while size > failed and not attempt(size):
            failed, size, gap = size, min(size + gap, d_model - 1), gap * 2
    if not found:
        return None, attempts
    succeeded = min(found)
    while succeeded - failed > 1:
        middle = (succeeded + failed) // 2
        if attempt(middle):
            succeeded = middle
        else:
            failed = middle
    return found[succeeded], attempts


__all__ = [
    "Attempt",
    "compress",
    "compressed_weights",
    "domain_inputs",
    "read_basis",
    "read_rank",
    "smallest_agreeing",
]
