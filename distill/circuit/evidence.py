"""Evidence: what every component of a model outputs over a set of inputs.

The distiller reads networks from traces, never from labels. This module runs a
model over a set of inputs and keeps, per *sample* (one non-BOS position of one
input), exactly what later stages need:

- per attention head, its output written into the residual, as coordinates in
  the head's write basis (the row space of W_V W_O), and its attention row;
- per MLP layer, the post-activation of every live hidden unit;
- the model's decoded output and raw output.

Samples are flattened: sample i is position `pos[i]` (1-based; 0 is BOS) of
input `input_of[i]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from distill.models.family import Model

# Singular values below this fraction of the largest are numerical noise.
RANK_TOLERANCE = 1e-6


def orthonormal_row_basis(matrix: np.ndarray, tolerance: float = RANK_TOLERANCE) -> np.ndarray:
    """An orthonormal basis [rank, d] of the row space of `matrix` [n, d], leading
    directions first.

    From the eigenvectors of the smaller Gram matrix (an SVD costs far more):
    [d, d] for a tall matrix; [n, n] for a wide one (a few MLP units' writes in a
    wide residual stream), whose eigenvectors map to the rows' directions.
    Singular value s is sqrt(eigenvalue).
    """
    if matrix.size == 0:
        return np.zeros((0, matrix.shape[-1]))
    wide = matrix.shape[0] < matrix.shape[1]
    gram = matrix @ matrix.T if wide else matrix.T @ matrix
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    largest = eigenvalues[-1]
    if largest <= 0:
        return np.zeros((0, matrix.shape[-1]))
    keep = eigenvalues > (tolerance**2) * largest
    leading = eigenvectors[:, keep][:, ::-1]
    if not wide:
        return leading.T
    # u^T M / s for each kept eigenvector u; QR restores orthonormality to working precision.
    directions = (leading.T @ matrix) / np.sqrt(eigenvalues[keep][::-1])[:, None]
    q, r = np.linalg.qr(directions.T)
    return (q * np.sign(np.diag(r))).T


@dataclass
class HeadEvidence:
    layer: int
    head: int
    write_basis: np.ndarray  # [rank, d_model], orthonormal rows
    coords: np.ndarray  # [samples, rank]: the head's output in write_basis coordinates
    pattern: (
        np.ndarray
    )  # [samples, n_ctx]: attention of the sample's query over keys (0 past the end)

    @property
    def id(self) -> str:
        return f"L{self.layer}.H{self.head}"

    def outputs(self) -> np.ndarray:
        """[samples, d_model]: the head's output in the residual basis."""
        return self.coords @ self.write_basis

    def output_basis(self, tolerance: float) -> np.ndarray:
        """An orthonormal basis [rank, d_model] of the span of the head's centred outputs.

        Found in write-basis coordinates (at most d_head columns, not d_model): the
        write basis has orthonormal rows, so it carries that basis over with its norms.
        """
        return orthonormal_row_basis(self.coords - self.coords.mean(axis=0), tolerance) @ (
            self.write_basis
        )


@dataclass
class MLPEvidence:
    layer: int
    units: np.ndarray  # indices of live hidden units
    activations: np.ndarray  # [samples, len(units)]
    W_in: np.ndarray  # [d_model, len(units)]
    W_out: np.ndarray  # [len(units), d_model]


@dataclass
class Evidence:
    inputs: list[list]
    input_of: np.ndarray  # [samples]
    pos: np.ndarray  # [samples], 1-based position (index = pos - 1)
    lengths: np.ndarray  # [inputs]
    heads: list[HeadEvidence]
    mlps: list[MLPEvidence]
    predictions: list  # [samples] decoded model output
    raw_output: np.ndarray  # [samples, d_out]
    token_labels: list = field(default_factory=list)  # [samples] the token at the sample

    @property
    def n_samples(self) -> int:
        return len(self.pos)


def _head_write_bases(model: Model, layer: int) -> list[np.ndarray]:
    attn = model.blocks[layer].attn
    W_V = attn.W_V.detach().double().numpy()  # [head, d_model, d_head]
    W_O = attn.W_O.detach().double().numpy()  # [head, d_head, d_model]
    return [orthonormal_row_basis(W_V[h] @ W_O[h]) for h in range(W_V.shape[0])]


def _live_units(model: Model, layer: int) -> np.ndarray:
    mlp = model.blocks[layer].mlp
    W_in = mlp.W_in.detach().double().numpy()
    W_out = mlp.W_out.detach().double().numpy()
    alive = (np.abs(W_out).max(axis=1) > 0) & (
        (np.abs(W_in).max(axis=0) > 0) | (np.abs(mlp.b_in.detach().double().numpy()) > 0)
    )
    return np.flatnonzero(alive)


def collect(model: Model, inputs: list[list], batch_size: int = 2048) -> Evidence:
    """Run `model` over `inputs` and keep what the distiller reads (see module doc)."""
    config = model.config
    n_layers, n_heads = config.n_layers, config.n_heads
    head_bases = [_head_write_bases(model, layer) for layer in range(n_layers)]
    live = [_live_units(model, layer) for layer in range(n_layers)]
    head_is_live = [
        [head_bases[layer][h].shape[0] > 0 for h in range(n_heads)] for layer in range(n_layers)
    ]
    names = set()
    for layer in range(n_layers):
        if any(head_is_live[layer]):
            names |= {f"blocks.{layer}.attn.hook_pattern", f"blocks.{layer}.attn.hook_result"}
        if len(live[layer]):
            names.add(f"blocks.{layer}.mlp.hook_post")

    coords = {
        (layer, h): []
        for layer in range(n_layers)
        for h in range(n_heads)
        if head_is_live[layer][h]
    }
    patterns = {key: [] for key in coords}
    acts = {layer: [] for layer in range(n_layers) if len(live[layer])}
    input_of, pos, raw, predictions = [], [], [], []
    lengths = np.array([len(x) for x in inputs], dtype=np.int64)

    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start : start + batch_size]
        ids, mask = model.encode(chunk)
        out, trace = model.run_with_trace(ids, mask, names=names)
        chunk_lengths = torch.tensor([len(x) for x in chunk])
        positions = torch.arange(ids.shape[1])
        keep = (positions[None, :] >= 1) & (positions[None, :] <= chunk_lengths[:, None])
        rows, cols = torch.nonzero(keep, as_tuple=True)
        input_of.append(rows.numpy() + start)
        pos.append(cols.numpy())
        raw.append(out[rows, cols].double().numpy())
        n_ctx = config.n_ctx
        for (layer, h), target in coords.items():
            result = trace[f"blocks.{layer}.attn.hook_result"][rows, cols, h].double().numpy()
            target.append(result @ head_bases[layer][h].T)
            row_pattern = trace[f"blocks.{layer}.attn.hook_pattern"][rows, h, cols].double().numpy()
            padded = np.zeros((len(rows), n_ctx))
            padded[:, : row_pattern.shape[1]] = row_pattern
            patterns[(layer, h)].append(padded)
        for layer, target in acts.items():
            post = trace[f"blocks.{layer}.mlp.hook_post"][rows, cols].double().numpy()
            target.append(post[:, live[layer]])
        decoded = model.decode(out, [len(x) for x in chunk])
        predictions.extend(decoded[r][c - 1] for r, c in zip(rows.tolist(), cols.tolist()))

    heads = [
        HeadEvidence(
            layer=layer,
            head=h,
            write_basis=head_bases[layer][h],
            coords=np.concatenate(coords[(layer, h)]),
            pattern=np.concatenate(patterns[(layer, h)]),
        )
        for (layer, h) in coords
    ]
    mlps = []
    for layer, chunks in acts.items():
        mlp = model.blocks[layer].mlp
        mlps.append(
            MLPEvidence(
                layer=layer,
                units=live[layer],
                activations=np.concatenate(chunks),
                W_in=mlp.W_in.detach().double().numpy()[:, live[layer]],
                W_out=mlp.W_out.detach().double().numpy()[live[layer]],
            )
        )
    input_of_all = np.concatenate(input_of)
    pos_all = np.concatenate(pos)
    return Evidence(
        inputs=inputs,
        input_of=input_of_all,
        pos=pos_all,
        lengths=lengths,
        heads=heads,
        mlps=mlps,
        predictions=predictions,
        raw_output=np.concatenate(raw),
        token_labels=[inputs[i][p - 1] for i, p in zip(input_of_all.tolist(), pos_all.tolist())],
    )
